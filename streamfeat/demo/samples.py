"""Sample feature values read back from the online store at the end of a demo run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamfeat.featurelog.record import EntityKey, FeatureValue
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.online.store import OnlineStatus, OnlineValue, datetime_from_ms

SAMPLE_ENTITIES: Mapping[str, Sequence[EntityKey]] = {
    "airport_1h": [("JFK",), ("LGA",), ("EWR",)],
    "carrier_24h": [("UA",), ("AA",), ("DL",)],
    # Two of the planes with the most flights in the last week of 2013, so that their 7-day
    # values at the end of the replay are not empty.
    "plane_7d": [("N279JB",), ("N179JB",)],
}
"""Entities to show per view of the flights topology. Views not listed here show no samples."""


@dataclass(frozen=True)
class Sample:
    """One entity's stored value, read at its own as-of time."""

    view: str
    value: OnlineValue

    def describe(self) -> str:
        """Return one line with view, entity, as-of time and the values, or the read status."""
        entity = "/".join(str(part) for part in self.value.entity)
        if self.value.as_of_ms is None:
            return f"{self.view} {entity}: {self.value.status}"
        as_of = datetime_from_ms(self.value.as_of_ms).isoformat()
        if self.value.status is not OnlineStatus.OK or self.value.values is None:
            return f"{self.view} {entity} as of {as_of}: {self.value.status}"
        values = ", ".join(f"{name}={_format(value)}" for name, value in self.value.values.items())
        return f"{self.view} {entity} as of {as_of}: {values}"


def read_samples(
    store: RedisOnlineStore, entities: Mapping[str, Sequence[EntityKey]] = SAMPLE_ENTITIES
) -> list[Sample]:
    """Read each entity at the as-of time of its stored value.

    The stored values of replayed history lie years back, so a read at the wall clock would
    find them past their TTL. A first read finds each value's as-of time, and a second read
    at that time returns the values as the worker last wrote them.
    """
    samples = []
    for view, keys in entities.items():
        for first in store.read(view, keys):
            value = first
            if first.as_of is not None:
                (value,) = store.read(view, [first.entity], first.as_of)
            samples.append(Sample(view, value))
    return samples


def _format(value: FeatureValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
