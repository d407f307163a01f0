"""Batches on their way into the archive, while the sink reads on.

A closed batch is decoded in a background thread and its files are written by the writer's
threads. NumPy's array operations and pyarrow's encoder release the GIL, so part of that
work runs beside the sink's consumer. The batches come out in the order they went in, so
that a partition's offsets are committed in order.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from streamfeat.sink.batches import Batch
from streamfeat.sink.decoding import BatchDecoder, DecodedRows
from streamfeat.sink.layout import file_name
from streamfeat.sink.writer import ArchiveWriter, PendingFiles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WrittenBatch:
    """A batch whose files are all written."""

    partition: int
    first_offset: int
    last_offset: int
    records: int
    files: list[Path]
    skipped: dict[str, int]
    """Messages not archived, by reason ``unknown_view:<name>``."""


@dataclass(frozen=True)
class _Started:
    partition: int
    first_offset: int
    last_offset: int
    job: Future[tuple[DecodedRows, PendingFiles]]

    def done(self) -> bool:
        return self.job.done() and (self.job.exception() is not None or self.job.result()[1].done())


class BatchWrites:
    """Decodes and writes closed batches in the background, at most ``max_in_flight`` at once."""

    def __init__(self, decoder: BatchDecoder, writer: ArchiveWriter, max_in_flight: int) -> None:
        self._decoder = decoder
        self._writer = writer
        self._max_in_flight = max_in_flight
        self._started: deque[_Started] = deque()
        self._decoding: ThreadPoolExecutor | None = None

    def start(self, partition: int, batch: Batch, last_offset: int) -> None:
        """Start decoding and writing ``batch``, which covers offsets up to ``last_offset``."""
        if self._decoding is None:
            # One thread keeps the batches' decoding in order and its memory bounded.
            self._decoding = ThreadPoolExecutor(1, thread_name_prefix="archive-decode")
        name = file_name(partition, batch.start_offset, last_offset)
        job = self._decoding.submit(self._decode_and_write, partition, batch, name)
        self._started.append(_Started(partition, batch.start_offset, last_offset, job))

    def finished(self, *, wait: bool = False) -> Iterator[WrittenBatch]:
        """Yield the written batches, in the order they were started.

        Waits for the oldest ones until at most ``max_in_flight`` are left, or, with ``wait``,
        until none is. Raises the error of a failed batch, before any later batch.
        """
        limit = 0 if wait else self._max_in_flight
        while self._started:
            oldest = self._started[0]
            if len(self._started) <= limit and not oldest.done():
                return
            rows, files = oldest.job.result()
            paths = files.result()
            self._started.popleft()
            yield WrittenBatch(
                oldest.partition,
                oldest.first_offset,
                oldest.last_offset,
                rows.count,
                paths,
                rows.skipped,
            )

    def abandon(self) -> None:
        """Let every started batch finish, successful or not, and forget them all."""
        for started in self._started:
            try:
                started.job.result()[1].wait()
            except Exception as exc:  # noqa: BLE001 - its offsets stay uncommitted either way
                logger.warning(
                    "sink_batch_abandoned partition=%d first_offset=%d last_offset=%d error=%s",
                    started.partition,
                    started.first_offset,
                    started.last_offset,
                    exc,
                )
        self._started.clear()

    def close(self) -> None:
        """Stop the decoding thread until the next ``start``.

        Call ``finished(wait=True)`` or ``abandon`` first.
        """
        if self._decoding is not None:
            self._decoding.shutdown(wait=True)
            self._decoding = None

    def _decode_and_write(
        self, partition: int, batch: Batch, name: str
    ) -> tuple[DecodedRows, PendingFiles]:
        rows = self._decoder.decode(partition, batch.values, batch.offsets)
        return rows, self._writer.start_decoded(name, rows.views, rows.records)
