"""What the online store served during a replay, from the recorded writes and read-backs.

The value online at ``t`` is what a read with ``as_of=t`` returns after the first write at which
the emission clock is strictly past ``t``. "At" is not enough: an event exactly at the watermark
is still accepted, so a clock equal to ``t`` can still see an event at ``t`` that changes the
value. Before that write the value at ``t`` may legitimately change. After it, a read at ``t``
returns that value until a later as-of time replaces it, and ``too_old`` from then on.

The history also replays the written records per (view, entity) with the store's rule, so a
test can check that Redis held exactly that after every write. By that rule a write replaces the
stored value when its as-of time is equal or later, never when earlier, also within one batch.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from streamfeat.featurelog.record import EntityKey, FeatureRecord, FeatureValue
from tests.consistency.recording import CapturedWrite, StoredValue, StoreKey

_NO_CLOCK = -(2**63)

Interval = tuple[EntityKey, int, int]
"""(entity, first time, last time), both inclusive, in epoch milliseconds."""


class ServedStatus(StrEnum):
    """Status of a read at ``t`` once the emission clock had passed ``t``, or why there is none."""

    OK = "ok"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"
    TOO_OLD = "too_old"
    """The stored as-of time had passed ``t`` before the clock did: nothing to compare."""
    CLOCK_BEHIND = "clock_behind"
    """No write happened with the emission clock past ``t``."""


@dataclass(frozen=True, slots=True)
class ServedValue:
    """The value a read at ``t`` returned once the emission clock was past ``t``."""

    status: ServedStatus
    values: dict[str, FeatureValue] | None
    stored: StoredValue | None
    write_index: int | None

    @property
    def is_defined(self) -> bool:
        return self.status not in (ServedStatus.TOO_OLD, ServedStatus.CLOCK_BEHIND)


@dataclass(frozen=True, slots=True)
class StoreDeviation:
    """A write after which Redis held something else than the store's rule gives."""

    write_index: int
    key: StoreKey
    expected: StoredValue
    stored: StoredValue | None


