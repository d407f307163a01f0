"""Replay checked events of one source partition through the core, with state in memory.

This is the reference behaviour of a worker for one partition: lateness against the partition's
watermark, the emission clock, and the records of every view. The backfill and the
unit tests use it; the worker runs the same engine with state in RocksDB.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamfeat.aggregation.clock import PartitionClock
from streamfeat.aggregation.engine import Emission, EntityState, ViewEngine
from streamfeat.definitions.models import FeatureView
from streamfeat.featurelog.record import EntityKey

StateKey = tuple[str, EntityKey]


@dataclass(frozen=True, slots=True)
class ViewEmission:
    """A record of one view for one entity."""

    view: str
    entity: EntityKey
    emission: Emission


@dataclass
class PartitionReplay:
    """One source partition's watermark, emission clock and per-view entity states."""

    views: Sequence[FeatureView]
    allowed_lateness_ms: int
    idle_timeout_ms: int = 30_000
    clock: PartitionClock = field(init=False)
    engines: dict[str, ViewEngine] = field(init=False)
    states: dict[StateKey, EntityState] = field(init=False, default_factory=dict)
    sequence: int = field(init=False, default=0)
    _pending: list[tuple[int, str, EntityKey]] = field(init=False, default_factory=list)
    """Heap of (next slot boundary, view, entity); entries not in _scheduled are stale."""
    _scheduled: dict[StateKey, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.clock = PartitionClock(self.allowed_lateness_ms, self.idle_timeout_ms)
        self.engines = {view.name: ViewEngine(view) for view in self.views}

    def offer(
        self,
        event_ms: int,
        event: Mapping[str, Any],
        keys: Mapping[str, EntityKey],
        wall_ms: int = 0,
    ) -> list[ViewEmission] | None:
        """Apply one checked event keyed per view; return its records, or None when it is late."""
        self.clock.note_message(wall_ms)
        if self.clock.is_late(event_ms):
            return None
        self.clock.accept(event_ms)
        self.sequence += 1
        emissions: list[ViewEmission] = []
        clock_ms = self.clock.emission_ms
        for view_name, entity in keys.items():
            engine = self.engines[view_name]
            state = self.states.setdefault((view_name, entity), EntityState())
            found = engine.apply_event(state, event_ms, self.sequence, event)
            if clock_ms is not None:
                found += engine.advance(state, clock_ms)
            emissions.extend(ViewEmission(view_name, entity, e) for e in found)
            self._settle(view_name, entity, state)
        emissions.extend(self._due())
        return emissions

    def idle(self, wall_ms: int) -> list[ViewEmission]:
        """Let the wall clock reach ``wall_ms`` with no message; return the records now due."""
        if not self.clock.advance_idle(wall_ms):
            return []
        return self._due()

    def _due(self) -> list[ViewEmission]:
        clock_ms = self.clock.emission_ms
        if clock_ms is None:
            return []
        emissions: list[ViewEmission] = []
        while self._pending and self._pending[0][0] <= clock_ms:
            boundary, view_name, entity = heapq.heappop(self._pending)
            if self._scheduled.get((view_name, entity)) != boundary:
                continue
            del self._scheduled[(view_name, entity)]
            state = self.states[(view_name, entity)]
            found = self.engines[view_name].advance(state, clock_ms)
            emissions.extend(ViewEmission(view_name, entity, e) for e in found)
            self._settle(view_name, entity, state)
        return emissions

    def _settle(self, view_name: str, entity: EntityKey, state: EntityState) -> None:
        """Compact an entity after a change, forget it when empty, schedule its next boundary."""
        engine = self.engines[view_name]
        watermark_ms = self.clock.watermark_ms
        if watermark_ms is not None:
            engine.compact(state, watermark_ms)
        key = (view_name, entity)
        if state.is_empty:
            del self.states[key]
            self._scheduled.pop(key, None)
            return
        boundary = engine.next_boundary_ms(state)
        if boundary is None:
            self._scheduled.pop(key, None)
        elif self._scheduled.get(key) != boundary:
            self._scheduled[key] = boundary
            heapq.heappush(self._pending, (boundary, view_name, entity))
