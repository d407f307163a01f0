"""The flights pipeline as separate processes on a fault test's own stack.

A fault topology is the deployed flights topology with an idle timeout of a year. Without
idleness a partition's emission clock stops at its last event, so every record the stream
writes is one that a backfill of the same events writes too, and the two can be compared
record by record. (With the deployed 30 s, the clock would keep moving with the wall clock
after the replay and write slot-boundary records past the data, which a backfill never does.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

from streamfeat.admin.offsets import committed_offsets
from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.devstack import LocalStack
from streamfeat.producer.flights import flight_events
from streamfeat.producer.kafka import ProduceSummary, produce_events
from streamfeat.serialization import SchemaStore
from streamfeat.sink.runner import sink_group
from streamfeat.stream.topics import entities_of, repartition_topic, worker_topics
from tests.faults.processes import ManagedProcess, ProcessRegistry, wait_for

REPOSITORY = Path(__file__).absolute().parents[2]
FLIGHTS_TOPOLOGY = REPOSITORY / "topologies" / "flights.yml"
SOURCE = "flights"
FAULT_IDLE_TIMEOUT = "365d"
SESSION_TIMEOUT_S = 10.0
"""Session timeout of the workers: a killed worker restarted sooner gets its partitions back."""
KAFKA_TIMEOUT_S = 30.0
QUIET = {"log_level": 0}
"""librdkafka settings of the test's own clients: no log line per failed reconnection while a
test has the broker stopped."""
_WALL_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Period:
    """Scheduled departures from ``start`` (inclusive) to ``end``, New York wall clock."""

    name: str
    start: datetime
    end: datetime

    def events(self) -> list[dict[str, Any]]:
        """Flight events of the period, in event-time order, as ``streamfeat produce`` makes
        them."""
        start_ms, end_ms = (_wall_ms(moment) for moment in (self.start, self.end))
        return [e for e in flight_events() if start_ms <= e["sched_dep_local"] < end_ms]


WEEK = Period("week", datetime(2013, 3, 4), datetime(2013, 3, 11))
"""A week that ends the day after the switch to daylight-saving time (2013-03-10)."""
MONTH = Period("month", datetime(2013, 3, 1), datetime(2013, 4, 1))


def write_fault_topology(folder: Path) -> tuple[Path, Topology]:
    """Write the flights topology with the fault tests' idle timeout; return its file and model."""
    definition = yaml.safe_load(FLIGHTS_TOPOLOGY.read_text(encoding="utf-8"))
    definition["name"] = "faults"
    definition["schemas_dir"] = str((FLIGHTS_TOPOLOGY.parent / definition["schemas_dir"]).resolve())
    for source in definition["sources"]:
        source["idle_timeout"] = FAULT_IDLE_TIMEOUT
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "faults.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False), encoding="utf-8")
    return path, load_topology(path)


def process_env(stack: LocalStack) -> dict[str, str]:
    """Environment of the pipeline's processes: this stack's addresses, unbuffered output."""
    return {
        **os.environ,
        "STREAMFEAT_KAFKA_BOOTSTRAP": stack.bootstrap_servers,
        "STREAMFEAT_REDIS_URL": stack.redis_url,
        "PYTHONUNBUFFERED": "1",
    }


class GroupOffsets:
    """Committed and end offsets of a consumer group's partitions, read without joining it."""

    def __init__(self, bootstrap: str, group: str, partitions: Sequence[TopicPartition]) -> None:
        self._consumer = Consumer(
            {
                **QUIET,
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
            }
        )
        self.partitions = list(partitions)

    def committed(self) -> dict[tuple[str, int], int]:
        """Committed offset per (topic, partition); 0 where the group committed nothing."""
        found = committed_offsets(self._consumer, self.partitions, KAFKA_TIMEOUT_S)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in found}

    def ends(self) -> dict[tuple[str, int], int]:
        ends = {}
        for tp in self.partitions:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=KAFKA_TIMEOUT_S, cached=False
            )
            ends[(tp.topic, tp.partition)] = int(high)
        return ends

    def behind(self) -> dict[tuple[str, int], int]:
        """Messages between the committed offset and the end, per partition that has any."""
        committed, ends = self.committed(), self.ends()
        return {key: ends[key] - committed[key] for key in ends if committed[key] < ends[key]}

    def close(self) -> None:
        self._consumer.close()


