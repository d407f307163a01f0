"""Batches of one feature-log partition: which offsets go into which archive files.

A batch covers a range of offsets and becomes one file per (view, event date), named after
the range. Files already in the archive fix the ranges of the batches that cover the same
offsets again, so a re-run after a crash rewrites those files instead of adding rows.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass
class Batch:
    """Messages of one partition read since the batch opened, tombstones left out."""

    start_offset: int
    opened_at: float
    limit_offset: int | None
    """Last offset the batch may cover: the end of a file range already in the archive
    (``forced``) or the offset before the next such range."""
    forced: bool
    last_offset: int = -1
    messages: int = 0
    """Messages read into the batch, tombstones included."""
    values: list[bytes] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    """Offset of each of ``values``."""

    def extend(self, offsets: list[int], values: list[bytes | None]) -> None:
        """Add consecutive messages; a tombstone (None) only moves ``last_offset``."""
        self.messages += len(offsets)
        self.last_offset = offsets[-1]
        if None not in values:
            self.values.extend(values)  # type: ignore[arg-type]
            self.offsets.extend(offsets)
            return
        for offset, value in zip(offsets, values, strict=True):
            if value is not None:
                self.values.append(value)
                self.offsets.append(offset)


@dataclass
class PartitionBatches:
    """The open batch of one partition, and where its next batches start and end."""

    next_start: int | None
    """Offset the next batch starts at: the committed offset, or None to start at the first
    message read."""
    known_ranges: dict[int, int]
    """Offset ranges of the files already in the archive: first offset -> last offset."""
    batch: Batch | None = None
    at_end: bool = False
    """True once every message of the partition has been read."""

    def add(
        self, offsets: list[int], values: list[bytes | None], max_messages: int
    ) -> list[tuple[Batch, int]]:
        """Add consecutive messages of the partition, in offset order.

        Returns the batches the messages closed, each with the last offset it covers.
        """
        closed = []
        start = 0
        while start < len(offsets):
            batch = self.batch if self.batch is not None else self._open(offsets[start])
            if batch.limit_offset is not None and offsets[start] > batch.limit_offset:
                # The offset lies past the batch's limit, so every offset up to the limit has
                # been read (the missing ones were compacted away): close the batch there.
                closed.append(self.close(batch, batch.limit_offset))
                continue
            stop = len(offsets)
            if batch.limit_offset is not None:
                stop = bisect_right(offsets, batch.limit_offset, start)
            if not batch.forced:
                stop = min(stop, start + max_messages - batch.messages)
            batch.extend(offsets[start:stop], values[start:stop])
            start = stop
            full = not batch.forced and batch.messages >= max_messages
            if full or batch.limit_offset == batch.last_offset:
                closed.append(self.close(batch, batch.last_offset))
        return closed

    def close(self, batch: Batch, last_offset: int) -> tuple[Batch, int]:
        """Close the open ``batch`` at ``last_offset``; the next one starts after it."""
        self.batch = None
        self.next_start = last_offset + 1
        return batch, last_offset

    def _open(self, offset: int) -> Batch:
        start = self.next_start if self.next_start is not None else offset
        archived_end = self.known_ranges.get(start)
        if archived_end is not None:
            self.batch = Batch(start, time.monotonic(), archived_end, forced=True)
            return self.batch
        later_starts = [first for first in self.known_ranges if first > start]
        limit = min(later_starts) - 1 if later_starts else None
        self.batch = Batch(start, time.monotonic(), limit, forced=False)
        return self.batch
