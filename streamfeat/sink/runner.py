"""The archive sink: feature-log topic in, Parquet files out, offsets committed after the files.

Per feature-log partition the sink gathers messages into a batch that spans an offset range,
decodes the batch column by column, writes its files and only then commits the offset after
the range. A crash in between leaves files whose offsets are not committed; the next run
reads those offsets again, finds the files (their names carry the range) and cuts its batch
at the same offsets, so it writes the same files again instead of adding rows.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streamfeat.admin.offsets import committed_offsets
from streamfeat.definitions.models import Topology
from streamfeat.sink.batch import BatchDecoder
from streamfeat.sink.layout import file_name
from streamfeat.sink.source_types import SourceTypes
from streamfeat.sink.writer import ArchiveWriter

logger = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 50_000
"""Messages per batch, at most; a batch larger than this is cut and written."""
DEFAULT_MAX_DELAY = timedelta(seconds=10)
JOIN_TIMEOUT = timedelta(seconds=30)
"""How long ``until_idle`` waits for a first partition assignment before giving up."""

_POLL_S = 0.2
_CONSUME_MESSAGES = 10_000
_COMMITTED_TIMEOUT_S = 30.0


@dataclass
class SinkStats:
    """Counts of one sink run."""

    records: int = 0
    files: int = 0
    batches: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Records not archived, by reason: ``tombstone`` or ``unknown_view:<name>``."""


@dataclass
class _Batch:
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


@dataclass
class _PartitionState:
    next_start: int | None
    known_ranges: dict[int, int]
    batch: _Batch | None = None
    at_end: bool = False


def sink_group(topology: Topology, archive_dir: Path) -> str:
    """Consumer group of the sink writing ``archive_dir``.

    Offsets belong to one archive folder: a sink pointed at a new or emptied folder reads the
    feature log from its start instead of resuming where another folder's sink stopped.
    """
    folder = hashlib.sha256(str(archive_dir.resolve()).encode()).hexdigest()[:12]
    return f"streamfeat.{topology.name}.sink.{folder}"


