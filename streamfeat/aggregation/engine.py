"""Per-entity windowed state and the feature records it produces.

Windows have a length ``W`` and a hop ``h``; slots are ``[k*h, (k+1)*h)`` in UTC epoch
milliseconds. The value as of ``t`` covers the events with ``e - W <= ts <= t`` where
``e = floor(t / h) * h + h``.

Records: one at every distinct accepted event time, holding the value after all events at
that time, and one at each slot boundary ``slot start + W`` where the value changes because the
slot left the window. Every record carries the entity's latest accepted event time at or before
its own time. An event that arrives after records with a later time were written rewrites every
record whose values or latest event time it changes.

A slot stays *open* while an accepted event or a correctable record can still fall inside it: it
keeps one partial per distinct event time, so the value as of any time inside the slot is exact.
Once the watermark passes its end the slot is *closed* into one partial, and once it has left
every window that a future record can use, it is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamfeat.aggregation.view import MAX_TS, ViewAggregator
from streamfeat.definitions.models import FeatureView
from streamfeat.featurelog.record import FeatureValue

_CACHED_WINDOWS = 2
"""Earlier-slot rows kept per entity: the current slot's and the one before it."""


@dataclass(slots=True)
class Emission:
    """A record to write: values as of ``event_ts_ms`` and the latest event time they carry."""

    event_ts_ms: int
    latest_event_ts_ms: int
    values: list[FeatureValue]


@dataclass(slots=True)
class Slot:
    """One slot's partials: a closed row, or one row per distinct event time while open."""

    closed: list[Any] | None = None
    open: dict[int, list[Any]] = field(default_factory=dict)
    open_merged: tuple[int, list[Any]] | None = field(default=None, compare=False)
    """Not stored: the latest open event time and the merge of every open row."""

    def to_wire(self) -> list[Any]:
        return [self.closed, self.open]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> Slot:
        return cls(wire[0], wire[1])


@dataclass(slots=True)
class EntityState:
    """Everything the engine keeps for one (feature view, entity)."""

    slots: dict[int, Slot] = field(default_factory=dict)
    records: dict[int, list[Any]] = field(default_factory=dict)
    """Records written that a later event may still change: event_ts -> [latest, values]."""
    through_ms: int | None = None
    """Slot boundaries at or before this time have been processed."""
    retired_latest_ms: int | None = None
    """Latest event time among deleted slots."""
    latest_ms: int | None = None
    """Latest accepted event time of the entity."""
    feeders: list[int] = field(default_factory=list)
    """Source partitions the entity's events came from; the worker uses their clocks."""
    earlier_slots: dict[int, list[Any]] = field(default_factory=dict, compare=False)
    """Not stored: per current slot, the merged row of the window's earlier slots."""
    compacted_for: tuple[int, int | None] | None = field(default=None, compare=False)
    """Not stored: the watermark and ``through_ms`` of the last compaction."""

    def to_wire(self) -> list[Any]:
        slots = {index: slot.to_wire() for index, slot in self.slots.items()}
        return [
            slots,
            self.records,
            self.through_ms,
            self.retired_latest_ms,
            self.latest_ms,
            self.feeders,
        ]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> EntityState:
        slots = {int(index): Slot.from_wire(slot) for index, slot in wire[0].items()}
        records = {int(ts): value for ts, value in wire[1].items()}
        for slot in slots.values():
            slot.open = {int(ts): row for ts, row in slot.open.items()}
        return cls(slots, records, wire[2], wire[3], wire[4], wire[5])

    @property
    def is_empty(self) -> bool:
        return not self.slots and not self.records


