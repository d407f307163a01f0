"""Decide from consumer-group offsets when the worker and the sink have processed everything.

The demo replays a fixed data set, then waits. Everything is processed once the worker's group
has committed the end offset of every partition of the source and repartition topics, and the
sink's group the end offset of every feature-log partition. The worker keeps writing clock marks
to the repartition topics while its sources are idle, so the check has to hold twice in a row
before it counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

TopicPartitionKey = tuple[str, int]
"""A partition as (topic, partition number)."""


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """A consumer group's position in one partition, and the partition's offset range."""

    committed: int | None
    """Next offset the group will read, or None when the group has committed nothing there."""
    low: int
    """First offset still in the partition."""
    end: int
    """Offset the next message written to the partition will get."""

    @property
    def position(self) -> int:
        """The committed offset, or ``low`` when the group has committed nothing yet."""
        return self.low if self.committed is None else self.committed

    @property
    def caught_up(self) -> bool:
        return self.position >= self.end


def processed(offsets: Mapping[TopicPartitionKey, PartitionOffsets]) -> int:
    """Count the messages the group has consumed and committed, over all partitions."""
    return sum(partition.position - partition.low for partition in offsets.values())


def available(offsets: Mapping[TopicPartitionKey, PartitionOffsets]) -> int:
    """Count the messages in all partitions."""
    return sum(partition.end - partition.low for partition in offsets.values())


@dataclass(frozen=True)
class OffsetSnapshot:
    """The worker's and the sink's offsets, read together at one moment."""

    worker: Mapping[TopicPartitionKey, PartitionOffsets]
    """Source and repartition topics, as the worker's group has committed them."""
    sink: Mapping[TopicPartitionKey, PartitionOffsets]
    """Feature-log topic, as the sink's group has committed it."""
    source_topics: Collection[str]

    @property
    def caught_up(self) -> bool:
        """True when both groups have committed the end offset of every partition they read."""
        partitions = [*self.worker.values(), *self.sink.values()]
        return all(partition.caught_up for partition in partitions)

    @property
    def events_processed(self) -> int:
        """Source events the worker has consumed and committed."""
        return processed(self._source_offsets())

    @property
    def events_total(self) -> int:
        """Source events in the source topics."""
        return available(self._source_offsets())

    @property
    def forwarded_aggregated(self) -> int:
        """Repartition-topic messages (events and clock marks) the worker has aggregated."""
        return processed(self._forwarded_offsets())

    @property
    def forwarded_total(self) -> int:
        """Messages in the repartition topics."""
        return available(self._forwarded_offsets())

    @property
    def records_archived(self) -> int:
        """Feature-log records the sink has written to the archive and committed."""
        return processed(self.sink)

    @property
    def records_total(self) -> int:
        """Feature-log records written by the worker so far."""
        return available(self.sink)

    def positions(self) -> tuple[tuple[TopicPartitionKey, int], ...]:
        """Return every committed position in a stable order, so that a change shows progress."""
        worker = sorted((key, offsets.position) for key, offsets in self.worker.items())
        sink = sorted((key, offsets.position) for key, offsets in self.sink.items())
        return (*worker, *sink)

    def _source_offsets(self) -> dict[TopicPartitionKey, PartitionOffsets]:
        return {key: value for key, value in self.worker.items() if key[0] in self.source_topics}

    def _forwarded_offsets(self) -> dict[TopicPartitionKey, PartitionOffsets]:
        return {
            key: value for key, value in self.worker.items() if key[0] not in self.source_topics
        }


class Verdict(StrEnum):
    """Outcome of one completion check."""

    WAITING = "waiting"
    DONE = "done"
    STALLED = "stalled"


class CompletionWatch:
    """Turns a series of offset snapshots into waiting, done or stalled.

    Done takes ``confirmations`` caught-up snapshots in a row. Stalled means no committed
    offset has moved for ``stall_timeout`` while not done. ``monotonic_s`` is the clock in
    seconds, a parameter so that tests can drive it.
    """

    def __init__(
        self,
        stall_timeout: timedelta,
        *,
        confirmations: int = 2,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stall_timeout_s = stall_timeout.total_seconds()
        self._confirmations = confirmations
        self._monotonic_s = monotonic_s
        self._caught_up_in_a_row = 0
        self._last_positions: tuple[tuple[TopicPartitionKey, int], ...] | None = None
        self._last_progress_s = monotonic_s()

    @property
    def seconds_without_progress(self) -> float:
        return self._monotonic_s() - self._last_progress_s

    def observe(self, snapshot: OffsetSnapshot) -> Verdict:
        """Take the next snapshot into account and return the verdict so far."""
        positions = snapshot.positions()
        if positions != self._last_positions:
            self._last_positions = positions
            self._last_progress_s = self._monotonic_s()
        self._caught_up_in_a_row = self._caught_up_in_a_row + 1 if snapshot.caught_up else 0
        if self._caught_up_in_a_row >= self._confirmations:
            return Verdict.DONE
        if self.seconds_without_progress >= self._stall_timeout_s:
            return Verdict.STALLED
        return Verdict.WAITING
