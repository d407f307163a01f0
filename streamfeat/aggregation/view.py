"""A feature view's row of accumulators: one partial per feature plus the event count."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamfeat.aggregation.partials import accumulator_for
from streamfeat.definitions.models import FeatureView
from streamfeat.featurelog.record import FeatureValue

EVENTS = 0
MAX_TS = 1
FIRST_FEATURE = 2


class ViewAggregator:
    """Adds events to and merges the partial rows of one feature view.

    A partial row is a list ``[events, max_event_ts, partial_1, ..., partial_n]``.
    """

    def __init__(self, view: FeatureView) -> None:
        self.view = view
        self.names = [feature.name for feature in view.features]
        self.columns = [feature.column for feature in view.features]
        self._accumulators = [accumulator_for(feature) for feature in view.features]

    def empty(self) -> list[Any]:
        return [0, None] + [None] * len(self._accumulators)

    def add(self, row: list[Any], event: Mapping[str, Any], ts_ms: int, seq: int) -> None:
        """Add one event to ``row`` in place."""
        row[EVENTS] += 1
        if row[MAX_TS] is None or ts_ms > row[MAX_TS]:
            row[MAX_TS] = ts_ms
        for i, (accumulator, column) in enumerate(
            zip(self._accumulators, self.columns, strict=True)
        ):
            value = event.get(column) if column is not None else None
            row[FIRST_FEATURE + i] = accumulator.add(row[FIRST_FEATURE + i], value, ts_ms, seq)

    def merge_into(self, target: list[Any], other: list[Any]) -> None:
        """Merge partial row ``other`` into ``target`` in place."""
        target[EVENTS] += other[EVENTS]
        if other[MAX_TS] is not None and (target[MAX_TS] is None or other[MAX_TS] > target[MAX_TS]):
            target[MAX_TS] = other[MAX_TS]
        for i, accumulator in enumerate(self._accumulators):
            j = FIRST_FEATURE + i
            target[j] = accumulator.merge(target[j], other[j])

    def values(self, row: list[Any]) -> list[FeatureValue]:
        """Finish a partial row into feature values, in the view's feature order."""
        events = row[EVENTS]
        return [
            accumulator.result(row[FIRST_FEATURE + i], events)
            for i, accumulator in enumerate(self._accumulators)
        ]
