"""The archive sink: feature-log topic in, Parquet files out, offsets committed after the files.

Per feature-log partition the sink gathers messages into a batch that spans an offset range,
decodes the batch column by column, writes its files and only then commits the offset after
the range. A crash in between leaves files whose offsets are not committed; the next run
reads those offsets again, finds the files (their names carry the range) and cuts its batch
at the same offsets, so it writes the same files again instead of adding rows.

Decoding and writing run in background threads (see ``inflight``) while the consumer reads
on. Batches are committed in the order they closed, each once all its files are written.
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

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streamfeat.admin.offsets import committed_offsets
from streamfeat.definitions.models import Topology
from streamfeat.observability.ratelimit import RateLimitedLog
from streamfeat.sink.batches import Batch, PartitionBatches
from streamfeat.sink.decoding import BatchDecoder
from streamfeat.sink.inflight import BatchWrites
from streamfeat.sink.source_types import SourceTypes
from streamfeat.sink.writer import ArchiveWriter
from streamfeat.stream.fencing import RejoinBudget, leaves_consumer_unusable
from streamfeat.stream.outages import ServiceHealth, client_logging

logger = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 50_000
"""Messages per batch, tombstones included; a batch that reaches it is closed and written."""
DEFAULT_MAX_DELAY = timedelta(seconds=10)
JOIN_TIMEOUT = timedelta(seconds=30)
"""How long ``until_idle`` waits for a first partition assignment before giving up."""

_POLL_S = 0.2
_CONSUME_MESSAGES = 500
"""Messages per consume call. Each message is an object Python's cyclic collector tracks,
and CPython runs a collection once 700 more such objects exist than when it last ran. The
messages of a call are freed before the next call. So with fewer than 700 per call the
collector does not run on them. With 10,000 per call, collections took a third of the main
thread's time in a profile of the 2M-record sink benchmark."""
_MAX_IN_FLIGHT = 4
"""Batches whose files may be in writing while the sink reads on."""
_COMMITTED_TIMEOUT_S = 30.0


