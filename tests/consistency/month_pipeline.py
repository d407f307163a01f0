"""Drive one month of flights through the real pipeline: Kafka, the worker, the sink, a backfill."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition

from streamfeat.admin.offsets import committed_offsets
from streamfeat.definitions.models import Topology
from streamfeat.offline.backfill import BackfillStats, backfill
from streamfeat.producer.flights import flight_events
from streamfeat.serialization import SchemaStore
from streamfeat.sink import ArchiveSink, SinkStats, load_source_types
from streamfeat.stream.topics import entities_of, repartition_topic
from streamfeat.stream.worker import Worker, WorkerConfig, WorkerStats
from tests.consistency.recording import RecordingOnlineStore, worker_emission_clock

SOURCE = "flights"
MONTH_START = datetime(2013, 3, 1)
"""First scheduled departure of the month, New York wall clock (2013-03-10 switches to DST)."""
MONTH_END = datetime(2013, 4, 1)
"""End of the month, exclusive, New York wall clock."""
APPLY_TIMEOUT = timedelta(seconds=180)
CHECK_EVERY = timedelta(seconds=1)
SINK_IDLE = timedelta(seconds=3)
_KAFKA_TIMEOUT_S = 10.0


def worker_group(topology: Topology) -> str:
    return f"streamfeat.{topology.name}.worker"


def month_events() -> list[dict[str, Any]]:
    """Flight events scheduled in the month, in event-time order, as ``streamfeat produce`` makes
    them."""
    start_ms, end_ms = (_wall_ms(moment) for moment in (MONTH_START, MONTH_END))
    return [e for e in flight_events() if start_ms <= e["sched_dep_local"] < end_ms]


def write_events_file(events: Sequence[dict[str, Any]], path: Path) -> None:
    """Write the events to Parquet the way ``streamfeat produce --out`` does (nulls stay nulls)."""
    pq.write_table(pa.Table.from_pylist(list(events)), path)


def run_worker(
    topology: Topology,
    schemas: SchemaStore,
    online: RecordingOnlineStore,
    bootstrap: str,
    state_dir: Path,
) -> WorkerStats:
    """Run a worker until its group has committed every input message, recording its clock."""
    config = WorkerConfig(
        bootstrap_servers=bootstrap, state_dir=state_dir, group_id=worker_group(topology)
    )
    worker = Worker(topology, schemas, online, config)
    online.read_clock = worker_emission_clock(worker)
    source = topology.source(SOURCE)
    repartition = [repartition_topic(topology, source, e) for e in entities_of(topology, source)]
    applied = AllApplied(
        bootstrap, worker_group(topology), [source.topic], repartition, source.partitions
    )
    try:
        return worker.run(until=applied)
    finally:
        applied.close()


def run_sink(topology: Topology, archive_dir: Path, schemas_dir: Path, bootstrap: str) -> SinkStats:
    sink = ArchiveSink(
        topology,
        archive_dir,
        bootstrap_servers=bootstrap,
        source_types=load_source_types(topology, schemas_dir),
    )
    return sink.run(until_idle=SINK_IDLE)


def run_backfill(
    topology: Topology, events_file: Path, archive_dir: Path, schemas_dir: Path
) -> BackfillStats:
    """Backfill the events file with a fixed processing clock (the start of the month's replay)."""
    started_ms = int(time.time() * 1000)
    return backfill(
        topology, SOURCE, events_file, archive_dir, schemas_dir, clock=lambda: started_ms
    )


class AllApplied:
    """``until`` callback of ``Worker.run``: True once the group committed all of its input.

    The source topic is checked first. The router commits a source offset only after the broker
    acknowledged what it forwarded, so the end offsets of the repartition topics read once the
    source is fully committed cover every forwarded event. Those ends are kept: clock marks that
    idle routers send afterwards, once a second, would otherwise keep the target moving.
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        source_topics: Sequence[str],
        repartition_topics: Sequence[str],
        partitions: int,
    ) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self._sources = [TopicPartition(t, p) for t in source_topics for p in range(partitions)]
        self._repartition = [
            TopicPartition(t, p) for t in repartition_topics for p in range(partitions)
        ]
        self._repartition_ends: list[int] | None = None
        self._deadline = time.monotonic() + APPLY_TIMEOUT.total_seconds()
        self._checked = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY.total_seconds():
            return False
        self._checked = now
        if self._repartition_ends is None:
            behind = self._behind(self._sources, self._end_offsets(self._sources))
            if not behind:
                self._repartition_ends = self._end_offsets(self._repartition)
        if self._repartition_ends is not None:
            behind = self._behind(self._repartition, self._repartition_ends)
        if behind and now > self._deadline:
            raise TimeoutError(
                f"the worker did not apply its input within {APPLY_TIMEOUT}; "
                f"messages not committed per partition: {behind}"
            )
        return not behind

    def close(self) -> None:
        self._consumer.close()

    def _end_offsets(self, partitions: Sequence[TopicPartition]) -> list[int]:
        ends = []
        for tp in partitions:
            _, end = self._consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=_KAFKA_TIMEOUT_S, cached=False
            )
            ends.append(int(end))
        return ends

    def _behind(self, partitions: Sequence[TopicPartition], ends: Sequence[int]) -> dict[str, int]:
        """Return ``topic:partition -> messages`` between the committed offset and ``ends``."""
        committed = committed_offsets(self._consumer, partitions, _KAFKA_TIMEOUT_S)
        behind = {}
        for tp, end in zip(committed, ends, strict=True):
            done = max(tp.offset, 0)
            if done < end:
                behind[f"{tp.topic}:{tp.partition}"] = end - done
        return behind


def _wall_ms(moment: datetime) -> int:
    """A naive wall-clock time as epoch milliseconds, with no zone applied."""
    return (moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