class ViewEngine:
    """Applies events and clock advances to an EntityState and returns the records to write."""

    def __init__(self, view: FeatureView) -> None:
        self.view = view
        self.aggregator = ViewAggregator(view)
        self.length_ms = view.window.length_ms
        self.hop_ms = view.window.hop_ms
        self.slots_per_window = self.length_ms // self.hop_ms

    def apply_event(
        self, state: EntityState, ts_ms: int, seq: int, event: Mapping[str, Any]
    ) -> list[Emission]:
        """Add one accepted event and return the records it creates or changes."""
        slot_index = ts_ms // self.hop_ms
        if state.latest_ms is None or ts_ms > state.latest_ms:
            state.latest_ms = ts_ms
        for current_slot in [c for c in state.earlier_slots if c > slot_index]:
            if current_slot - self.slots_per_window < slot_index:
                del state.earlier_slots[current_slot]
        slot = state.slots.get(slot_index)
        if slot is None:
            slot = state.slots[slot_index] = Slot()
        if slot.closed is not None:
            self.aggregator.add(slot.closed, event, ts_ms, seq)
        else:
            row = slot.open.get(ts_ms)
            if row is None:
                row = slot.open[ts_ms] = self.aggregator.empty()
            self.aggregator.add(row, event, ts_ms, seq)
            if slot.open_merged is not None:
                latest_ms, merged = slot.open_merged
                self.aggregator.add(merged, event, ts_ms, seq)
                slot.open_merged = (max(latest_ms, ts_ms), merged)

        leaves_at = slot_index * self.hop_ms + self.length_ms
        emissions = [self._emission(state, ts_ms)]
        for record_ts in sorted(self._affected_records(state, ts_ms, leaves_at)):
            emission = self._emission(state, record_ts)
            stored = state.records.get(record_ts)
            if stored is None:
                if not self._changes_at_boundary(state, record_ts, emission):
                    continue
            elif stored[0] == emission.latest_event_ts_ms and stored[1] == emission.values:
                continue
            emissions.append(emission)
        for emission in emissions:
            state.records[emission.event_ts_ms] = [emission.latest_event_ts_ms, emission.values]
        return emissions

    def advance(self, state: EntityState, clock_ms: int) -> list[Emission]:
        """Write the slot-boundary records due once the emission clock reaches ``clock_ms``."""
        through = state.through_ms
        if through is not None and clock_ms <= through:
            return []
        emissions = []
        for slot_index in sorted(state.slots):
            boundary = slot_index * self.hop_ms + self.length_ms
            if boundary > clock_ms:
                break
            if (through is not None and boundary <= through) or boundary in state.records:
                continue
            emission = self._emission(state, boundary)
            if self._changes_at_boundary(state, boundary, emission):
                state.records[boundary] = [emission.latest_event_ts_ms, emission.values]
                emissions.append(emission)
        state.through_ms = clock_ms
        return emissions

    def next_boundary_ms(self, state: EntityState) -> int | None:
        """Earliest slot boundary not yet processed, or None when nothing is pending."""
        through = state.through_ms
        for slot_index in sorted(state.slots):
            boundary = slot_index * self.hop_ms + self.length_ms
            if through is None or boundary > through:
                return boundary
        return None

    def compact(self, state: EntityState, watermark_ms: int) -> None:
        """Close, delete and forget what no event at or after ``watermark_ms`` can change.

        Events below the watermark are rejected, so what they add stays out of reach of a
        compaction with the same watermark and ``through_ms``, which is skipped.
        """
        through = state.through_ms
        if state.compacted_for == (watermark_ms, through):
            return
        state.compacted_for = (watermark_ms, through)
        for slot_index in sorted(state.slots):
            start = slot_index * self.hop_ms
            slot = state.slots[slot_index]
            leaves_at = start + self.length_ms
            if leaves_at <= watermark_ms and through is not None and leaves_at <= through:
                row = slot.closed if slot.closed is not None else self._merge_open(slot)
                latest = row[MAX_TS]
                if latest is not None and (
                    state.retired_latest_ms is None or latest > state.retired_latest_ms
                ):
                    state.retired_latest_ms = latest
                del state.slots[slot_index]
                state.earlier_slots.clear()
            elif slot.closed is None and start + self.hop_ms <= watermark_ms:
                slot.closed = self._merge_open(slot)
                slot.open = {}
                slot.open_merged = None
        for record_ts in [ts for ts in state.records if ts < watermark_ms]:
            del state.records[record_ts]

    def value_as_of(self, state: EntityState, as_of_ms: int) -> list[FeatureValue]:
        """Feature values as of ``as_of_ms`` from the slots still held."""
        current_slot = as_of_ms // self.hop_ms
        total = list(self._earlier_slots(state, current_slot))
        slot = state.slots.get(current_slot)
        if slot is not None:
            if slot.closed is not None:
                self.aggregator.merge_into(total, slot.closed)
            if slot.open:
                self._merge_open_as_of(total, slot, as_of_ms)
        return self.aggregator.values(total)

    def _merge_open_as_of(self, total: list[Any], slot: Slot, as_of_ms: int) -> None:
        """Merge the slot's open rows at or before ``as_of_ms`` into ``total``.

        Events mostly arrive in time order, so most reads cover every open row: their merge is
        kept on the slot and updated as events arrive.
        """
        if slot.open_merged is None:
            slot.open_merged = (max(slot.open), self._merge_open(slot))
        latest_ms, merged = slot.open_merged
        if as_of_ms >= latest_ms:
            self.aggregator.merge_into(total, merged)
            return
        for ts, row in slot.open.items():
            if ts <= as_of_ms:
                self.aggregator.merge_into(total, row)

    def _earlier_slots(self, state: EntityState, current_slot: int) -> list[Any]:
        """Merged row of the window's slots before ``current_slot``, cached per entity.

        An event into one of those slots drops the cached row (see ``apply_event``).
        """
        cached = state.earlier_slots.get(current_slot)
        if cached is not None:
            return cached
        merged = self.aggregator.empty()
        for slot_index in range(current_slot + 1 - self.slots_per_window, current_slot):
            slot = state.slots.get(slot_index)
            if slot is None:
                continue
            if slot.closed is not None:
                self.aggregator.merge_into(merged, slot.closed)
            for row in slot.open.values():
                self.aggregator.merge_into(merged, row)
        if len(state.earlier_slots) >= _CACHED_WINDOWS:
            state.earlier_slots.pop(min(state.earlier_slots))
        state.earlier_slots[current_slot] = merged
        return merged

    def latest_event_ms(self, state: EntityState, as_of_ms: int) -> int | None:
        """Return the entity's latest accepted event time at or before ``as_of_ms``."""
        if state.latest_ms is not None and state.latest_ms <= as_of_ms:
            return state.latest_ms
        latest = state.retired_latest_ms
        for slot_index, slot in state.slots.items():
            if slot_index * self.hop_ms > as_of_ms:
                continue
            if slot.closed is not None:
                candidate = slot.closed[MAX_TS]
            else:
                candidate = max((ts for ts in slot.open if ts <= as_of_ms), default=None)
            if candidate is not None and (latest is None or candidate > latest):
                latest = candidate
        return latest

    def _emission(self, state: EntityState, record_ts: int) -> Emission:
        latest = self.latest_event_ms(state, record_ts)
        if latest is None:
            raise RuntimeError(f"record at {record_ts} has no event at or before it")
        return Emission(record_ts, latest, self.value_as_of(state, record_ts))

    def _affected_records(self, state: EntityState, ts_ms: int, leaves_at: int) -> set[int]:
        """Record times after ``ts_ms`` whose values or latest event time a new event may change."""
        affected = {
            r
            for r, (latest, _) in state.records.items()
            if r > ts_ms and (r < leaves_at or latest < ts_ms)
        }
        if state.through_ms is not None and leaves_at <= state.through_ms:
            affected.add(leaves_at)
        affected.discard(ts_ms)
        return affected

    def _changes_at_boundary(self, state: EntityState, boundary: int, emission: Emission) -> bool:
        return emission.values != self.value_as_of(state, boundary - 1)

    def _merge_open(self, slot: Slot) -> list[Any]:
        total = self.aggregator.empty()
        for row in slot.open.values():
            self.aggregator.merge_into(total, row)
        return total