@dataclass
class SinkStats:
    """Counts of one sink run."""

    records: int = 0
    files: int = 0
    batches: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Records not archived, by reason: ``tombstone`` or ``unknown_view:<name>``."""


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
        self._writes = BatchWrites(self._decoder, self._writer, _MAX_IN_FLIGHT)
        self._max_records = max_records
        self._max_delay_s = max_delay.total_seconds()
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": sink_group(topology, archive_dir),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            # Ten times librdkafka's default per partition: fewer fetch round trips while
            # the sink catches up, at up to 10 MiB per partition of read-ahead memory.
            "max.partition.fetch.bytes": 10 * 2**20,
            **client_logging(self._on_kafka_error),
            **(consumer_config or {}),
        }
        self._kafka_health = ServiceHealth("kafka")
        self._kafka_errors = RateLimitedLog(logger, interval_s=60.0)
        self._fatal_error: KafkaError | None = None
        self._rejoins = RejoinBudget()
        self._consumer_broken = False
        self._partitions: dict[int, PartitionBatches] = {}
        self._stop = threading.Event()
        self._stats = SinkStats()
        self._consumer: Consumer | None = None
        self._last_activity = 0.0
        self._messages_read = 0

    def stop(self) -> None:
        """Ask a running ``run`` to finish its batches, commit and return."""
        self._stop.set()

    def run(self, *, until_idle: timedelta | None = None) -> SinkStats:
        """Consume until ``stop`` is called or, with ``until_idle``, until nothing arrived that
        long; then write and commit every pending batch and return the counts."""
        self._partitions = {}
        self._stats = SinkStats()
        started = time.monotonic()
        self._last_activity = started
        logger.info("sink_start topic=%s group=%s", self._topic, self._config["group.id"])
        consumer = self._subscribed_consumer()
        try:
            while not self._stop.is_set():
                read = self._messages_read
                consumed = consumer.consume(_CONSUME_MESSAGES, _POLL_S)
                if self._fatal_error is not None:
                    raise KafkaException(self._fatal_error)
                if consumed:
                    self._kafka_health.answered()
                self._handle(consumed)
                self._flush_due(time.monotonic())
                self._commit_written()
                if self._consumer_broken:
                    consumer = self._replace_consumer(consumer)
                if self._messages_read != read:
                    # The idle time starts after the messages' work, which can wait for writes.
                    self._last_activity = time.monotonic()
                if until_idle is not None and self._idle_long_enough(until_idle, started):
                    break
            self._flush_all()
            self._commit_written(wait=True)
        except BaseException:
            # Nothing more is committed; the files in writing are finished for the next run.
            self._writes.abandon()
            raise
        finally:
            consumer.close()
            self._writes.close()
            self._consumer = None
        logger.info(
            "sink_stop topic=%s records=%d files=%d batches=%d",
            self._topic,
            self._stats.records,
            self._stats.files,
            self._stats.batches,
        )
        return self._stats

    def _subscribed_consumer(self) -> Consumer:
        consumer = Consumer(self._config)
        self._consumer = consumer
        consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        return consumer

    def _replace_consumer(self, broken: Consumer) -> Consumer:
        """Close a consumer that failed and return a new one that joins the group again.

        Written batches are committed if the group still accepts commits, and unwritten ones are
        dropped. The new assignment reads from the committed offsets and skips the offset
        ranges that archive files already hold, so nothing is archived twice.
        """
        self._consumer_broken = False
        self._commit_written(wait=True)
        try:
            broken.close()
        except KafkaException as error:
            logger.info("consumer_close_failed error=%s", error)
        self._partitions = {}
        return self._subscribed_consumer()

    def _consumer_failed(self, error: KafkaError) -> None:
        """Replace the consumer after this loop, or stop when replacements ran out."""
        if self._consumer_broken:
            return
        if not self._rejoins.take():
            logger.error("kafka_fatal_error code=%s error=%s", error.name(), error)
            self._fatal_error = error
            return
        logger.warning("consumer_failed code=%s action=rejoin", error.name())
        self._consumer_broken = True

    def _on_kafka_error(self, error: KafkaError) -> None:
        if leaves_consumer_unusable(error):
            self._consumer_failed(error)
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._kafka_health.failed(error)
        elif not self._kafka_health.is_down:
            self._kafka_errors.warning(
                f"kafka_error:{error.code()}", "kafka_error code=%s error=%s", error.name(), error
            )

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
        # The archived ranges are read from the files, so none may still be in writing.
        self._commit_written(wait=True)
        committed = committed_offsets(consumer, partitions, _COMMITTED_TIMEOUT_S)
        ranges = self._writer.existing_ranges([tp.partition for tp in committed])
        for tp in committed:
            next_start = tp.offset if tp.offset >= 0 else None
            self._partitions[tp.partition] = PartitionBatches(next_start, ranges[tp.partition])
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
        # Files in writing are finished, so that the next owner finds their ranges. Batches not
        # yet written are dropped: the next owner reads their offsets again.
        self._commit_written(wait=True)
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
        starts = [0]
        if partitions.count(partitions[0]) != len(partitions):
            numbers = np.array(partitions)
            starts.extend((np.flatnonzero(numbers[1:] != numbers[:-1]) + 1).tolist())
        for start, stop in zip(starts, [*starts[1:], len(messages)], strict=True):
            self._add_run(partitions[start], offsets[start:stop], values[start:stop])

    def _handle_error(self, message: Message, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            partition = message.partition()
            state = self._partitions.get(partition) if partition is not None else None
            if state is not None:
                state.at_end = True
            return
        if leaves_consumer_unusable(error):
            self._consumer_failed(error)
            return
        logger.warning("sink_consumer_error topic=%s error=%s", self._topic, error)

    def _add_run(self, partition: int, offsets: list[int], values: list[bytes | None]) -> None:
        """Add messages of one partition, in offset order, and flush the batches they close."""
        state = self._partitions.get(partition)
        if state is None:
            return
        self._messages_read += len(offsets)
        state.at_end = False
        tombstones = values.count(None)
        if tombstones:
            self._skip("tombstone", tombstones)
        for batch, last_offset in state.add(offsets, values, self._max_records):
            self._flush(partition, batch, last_offset)

    def _skip(self, reason: str, count: int) -> None:
        self._stats.skipped[reason] = self._stats.skipped.get(reason, 0) + count

    def _flush_due(self, now: float) -> None:
        for partition, state in list(self._partitions.items()):
            batch = state.batch
            if batch is None:
                continue
            if batch.forced:
                if state.at_end and batch.limit_offset is not None:
                    self._flush(partition, *state.close(batch, batch.limit_offset))
            elif now - batch.opened_at >= self._max_delay_s:
                self._flush(partition, *state.close(batch, batch.last_offset))

    def _flush_all(self) -> None:
        for partition, state in list(self._partitions.items()):
            batch = state.batch
            if batch is None:
                continue
            if not batch.forced:
                self._flush(partition, *state.close(batch, batch.last_offset))
            elif state.at_end and batch.limit_offset is not None:
                self._flush(partition, *state.close(batch, batch.limit_offset))
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

    def _flush(self, partition: int, batch: Batch, last_offset: int) -> None:
        """Start archiving a closed batch; ``_commit_written`` commits it once it is written."""
        self._writes.start(partition, batch, last_offset)
        self._commit_written()

    def _commit_written(self, *, wait: bool = False) -> None:
        """Commit the written batches, in the order they were flushed; see ``BatchWrites``."""
        for written in self._writes.finished(wait=wait):
            for reason, count in written.skipped.items():
                self._skip(reason, count)
            self._commit(written.partition, written.last_offset + 1)
            self._stats.records += written.records
            self._stats.files += len(written.files)
            self._stats.batches += 1
            logger.info(
                "sink_batch_written topic=%s partition=%d first_offset=%d last_offset=%d "
                "records=%d files=%d",
                self._topic,
                written.partition,
                written.first_offset,
                written.last_offset,
                written.records,
                len(written.files),
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
