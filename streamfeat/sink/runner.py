"""The archive sink: feature-log topic in, Parquet files out, offsets committed after the files.

Per feature-log partition the sink gathers records into a batch that spans an offset range,
writes the batch's files and only then commits the offset after the range. A crash in
between leaves files whose offsets are not committed; the next run reads those offsets
again, finds the files (their names carry the range) and cuts its batch at the same offsets,
so it writes the same files again instead of adding rows.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streamfeat.admin.offsets import committed_offsets
from streamfeat.definitions.models import Topology
from streamfeat.errors import SerializationError
from streamfeat.featurelog.codec import decode_record
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.sink.source_types import SourceTypes
from streamfeat.sink.writer import ArchiveWriter

logger = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 50_000
DEFAULT_MAX_DELAY = timedelta(seconds=10)
JOIN_TIMEOUT = timedelta(seconds=30)
"""How long ``until_idle`` waits for a first partition assignment before giving up."""

_POLL_S = 0.2
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
    records: list[FeatureRecord] = field(default_factory=list)


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
        self._max_records = max_records
        self._max_delay_s = max_delay.total_seconds()
        self._views = {view.name for view in topology.feature_views}
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
                self._handle(consumer.poll(_POLL_S))
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
            pending = len(state.batch.records) if state and state.batch else 0
            logger.info(
                "sink_partition_revoked topic=%s partition=%d dropped_records=%d",
                self._topic,
                tp.partition,
                pending,
            )

    def _handle(self, message: Message | None) -> None:
        if message is None:
            return
        error = message.error()
        if error is not None:
            self._handle_error(message, error)
            return
        partition, offset = message.partition(), message.offset()
        state = self._partitions.get(partition) if partition is not None else None
        if state is None or partition is None or offset is None:
            return
        self._last_activity = time.monotonic()
        state.at_end = False
        record = self._decode(message)
        self._add(partition, state, offset, record)

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

    def _decode(self, message: Message) -> FeatureRecord | None:
        """Decode a message; None for a tombstone or a view the topology lacks (both counted)."""
        value = message.value()
        if value is None:
            self._skip("tombstone")
            return None
        try:
            record = decode_record(value)
        except SerializationError as exc:
            logger.error(
                "sink_undecodable_record topic=%s partition=%s offset=%s error=%s",
                self._topic,
                message.partition(),
                message.offset(),
                exc,
            )
            raise SerializationError(
                f"feature-log record at {self._topic} partition {message.partition()} offset "
                f"{message.offset()} cannot be decoded ({exc}); the sink stops there so that "
                "no record is skipped unseen: fix the schema or the producer and run it again"
            ) from exc
        if record.view not in self._views:
            reason = f"unknown_view:{record.view}"
            if reason not in self._stats.skipped:
                logger.warning(
                    "sink_unknown_view topic=%s partition=%s offset=%s feature_view=%s",
                    self._topic,
                    message.partition(),
                    message.offset(),
                    record.view,
                )
            self._skip(reason)
            return None
        return record

    def _skip(self, reason: str) -> None:
        self._stats.skipped[reason] = self._stats.skipped.get(reason, 0) + 1

    def _add(
        self, partition: int, state: _PartitionState, offset: int, record: FeatureRecord | None
    ) -> None:
        while True:
            batch = state.batch
            if batch is None:
                batch = state.batch = self._open_batch(state, offset)
            if batch.limit_offset is None or offset <= batch.limit_offset:
                break
            # The offset lies past the batch's limit, so every offset up to the limit has
            # been read (the missing ones were compacted away): close the batch there.
            self._flush(partition, state, batch.limit_offset)
        batch.last_offset = offset
        if record is not None:
            batch.records.append(record)
        if batch.limit_offset == offset:
            self._flush(partition, state, offset)

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
            elif (
                len(batch.records) >= self._max_records
                or now - batch.opened_at >= self._max_delay_s
            ):
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
        paths = self._writer.write_batch(partition, batch.start_offset, end_offset, batch.records)
        self._commit(partition, end_offset + 1)
        state.batch = None
        state.next_start = end_offset + 1
        self._stats.records += len(batch.records)
        self._stats.files += len(paths)
        self._stats.batches += 1
        logger.info(
            "sink_batch_written topic=%s partition=%d first_offset=%d last_offset=%d "
            "records=%d files=%d",
            self._topic,
            partition,
            batch.start_offset,
            end_offset,
            len(batch.records),
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
