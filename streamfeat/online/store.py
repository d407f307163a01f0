"""The online store contract: the latest value per (feature view, entity), read with R13 statuses.

Every backend keeps one value per (view, entity) together with its as-of time, the entity's
latest event time and the view version, and applies the same rules:

- a write replaces the stored value when its as-of time is equal or later, never when earlier
  (so replays after a crash are harmless);
- a read at ``as_of`` returns ``too_old`` when the stored value is later than ``as_of``,
  ``expired`` when the entity's latest event is older than ``as_of - TTL`` (the bound itself
  is still served), ``not_found`` when nothing is stored, and ``ok`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from streamfeat.definitions.models import FeatureView, Topology
from streamfeat.errors import ConfigurationError, OnlineStoreError
from streamfeat.featurelog.record import EntityKey, FeatureRecord, FeatureValue

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

TOO_OLD_MESSAGE = (
    "the online store holds only the latest value, which is later than the requested as_of; "
    "build a training set with the point-in-time join to read earlier values"
)


class OnlineStatus(StrEnum):
    """Outcome of reading one entity."""

    OK = "ok"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"
    TOO_OLD = "too_old"


@dataclass(frozen=True, slots=True)
class StoredValue:
    """The value a backend stores for one (view, entity)."""

    values: dict[str, FeatureValue]
    as_of_ms: int
    latest_event_ts_ms: int
    version: int


@dataclass(frozen=True, slots=True)
class OnlineValue:
    """Result of reading one entity: its status and, when ``ok``, the feature values.

    ``as_of_ms``, ``latest_event_ts_ms`` and ``version`` describe the stored value whenever
    one exists (also for ``expired`` and ``too_old``), so staleness stays visible; they are
    None for ``not_found``.
    """

    entity: EntityKey
    status: OnlineStatus
    values: dict[str, FeatureValue] | None
    as_of_ms: int | None
    latest_event_ts_ms: int | None
    version: int | None
    message: str | None = None

    @property
    def as_of(self) -> datetime | None:
        """As-of time of the stored value, as an aware UTC datetime."""
        return None if self.as_of_ms is None else datetime_from_ms(self.as_of_ms)


class OnlineStore(Protocol):
    """Latest feature values per (view, entity), written by the worker and read by serving."""

    def write(self, records: Sequence[FeatureRecord]) -> int:
        """Store ``records`` unless a later value is stored; return how many keys changed."""
        ...

    def read(
        self,
        view: str,
        entities: Sequence[EntityKey],
        as_of: datetime | None = None,
        *,
        features: Sequence[str] | None = None,
    ) -> list[OnlineValue]:
        """Read ``entities`` of ``view`` as of ``as_of`` (default: now), in request order."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def to_epoch_ms(moment: datetime) -> int:
    """Convert an aware datetime to epoch milliseconds, flooring finer parts."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(
            f"as_of {moment.isoformat()} has no time zone; pass an aware datetime, "
            "such as datetime(2025, 2, 3, tzinfo=UTC)"
        )
    return (moment - EPOCH) // _ONE_MS


def datetime_from_ms(epoch_ms: int) -> datetime:
    """Convert epoch milliseconds to an aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=epoch_ms)


def resolve_view(
    topology: Topology, view_name: str, features: Sequence[str] | None
) -> tuple[FeatureView, tuple[str, ...]]:
    """Find ``view_name`` and the requested features; raise OnlineStoreError naming unknown ones."""
    known_views = {view.name: view for view in topology.feature_views}
    view = known_views.get(view_name)
    if view is None:
        raise OnlineStoreError(
            f"feature view {view_name!r} is not defined in topology {topology.name!r}; "
            f"use one of: {', '.join(sorted(known_views))}"
        )
    names = tuple(feature.name for feature in view.features)
    if features is None:
        return view, names
    unknown = [name for name in features if name not in names]
    if unknown:
        raise OnlineStoreError(
            f"feature view {view.name!r} has no feature {', '.join(map(repr, unknown))}; "
            f"use one of: {', '.join(names)}"
        )
    return view, tuple(features)


def check_entity(view: FeatureView, join_keys: Sequence[str], entity: EntityKey) -> None:
    """Raise OnlineStoreError when ``entity`` has not one value per join key of the view."""
    if len(entity) != len(join_keys):
        raise OnlineStoreError(
            f"entity key {list(entity)!r} has {len(entity)} value(s) but feature view "
            f"{view.name!r} needs one per join key ({', '.join(join_keys)}), in that order"
        )


def read_result(
    entity: EntityKey,
    stored: StoredValue | None,
    as_of_ms: int,
    ttl_ms: int | None,
    features: Sequence[str],
) -> OnlineValue:
    """Apply the read rules to what a backend holds for one entity."""
    if stored is None:
        return OnlineValue(entity, OnlineStatus.NOT_FOUND, None, None, None, None)
    if stored.as_of_ms > as_of_ms:
        status, message = OnlineStatus.TOO_OLD, TOO_OLD_MESSAGE
    elif ttl_ms is not None and stored.latest_event_ts_ms < as_of_ms - ttl_ms:
        status, message = OnlineStatus.EXPIRED, None
    else:
        values = {name: stored.values.get(name) for name in features}
        return OnlineValue(
            entity,
            OnlineStatus.OK,
            values,
            stored.as_of_ms,
            stored.latest_event_ts_ms,
            stored.version,
        )
    return OnlineValue(
        entity, status, None, stored.as_of_ms, stored.latest_event_ts_ms, stored.version, message
    )


def newest_per_key(
    records: Sequence[FeatureRecord], key_of: Callable[[FeatureRecord], str]
) -> dict[str, FeatureRecord]:
    """Keep, per store key, the record with the latest as-of time; on a tie the later one wins.

    Applying the kept records gives the same result as applying every record in order.
    """
    newest: dict[str, FeatureRecord] = {}
    for record in records:
        key = key_of(record)
        current = newest.get(key)
        if current is None or record.event_ts_ms >= current.event_ts_ms:
            newest[key] = record
    return newest