class FaultPipeline:
    """Producer, workers and sink of the fault topology on one stack, with their logs."""

    def __init__(
        self, stack: LocalStack, work_dir: Path, registry: ProcessRegistry, events: int
    ) -> None:
        self.stack = stack
        self.work_dir = work_dir
        self.registry = registry
        self.events = events
        self.topology_path, self.topology = write_fault_topology(work_dir / "topology")
        self.source = self.topology.source(SOURCE)
        self.archive = (work_dir / "archive").resolve()
        self.entities = entities_of(self.topology, self.source)
        partitions = range(self.source.partitions)
        self.source_partitions = [TopicPartition(self.source.topic, p) for p in partitions]
        self.repartition_partitions = [
            TopicPartition(repartition_topic(self.topology, self.source, entity), p)
            for entity in self.entities
            for p in partitions
        ]
        self.worker_offsets = GroupOffsets(
            stack.bootstrap_servers,
            self.worker_group,
            self.source_partitions + self.repartition_partitions,
        )
        log_partitions = max(source.partitions for source in self.topology.sources)
        self.feature_log_partitions = [
            TopicPartition(self.topology.feature_log, p) for p in range(log_partitions)
        ]
        self.sink_offsets = GroupOffsets(
            stack.bootstrap_servers,
            sink_group(self.topology, self.archive),
            self.feature_log_partitions,
        )

    @property
    def worker_group(self) -> str:
        return f"streamfeat.{self.topology.name}.worker"

    def create_topics(self) -> None:
        """Create every topic of the topology, as the first worker would, so that a sink
        started earlier finds the feature log."""
        ensure_topics(self.stack.bootstrap_servers, worker_topics(self.topology))

    def produce(self, events: Sequence[dict[str, Any]]) -> ProduceSummary:
        """Produce the events to the source topic, as ``streamfeat produce`` would."""
        schemas = SchemaStore.from_dir(self.topology_path.parent / self.topology.schemas_dir)
        return produce_events(
            events, bootstrap=self.stack.bootstrap_servers, source=self.source, store=schemas
        )

    def start_worker(
        self,
        instance_id: str,
        session_timeout_s: float = SESSION_TIMEOUT_S,
        state_name: str | None = None,
    ) -> ManagedProcess:
        """Start ``streamfeat worker`` with a state folder that belongs to ``instance_id``, or
        to ``state_name`` when given."""
        arguments = [
            "worker",
            str(self.topology_path),
            "--state-dir",
            str(self.work_dir / f"state-{state_name or instance_id}"),
            "--instance-id",
            instance_id,
            "--session-timeout",
            f"{session_timeout_s:g}",
        ]
        return self.registry.start_streamfeat(f"worker-{instance_id}", arguments)

    def start_sink(self) -> ManagedProcess:
        arguments = [
            "sink",
            str(self.topology_path),
            "--archive",
            str(self.archive),
            "--instance-id",
            "sink",
            "--session-timeout",
            f"{SESSION_TIMEOUT_S:g}",
        ]
        return self.registry.start_streamfeat("sink", arguments)

    def worker_progress(self) -> float:
        """Return the share of the replay that the worker group has committed, from 0 to 1.

        The estimate counts the source events plus one forward per entity and event. It leaves
        clock marks out, so the share is capped at 1.
        """
        committed = sum(self.worker_offsets.committed().values())
        return min(1.0, committed / (self.events * (1 + len(self.entities))))

    def worker_applied_everything(self) -> bool:
        """True once the group committed every source event and everything forwarded from them.

        The router commits a source offset only after the broker acknowledged its forwards, and
        the committed offsets are read before the ends, so a repartition partition is never
        seen caught up with forwards still missing. Without idleness no clock mark follows the
        last event.
        """
        return not self.worker_offsets.behind()

    def wait_sink_caught_up(self, timeout_s: float) -> float:
        return wait_for(
            lambda: not self.sink_offsets.behind(),
            timeout_s,
            "the sink committing the whole feature log",
            1.0,
        )

    def stream_bound_ms(self) -> int:
        """Lowest of the source partitions' last event times: every record up to it is due.

        Events keep their event-time order within a partition and carry their event time as
        the message timestamp, so a partition's last message carries its highest event time.
        """
        consumer = Consumer(
            {
                **QUIET,
                "bootstrap.servers": self.stack.bootstrap_servers,
                "group.id": "faults.reader",
            }
        )
        try:
            last_times = []
            for tp in self.source_partitions:
                _, high = consumer.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_S)
                consumer.assign([TopicPartition(tp.topic, tp.partition, high - 1)])
                message = consumer.poll(KAFKA_TIMEOUT_S)
                if message is None or message.error() is not None:
                    raise RuntimeError(f"the last message of {tp.topic}:{tp.partition} is unread")
                last_times.append(message.timestamp()[1])
            return min(last_times)
        finally:
            consumer.close()

    def stop(self, workers: Sequence[ManagedProcess], sink: ManagedProcess) -> dict[str, float]:
        """Stop the workers, let the sink archive the whole feature log, then stop it.

        Returns the seconds each step took.
        """
        started = time.monotonic()
        for worker in workers:
            worker.terminate()
        seconds = {"stop_workers": time.monotonic() - started}
        seconds["sink_catch_up"] = self.wait_sink_caught_up(timeout_s=180)
        sink.terminate()
        return seconds

    def close(self) -> None:
        self.worker_offsets.close()
        self.sink_offsets.close()


def wait_assigned(process: ManagedProcess, timeout_s: float = 120) -> float:
    """Wait until a worker logged a partition assignment; return the seconds waited."""

    def assigned() -> bool:
        if not process.is_running():
            raise RuntimeError(f"{process.label} exited before it got partitions")
        return bool(process.lines_containing("partitions_assigned"))

    return wait_for(assigned, timeout_s, f"{process.label} getting partitions")


def _wall_ms(moment: datetime) -> int:
    """A naive wall-clock time as epoch milliseconds, with no zone applied."""
    return (moment - _WALL_EPOCH) // timedelta(milliseconds=1)
