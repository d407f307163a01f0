"""Drive the flights pipeline on the local stack: produce a week, run the worker, run the sink."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from confluent_kafka import Consumer, TopicPartition

from streamfeat.admin.offsets import committed_offsets
from streamfeat.definitions.models import Topology
from streamfeat.online.store import OnlineStore
from streamfeat.producer.flights import flight_events
from streamfeat.producer.kafka import ProduceSummary, produce_events
from streamfeat.serialization import SchemaStore
from streamfeat.sink import ArchiveSink, SinkStats, load_source_types
from streamfeat.sink.runner import sink_group as archive_sink_group
from streamfeat.stream.topics import entities_of, repartition_topic
from streamfeat.stream.worker import Worker, WorkerConfig, WorkerStats
from tests.integration.flights_reference import WEEK_END, WEEK_START

SOURCE = "flights"
APPLY_TIMEOUT = timedelta(seconds=120)
CHECK_EVERY = timedelta(seconds=2)
SINK_IDLE = timedelta(seconds=3)
_KAFKA_TIMEOUT_S = 10.0


def worker_group(topology: Topology) -> str:
    return f"streamfeat.{topology.name}.worker"


def sink_group(topology: Topology, archive_dir: Path) -> str:
    return archive_sink_group(topology, archive_dir)


def produce_week(topology: Topology, schemas: SchemaStore, bootstrap: str) -> ProduceSummary:
    """Produce the week's flights in event-time order, encoded as ``streamfeat produce`` does."""
    start_ms, end_ms = (_naive_ms(moment) for moment in (WEEK_START, WEEK_END))
    events = [e for e in flight_events() if start_ms <= e["sched_dep_local"] < end_ms]
    return produce_events(
        events, bootstrap=bootstrap, source=topology.source(SOURCE), store=schemas
    )


def run_worker(
    topology: Topology,
    schemas: SchemaStore,
    online: OnlineStore,
    bootstrap: str,
    state_dir: Path,
) -> WorkerStats:
    """Run a worker in this process until its group has committed every input message."""
    config = WorkerConfig(
        bootstrap_servers=bootstrap, state_dir=state_dir, group_id=worker_group(topology)
    )
    worker = Worker(topology, schemas, online, config)
    source = topology.source(SOURCE)
    repartition = [repartition_topic(topology, source, e) for e in entities_of(topology, source)]
    applied = InputApplied(
        bootstrap, worker_group(topology), [source.topic], repartition, source.partitions
    )
    try:
        return worker.run(until=applied)
    finally:
        applied.close()


def run_sink(topology: Topology, archive_dir: Path, schemas_dir: Path, bootstrap: str) -> SinkStats:
    """Archive the whole feature-log topic, stopping once nothing new arrives."""
    sink = ArchiveSink(
        topology,
        archive_dir,
        bootstrap_servers=bootstrap,
        source_types=load_source_types(topology, schemas_dir),
    )
    return sink.run(until_idle=SINK_IDLE)


def unarchived_messages(topology: Topology, bootstrap: str, archive_dir: Path) -> dict[str, int]:
    """Return the feature-log messages past the sink group's committed offsets, per partition."""
    partitions = max(source.partitions for source in topology.sources)
    reader = OffsetReader(bootstrap, sink_group(topology, archive_dir))
    try:
        return reader.unapplied(
            [TopicPartition(topology.feature_log, p) for p in range(partitions)]
        )
    finally:
        reader.close()


def source_watermarks_ms(topology: Topology, bootstrap: str) -> list[int | None]:
    """Return the last event time of each source partition (its message timestamp).

    With no allowed lateness this is each partition's final watermark, so every slot boundary
    at or before the lowest of them is due for every entity.
    """
    source = topology.source(SOURCE)
    reader = OffsetReader(bootstrap, worker_group(topology))
    try:
        return reader.last_timestamps_ms(source.topic, source.partitions)
    finally:
        reader.close()


class InputApplied:
    """``until`` callback of ``Worker.run``: True once the worker applied all of its input.

    All is applied when the group's committed offsets reach the end offsets of the source
    topics and then of the repartition topics. The router commits a source offset only after
    its forwards were acknowledged, so once the source topics are committed the end offsets of
    the repartition topics read afterwards cover every forward. Checks run every two seconds.
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        source_topics: Sequence[str],
        repartition_topics: Sequence[str],
        partitions: int,
    ) -> None:
        self._offsets = OffsetReader(bootstrap, group)
        self._stages = [
            [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
            for topics in (source_topics, repartition_topics)
        ]
        self._deadline = time.monotonic() + APPLY_TIMEOUT.total_seconds()
        self._checked = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY.total_seconds():
            return False
        self._checked = now
        for partitions in self._stages:
            behind = self._offsets.unapplied(partitions)
            if behind:
                if now > self._deadline:
                    raise TimeoutError(
                        f"the worker did not apply its input within {APPLY_TIMEOUT}; "
                        f"messages not committed per partition: {behind}"
                    )
                return False
        return True

    def close(self) -> None:
        self._offsets.close()


class OffsetReader:
    """Reads end offsets and a consumer group's committed offsets, without joining the group."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )

    def unapplied(self, partitions: Sequence[TopicPartition]) -> dict[str, int]:
        """Return ``topic:partition -> messages`` past the committed offset, for lagging ones."""
        ends = [self.end_offset(tp.topic, tp.partition) for tp in partitions]
        committed = committed_offsets(self._consumer, partitions, _KAFKA_TIMEOUT_S)
        behind = {}
        for tp, end in zip(committed, ends, strict=True):
            done = max(tp.offset, 0)
            if done < end:
                behind[f"{tp.topic}:{tp.partition}"] = end - done
        return behind

    def end_offset(self, topic: str, partition: int) -> int:
        tp = TopicPartition(topic, partition)
        _, high = self._consumer.get_watermark_offsets(tp, timeout=_KAFKA_TIMEOUT_S, cached=False)
        return int(high)

    def last_timestamps_ms(self, topic: str, partitions: int) -> list[int | None]:
        """Return the timestamp of the last message of each partition (None when empty)."""
        stamps: list[int | None] = []
        for partition in range(partitions):
            end = self.end_offset(topic, partition)
            stamps.append(None if end == 0 else self._timestamp_at(topic, partition, end - 1))
        self._consumer.unassign()
        return stamps

    def close(self) -> None:
        self._consumer.close()

    def _timestamp_at(self, topic: str, partition: int, offset: int) -> int:
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + _KAFKA_TIMEOUT_S
        while time.monotonic() < deadline:
            message: Any = self._consumer.poll(0.5)
            if message is not None and message.error() is None:
                return int(message.timestamp()[1])
        raise TimeoutError(f"no message at {topic}:{partition} offset {offset}")


def _naive_ms(moment: pd.Timestamp) -> int:
    """Return a naive wall-clock time as epoch milliseconds, no zone applied."""
    return int((moment - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1))
