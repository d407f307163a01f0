"""Watermark and emission clock of one source partition.

The watermark is the highest accepted event time minus the allowed lateness; an event below it
is late, one exactly at it is accepted, and dead-lettered events never move it. The emission
clock is the watermark, plus, while the partition is idle, the wall-clock time elapsed since its
last message; it never goes back. All three survive restarts with the state.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PartitionClock:
    """Watermark and emission clock of one source partition, in epoch milliseconds."""

    allowed_lateness_ms: int
    idle_timeout_ms: int
    max_event_ms: int | None = None
    emission_ms: int | None = None
    last_message_wall_ms: int | None = None

    @property
    def watermark_ms(self) -> int | None:
        if self.max_event_ms is None:
            return None
        return self.max_event_ms - self.allowed_lateness_ms

    def is_late(self, event_ms: int) -> bool:
        """True when ``event_ms`` is below the watermark."""
        watermark = self.watermark_ms
        return watermark is not None and event_ms < watermark

    def note_message(self, wall_ms: int) -> None:
        """Record that a message of any kind arrived at wall-clock time ``wall_ms``."""
        self.last_message_wall_ms = wall_ms

    def accept(self, event_ms: int) -> None:
        """Move the watermark and the emission clock for an accepted event."""
        if self.max_event_ms is None or event_ms > self.max_event_ms:
            self.max_event_ms = event_ms
        self._raise_emission(self.watermark_ms)

    def advance_idle(self, wall_ms: int) -> bool:
        """Move the emission clock with the wall clock while idle; return True if it moved."""
        watermark = self.watermark_ms
        if watermark is None or self.last_message_wall_ms is None:
            return False
        quiet_ms = wall_ms - self.last_message_wall_ms
        if quiet_ms < self.idle_timeout_ms:
            return False
        before = self.emission_ms
        self._raise_emission(watermark + quiet_ms)
        return self.emission_ms != before

    def _raise_emission(self, candidate_ms: int | None) -> None:
        if candidate_ms is not None and (
            self.emission_ms is None or candidate_ms > self.emission_ms
        ):
            self.emission_ms = candidate_ms

    def to_wire(self) -> list[int | None]:
        return [self.max_event_ms, self.emission_ms, self.last_message_wall_ms]

    def restore(self, wire: list[int | None]) -> None:
        """Restore a stored clock; the partition's quiet time counts from its last message."""
        self.max_event_ms, self.emission_ms, self.last_message_wall_ms = wire[0], wire[1], wire[2]