class ArchiveSink:
    """Consumes a topology's feature-log topic and writes the Parquet archive."""

    def __init__(
        self,
        topology: Topology,
        archive_dir: Path,
        *,
        bootstrap_servers: str,
        source_types: SourceTypes | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_delay: timedelta = DEFAULT_MAX_DELAY,
        consumer_config: dict[str, Any] | None = None,
    ) -> None:
        self._topology = topology
        self._topic = topology.feature_log
        archive_dir.mkdir(parents=True, exist_ok=True)
        self._writer = ArchiveWriter(topology, archive_dir, source_types)
        self._decoder = BatchDecoder(topology)
        self._max_records = max_records
        self._max_delay_s = max_delay.total_seconds()
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": sink_group(topology, archive_dir),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            **(consumer_config or {}),
        }
        self._partitions: dict[int, _PartitionState] = {}
        self._stop = threading.Event()
        self._stats = SinkStats()
        self._consumer: Consumer | None = None
        self._last_activity = 0.0

    def stop(self) -> None:
        """Ask a running ``run`` to finish its batches, commit and return."""
        self._stop.set()

    def run(self, *, until_idle: timedelta | None = None) -> SinkStats:
        """Consume until ``stop`` is called or, with ``until_idle``, until nothing arrived that
        long; then write and commit every pending batch and return the counts."""
        consumer = Consumer(self._config)
        self._consumer = consumer
        self._partitions = {}
        self._stats = SinkStats()
        started = time.monotonic()
        self._last_activity = started
        logger.info("sink_start topic=%s group=%s", self._topic, self._config["group.id"])
        consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            while not self._stop.is_set():
                self._handle(consumer.consume(_CONSUME_MESSAGES, _POLL_S))
                self._flush_due(time.monotonic())
                if until_idle is not None and self._idle_long_enough(until_idle, started):
                    break
            self._flush_all()
        finally:
            consumer.close()
            self._consumer = None
        logger.info(
            "sink_stop topic=%s records=%d files=%d batches=%d",
            self._topic,
            self._stats.records,
            self._stats.files,
            self._stats.batches,
        )
        return self._stats

    def _idle_long_enough(self, until_idle: timedelta, started: float) -> bool:
        now = time.monotonic()
        if now - self._last_activity < until_idle.total_seconds():
            return False
        if self._partitions:
            return True
        waited_s = now - started
        if waited_s >= (until_idle + JOIN_TIMEOUT).total_seconds():
            logger.warning("sink_no_assignment topic=%s waited_s=%.1f", self._topic, waited_s)
            return True
        return False

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = committed_offsets(consumer, partitions, _COMMITTED_TIMEOUT_S)
        ranges = self._writer.existing_ranges([tp.partition for tp in committed])
        for tp in committed:
            next_start = tp.offset if tp.offset >= 0 else None
            self._partitions[tp.partition] = _PartitionState(next_start, ranges[tp.partition])
            logger.info(
                "sink_partition_assigned topic=%s partition=%d committed_offset=%s "
                "archived_ranges=%d",
                self._topic,
                tp.partition,
                next_start,
                len(ranges[tp.partition]),
            )
        self._last_activity = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Uncommitted batches are dropped: the next owner reads their offsets again.
        for tp in partitions:
            state = self._partitions.pop(tp.partition, None)
            pending = len(state.batch.values) if state and state.batch else 0
            logger.info(
                "sink_partition_revoked topic=%s partition=%d dropped_records=%d",
                self._topic,
                tp.partition,
                pending,
            )

    def _handle(self, messages: list[Message]) -> None:
        """Add consumed messages to their partitions' batches, in order."""
        errors = list(map(Message.error, messages))
        # Not errors.count(None): comparing a KafkaError with None raises TypeError.
        if all(error is None for error in errors):
            self._add_runs(messages)
            return
        start = 0
        for position, error in enumerate(errors):
            if error is not None:
                self._add_runs(messages[start:position])
                self._handle_error(messages[position], error)
                start = position + 1
        self._add_runs(messages[start:])

    def _add_runs(self, messages: list[Message]) -> None:
        """Add error-free messages, one run of consecutive messages of a partition at a time."""
        if not messages:
            return
        # A message without an error has its partition and offset set.
        partitions: list[int] = list(map(Message.partition, messages))  # type: ignore[arg-type]
        offsets: list[int] = list(map(Message.offset, messages))  # type: ignore[arg-type]
        values = list(map(Message.value, messages))
        start = 0
        for position in range(1, len(messages) + 1):
            if position == len(messages) or partitions[position] != partitions[start]:
                self._add_run(partitions[start], offsets[start:position], values[start:position])
                start = position

    def _handle_error(self, message: Message, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            partition = message.partition()
            state = self._partitions.get(partition) if partition is not None else None
            if state is not None:
                state.at_end = True
            return
        if error.fatal():
            raise KafkaException(error)
        logger.warning("sink_consumer_error topic=%s error=%s", self._topic, error)

    def _add_run(self, partition: int, offsets: list[int], values: list[bytes | None]) -> None:
        """Add messages of one partition, in offset order, cutting batches where they end."""
        state = self._partitions.get(partition)
        if state is None:
            return
        self._last_activity = time.monotonic()
        state.at_end = False
        start = 0
        while start < len(offsets):
            batch = state.batch
            if batch is None:
                batch = state.batch = self._open_batch(state, offsets[start])
            if batch.limit_offset is not None and offsets[start] > batch.limit_offset:
                # The offset lies past the batch's limit, so every offset up to the limit has
                # been read (the missing ones were compacted away): close the batch there.
                self._flush(partition, state, batch.limit_offset)
                continue
            stop = self._batch_stop(batch, offsets, start)
            self._extend(batch, offsets[start:stop], values[start:stop])
            start = stop
            full = not batch.forced and batch.messages >= self._max_records
            if full or batch.limit_offset == batch.last_offset:
                self._flush(partition, state, batch.last_offset)

    def _batch_stop(self, batch: _Batch, offsets: list[int], start: int) -> int:
        """Return the end of the messages from ``start`` on that belong to ``batch``."""
        stop = len(offsets)
        if batch.limit_offset is not None:
            stop = bisect_right(offsets, batch.limit_offset, start)
        if not batch.forced:
            stop = min(stop, start + self._max_records - batch.messages)
        return stop

    def _extend(self, batch: _Batch, offsets: list[int], values: list[bytes | None]) -> None:
        batch.messages += len(offsets)
        batch.last_offset = offsets[-1]
        tombstones = values.count(None)
        if not tombstones:
            batch.values.extend(values)  # type: ignore[arg-type]
            batch.offsets.extend(offsets)
            return
        self._skip("tombstone", tombstones)
        for offset, value in zip(offsets, values, strict=True):
            if value is not None:
                batch.values.append(value)
                batch.offsets.append(offset)

    def _skip(self, reason: str, count: int) -> None:
        self._stats.skipped[reason] = self._stats.skipped.get(reason, 0) + count

    def _open_batch(self, state: _PartitionState, offset: int) -> _Batch:
        start = state.next_start if state.next_start is not None else offset
        archived_end = state.known_ranges.get(start)
        if archived_end is not None:
            return _Batch(start, time.monotonic(), archived_end, forced=True)
        later_starts = [first for first in state.known_ranges if first > start]
        limit = min(later_starts) - 1 if later_starts else None
        return _Batch(start, time.monotonic(), limit, forced=False)

    def _flush_due(self, now: float) -> None:
        for partition, state in list(self._partitions.items()):
            batch = state.batch
            if batch is None:
                continue
            if batch.forced:
                if state.at_end and batch.limit_offset is not None:
                    self._flush(partition, state, batch.limit_offset)
            elif now - batch.opened_at >= self._max_delay_s:
                self._flush(partition, state, batch.last_offset)

    def _flush_all(self) -> None:
        for partition, state in list(self._partitions.items()):
            batch = state.batch
            if batch is None:
                continue
            if not batch.forced:
                self._flush(partition, state, batch.last_offset)
            elif state.at_end and batch.limit_offset is not None:
                self._flush(partition, state, batch.limit_offset)
            else:
                # Writing fewer offsets than the archived file covers would change its name
                # and duplicate rows; the next run completes the range instead.
                logger.warning(
                    "sink_incomplete_batch_left topic=%s partition=%d first_offset=%d "
                    "last_offset=%s",
                    self._topic,
                    partition,
                    batch.start_offset,
                    batch.limit_offset,
                )

    def _flush(self, partition: int, state: _PartitionState, end_offset: int) -> None:
        batch = state.batch
        if batch is None:
            return
        rows = self._decoder.decode(partition, batch.values, batch.offsets)
        for reason, count in rows.skipped.items():
            self._skip(reason, count)
        name = file_name(partition, batch.start_offset, end_offset)
        paths = self._writer.write_decoded(name, rows.views, rows.records)
        self._commit(partition, end_offset + 1)
        state.batch = None
        state.next_start = end_offset + 1
        self._stats.records += rows.count
        self._stats.files += len(paths)
        self._stats.batches += 1
        logger.info(
            "sink_batch_written topic=%s partition=%d first_offset=%d last_offset=%d "
            "records=%d files=%d",
            self._topic,
            partition,
            batch.start_offset,
            end_offset,
            rows.count,
            len(paths),
        )

    def _commit(self, partition: int, next_offset: int) -> None:
        if self._consumer is None:
            return
        try:
            self._consumer.commit(
                offsets=[TopicPartition(self._topic, partition, next_offset)], asynchronous=False
            )
        except KafkaException as exc:
            # The files stay; a later commit or the next owner's run covers these offsets.
            logger.warning(
                "sink_commit_failed topic=%s partition=%d offset=%d error=%s",
                self._topic,
                partition,
                next_offset,
                exc,
            )
