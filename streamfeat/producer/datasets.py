"""Data sets that can be replayed into a source topic, by source name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from streamfeat.errors import ConfigurationError
from streamfeat.producer.flights import flight_events

EventFactory = Callable[[int | None], Iterator[dict[str, Any]]]
"""Builds a data set's events in event-time order, the first ``limit`` of them when given."""

DATASETS: dict[str, EventFactory] = {"flights": flight_events}


def dataset_events(source: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Return the events of the data set for ``source``; raise ConfigurationError when none."""
    factory = DATASETS.get(source)
    if factory is None:
        raise ConfigurationError(
            f"no data set is known for source {source!r}; known: {', '.join(sorted(DATASETS))}"
        )
    return factory(limit)
