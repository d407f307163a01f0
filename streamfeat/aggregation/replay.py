"""Replay checked events of one source partition through the core, with state in memory.

This is the reference behaviour of a worker for one partition: lateness against the partition's
watermark (R7), the emission clock (R8), and the records of every view. The backfill and the
unit tests use it; the worker runs the same engine with state in RocksDB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamfeat.aggregation.clock import PartitionClock
from streamfeat.aggregation.engine import Emission, EntityState, ViewEngine
from streamfeat.definitions.models import FeatureView
from streamfeat.featurelog.record import EntityKey


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
    states: dict[tuple[str, EntityKey], EntityState] = field(init=False, default_factory=dict)
    sequence: int = field(init=False, default=0)

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
        emissions = []
        for view_name, entity in keys.items():
            engine = self.engines[view_name]
            state = self.states.setdefault((view_name, entity), EntityState())
            for emission in engine.apply_event(state, event_ms, self.sequence, event):
                emissions.append(ViewEmission(view_name, entity, emission))
        emissions.extend(self._advance())
        return emissions

    def idle(self, wall_ms: int) -> list[ViewEmission]:
        """Let the wall clock reach ``wall_ms`` with no message; return the records that fall due."""
        if not self.clock.advance_idle(wall_ms):
            return []
        return self._advance()

    def _advance(self) -> list[ViewEmission]:
        clock_ms = self.clock.emission_ms
        watermark_ms = self.clock.watermark_ms
        if clock_ms is None or watermark_ms is None:
            return []
        emissions = []
        for (view_name, entity), state in list(self.states.items()):
            engine = self.engines[view_name]
            for emission in engine.advance(state, clock_ms):
                emissions.append(ViewEmission(view_name, entity, emission))
            engine.compact(state, watermark_ms)
            if state.is_empty:
                del self.states[(view_name, entity)]
        return emissions