@dataclass
class OnlineHistory:
    """Per (view, entity), the records written and the values Redis held, in write order."""

    clocks_ms: list[int]
    """Emission clock per write (a very low number while there was none)."""
    stored: dict[StoreKey, list[StoredValue]] = field(default_factory=dict)
    """Each value Redis held after a write that changed it."""
    stored_at: dict[StoreKey, list[int]] = field(default_factory=dict)
    """The write index of each value in ``stored``."""
    written: dict[StoreKey, list[tuple[int, FeatureRecord]]] = field(default_factory=dict)
    """(write index, record) for every record written, kept by the store or not."""
    deviations: list[StoreDeviation] = field(default_factory=list)
    _written_by_as_of: dict[StoreKey, list[StoredValue]] = field(default_factory=dict)

    @classmethod
    def replay(cls, writes: Sequence[CapturedWrite]) -> OnlineHistory:
        """Collect what Redis held after each write and compare it with the store's rule."""
        history = cls([_NO_CLOCK if w.clock_ms is None else w.clock_ms for w in writes])
        expected: dict[StoreKey, FeatureRecord] = {}
        for index, write in enumerate(writes):
            for record in write.records:
                key = (record.view, record.entity)
                history.written.setdefault(key, []).append((index, record))
                current = expected.get(key)
                if current is None or record.event_ts_ms >= current.event_ts_ms:
                    expected[key] = record
            for key, stored in write.stored_after.items():
                history._note_stored(index, key, StoredValue.of(expected[key]), stored)
        return history

    def _note_stored(
        self, index: int, key: StoreKey, expected: StoredValue, stored: StoredValue | None
    ) -> None:
        if stored != expected:
            self.deviations.append(StoreDeviation(index, key, expected, stored))
        if stored is None:
            return
        values = self.stored.setdefault(key, [])
        if not values or values[-1] != stored:
            values.append(stored)
            self.stored_at.setdefault(key, []).append(index)

    def clock_goes_back_at(self) -> int | None:
        """Index of the first write whose clock is below the one before, else None."""
        for index in range(1, len(self.clocks_ms)):
            if self.clocks_ms[index] < self.clocks_ms[index - 1]:
                return index
        return None

    @property
    def final_clock_ms(self) -> int:
        return self.clocks_ms[-1] if self.clocks_ms else _NO_CLOCK

    def value_at(self, view: str, entity: EntityKey, t_ms: int, ttl_ms: int | None) -> ServedValue:
        """Return the value online at ``t_ms``, with the TTL applied at ``t_ms``."""
        first = bisect.bisect_right(self.clocks_ms, t_ms)
        if first == len(self.clocks_ms):
            return ServedValue(ServedStatus.CLOCK_BEHIND, None, None, None)
        stored = self.stored_after(view, entity, first)
        if stored is None:
            return ServedValue(ServedStatus.NOT_FOUND, None, None, first)
        if stored.as_of_ms > t_ms:
            return ServedValue(ServedStatus.TOO_OLD, None, stored, first)
        if ttl_ms is not None and stored.latest_event_ts_ms < t_ms - ttl_ms:
            return ServedValue(ServedStatus.EXPIRED, None, stored, first)
        return ServedValue(ServedStatus.OK, dict(stored.values), stored, first)

    def stored_after(self, view: str, entity: EntityKey, write_index: int) -> StoredValue | None:
        """The value Redis held for (view, entity) right after write ``write_index``."""
        position = bisect.bisect_right(self.stored_at.get((view, entity), []), write_index)
        return self.stored[(view, entity)][position - 1] if position else None

    def final(self, view: str, entity: EntityKey) -> StoredValue | None:
        values = self.stored.get((view, entity))
        return values[-1] if values else None

    def last_stored_at(
        self, view: str, entity: EntityKey, t_ms: int, ttl_ms: int | None
    ) -> dict[str, FeatureValue] | None:
        """Values of the last value Redis held with as-of time at or before ``t_ms``, whatever
        the clock was then, with the TTL applied at ``t_ms``.

        This reading of "the value online at t" ignores the clock. It is wrong where no value
        at ``t`` was stored once the clock passed ``t``. One case: a slower source partition
        delivered an event at or before ``t`` after the stored value had moved past ``t``, so
        the store rejected the corrected records as older. Another: one write contains
        several records of an entity, and Redis stores only the latest of them.
        """
        return _values_at(self.stored.get((view, entity), []), t_ms, ttl_ms)

    def written_at(
        self, view: str, entity: EntityKey, t_ms: int, ttl_ms: int | None
    ) -> dict[str, FeatureValue] | None:
        """Values of the record the worker wrote online with the latest as-of time at or before
        ``t_ms`` (its last version), kept by the store or not, with the TTL applied at ``t_ms``.
        """
        key = (view, entity)
        if key not in self._written_by_as_of:
            values = [StoredValue.of(record) for _, record in self.written.get(key, [])]
            # A stable sort keeps the versions of one as-of time in write order.
            self._written_by_as_of[key] = sorted(values, key=lambda value: value.as_of_ms)
        return _values_at(self._written_by_as_of[key], t_ms, ttl_ms)

    def observable_intervals(self, view: str) -> list[Interval]:
        """Return the times at which ``value_at`` has a value to compare, because a value with
        as-of time at or before ``t`` was still stored when the emission clock passed ``t``."""
        intervals = []
        for (name, entity), values in self.stored.items():
            if name != view:
                continue
            indexes = self.stored_at[(name, entity)]
            for position, (index, stored) in enumerate(zip(indexes, values, strict=True)):
                following = indexes[position + 1] if position + 1 < len(indexes) else None
                last_write = (len(self.clocks_ms) if following is None else following) - 1
                clock_before = self.clocks_ms[index - 1] if index > 0 else _NO_CLOCK
                first_ms = max(clock_before, stored.as_of_ms)
                last_ms = self.clocks_ms[last_write] - 1
                if first_ms <= last_ms:
                    intervals.append((entity, first_ms, last_ms))
        return intervals

    def writes_near(self, view: str, entity: EntityKey, t_ms: int, span_ms: int) -> list[str]:
        """Describe the records written for (view, entity) with as-of times near ``t_ms``."""
        return [
            f"write {index}: {describe(StoredValue.of(record))}"
            for index, record in self.written.get((view, entity), [])
            if abs(record.event_ts_ms - t_ms) <= span_ms
        ]


def _values_at(
    values: Sequence[StoredValue], t_ms: int, ttl_ms: int | None
) -> dict[str, FeatureValue] | None:
    """Values of the last of ``values`` (sorted by as-of time) with as-of time at or before
    ``t_ms``, None when there is none or when the TTL has passed at ``t_ms``."""
    position = bisect.bisect_right(values, t_ms, key=lambda value: value.as_of_ms)
    chosen = values[position - 1] if position else None
    if chosen is None or (ttl_ms is not None and chosen.latest_event_ts_ms < t_ms - ttl_ms):
        return None
    return dict(chosen.values)


def describe(value: StoredValue | None) -> str:
    """One line for a failure message: as-of time, latest event time, values."""
    if value is None:
        return "nothing"
    return f"as_of={value.as_of_ms} latest={value.latest_event_ts_ms} values={value.values}"
