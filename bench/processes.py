"""Worker processes for the benchmarks: their topologies, inputs, progress and memory.

The benchmarks run ``streamfeat worker`` as real processes, each with a topology YAML written to
the run's scratch folder. The command writes online values under the default key prefix and
has no option to change it, so every topology made here renames its feature views after the
topology. Its Redis keys then stay apart from other runs', and ``delete_online_keys`` removes
them afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import redis
import yaml
from confluent_kafka import ConsumerGroupState, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from bench.context import SCHEMAS, run_topology
from streamfeat.definitions.models import FeatureView, Source, Topology
from streamfeat.demo.children import ChildProcess, stop_children, streamfeat_executable
from streamfeat.demo.offsets import OffsetReader
from streamfeat.errors import StackError, StreamfeatError
from streamfeat.online.redis_store import DEFAULT_KEY_PREFIX
from streamfeat.producer.kafka import PRODUCER_CONFIG, event_time_reader
from streamfeat.serialization import SchemaStore
from streamfeat.stream.topics import entities_of, repartition_topic

STOP_TIMEOUT = timedelta(seconds=15)
"""How long a worker may take to finish its batch after SIGTERM before it gets SIGKILL."""

PROGRESS_INTERVAL_S = 0.25
"""Pause between two reads of a group's state, so "all applied" is seen up to 0.25 s late."""

JOIN_TIMEOUT = timedelta(seconds=60)
"""How long a consumer group of new workers may take to give each of them its partitions."""

FLUSH_TIMEOUT = timedelta(seconds=60)
"""How long Kafka may take to acknowledge the events a benchmark produced."""

_UNLINK_CHUNK = 10_000


class WorkerProcessError(StreamfeatError, RuntimeError):
    """A worker process a benchmark started exited early or did not finish in time."""


def bench_topology(suffix: str, partitions: int | None = None) -> Topology:
    """Return the flights topology under a name of this run, with topics and views of its own.

    The name also gives the topology a consumer group of its own.
    """
    topology = run_topology(suffix, partitions=partitions)
    tag = "".join(c if c.isalnum() else "_" for c in topology.name)
    views = tuple(
        view.model_copy(update={"name": f"{view.name}__{tag}"}) for view in topology.feature_views
    )
    return topology.model_copy(update={"feature_views": views})


def bench_view(topology: Topology, name: str) -> FeatureView:
    """Return the view of a ``bench_topology`` that was called ``name`` in the flights topology."""
    return next(view for view in topology.feature_views if view.name.startswith(f"{name}__"))


def write_topology(topology: Topology, folder: Path) -> Path:
    """Write ``topology`` as YAML that ``streamfeat worker`` loads; return the file's path."""
    data = _yaml_ready(topology.model_dump(mode="python", exclude_none=True, by_alias=True))
    data["schemas_dir"] = str(SCHEMAS)
    path = folder / f"{topology.name}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def worker_group(topology: Topology) -> str:
    """Return the consumer group of the ``streamfeat worker`` command for ``topology``."""
    return f"streamfeat.{topology.name}.worker"


def input_partitions(topology: Topology) -> list[tuple[str, int]]:
    """Return every partition a worker of ``topology`` consumes: sources and repartition topics."""
    partitions = []
    for source in topology.sources:
        topics = [source.topic] + [
            repartition_topic(topology, source, entity) for entity in entities_of(topology, source)
        ]
        partitions += [(topic, p) for topic in topics for p in range(source.partitions)]
    return partitions


@contextmanager
def running_workers(
    topology_file: Path, count: int, folder: Path, redis_url: str, bootstrap: str
) -> Iterator[list[ChildProcess]]:
    """Start ``count`` worker processes, each with a fresh state folder; stop them on exit.

    Each worker logs to ``worker-<n>.log`` in ``folder``. On exit every worker gets SIGTERM,
    then SIGKILL when it has not stopped within STOP_TIMEOUT.
    """
    executable = str(streamfeat_executable())
    workers: list[ChildProcess] = []
    try:
        for number in range(count):
            argv = [
                executable,
                "worker",
                str(topology_file),
                "--state-dir",
                str(folder / f"state-{number}"),
                "--bootstrap-servers",
                bootstrap,
                "--redis-url",
                redis_url,
            ]
            workers.append(ChildProcess(f"worker-{number}", argv, folder / f"worker-{number}.log"))
        yield workers
    finally:
        stop_children(workers, STOP_TIMEOUT)


def wait_until_assigned(
    bootstrap: str,
    topology: Topology,
    workers: Sequence[ChildProcess],
    timeout: timedelta = JOIN_TIMEOUT,
) -> None:
    """Wait until the group is stable with every worker a member and every input partition owned.

    Raises WorkerProcessError when a worker exits or ``timeout`` passes.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    group = worker_group(topology)
    expected = len(input_partitions(topology))
    deadline_s = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline_s:
        check_running(workers)
        description = admin.describe_consumer_groups([group])[group].result()
        owned = [len(m.assignment.topic_partitions) for m in description.members]
        stable = description.state == ConsumerGroupState.STABLE
        if stable and len(owned) == len(workers) and all(owned) and sum(owned) == expected:
            return
        time.sleep(PROGRESS_INTERVAL_S)
    raise WorkerProcessError(
        f"group {group} did not give each of its {len(workers)} workers a share of the "
        f"{expected} input partitions within {timeout.total_seconds():g}s; see their logs in "
        f"{workers[0].log_path.parent}"
    )


def wait_until_applied(
    bootstrap: str,
    topology: Topology,
    workers: Sequence[ChildProcess],
    timeout: timedelta,
) -> float:
    """Wait until the group has committed every input message; return ``time.monotonic()`` then.

    Committed offsets are read before end offsets, and a worker commits its source offsets only
    after its forwards are acknowledged, so a repartition topic's end offset is final once its
    source is committed. Raises WorkerProcessError when a worker exits or ``timeout`` passes.
    """
    reader = OffsetReader(bootstrap)
    partitions = input_partitions(topology)
    deadline_s = time.monotonic() + timeout.total_seconds()
    while True:
        check_running(workers)
        offsets = reader.group_offsets(worker_group(topology), partitions)
        if all(partition.caught_up for partition in offsets.values()):
            return time.monotonic()
        if time.monotonic() > deadline_s:
            left = sum(p.end - p.position for p in offsets.values())
            raise WorkerProcessError(
                f"the workers of {topology.name} left {left} input messages uncommitted after "
                f"{timeout.total_seconds():g}s; see their logs in {workers[0].log_path.parent}"
            )
        time.sleep(PROGRESS_INTERVAL_S)


def check_running(workers: Sequence[ChildProcess]) -> None:
    """Raise WorkerProcessError naming the log of the first worker that has exited."""
    for worker in workers:
        code = worker.exit_code()
        if code is not None:
            raise WorkerProcessError(
                f"{worker.name} exited with code {code} before the benchmark ended; "
                f"see its log {worker.log_path}"
            )


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A source event ready to produce: its id as key, its Avro value, its event time."""

    key: bytes | None
    value: bytes
    event_ms: int


def encode_events(source: Source, events: Iterable[Mapping[str, Any]]) -> Iterator[EncodedEvent]:
    """Yield ``events`` encoded the way ``streamfeat produce`` encodes them."""
    store = SchemaStore.from_dir(SCHEMAS)
    schema = store.for_file(source.schema_file)
    read_time = event_time_reader(source, schema)
    id_field = source.event_id
    for event in events:
        key = None if id_field is None else str(event[id_field]).encode()
        yield EncodedEvent(key, store.encode(schema.name, event), read_time(event))


class SourceProducer:
    """A Kafka producer with the settings of ``streamfeat produce``, counting failed deliveries."""

    def __init__(self, bootstrap: str, topic: str, *, linger_ms: int | None = None) -> None:
        self.topic = topic
        self.failed = 0
        config: dict[str, Any] = {"bootstrap.servers": bootstrap, **PRODUCER_CONFIG}
        if linger_ms is not None:
            config["linger.ms"] = linger_ms
        self._producer = Producer(config)

    def send(self, event: EncodedEvent) -> None:
        """Queue ``event`` for its topic, waiting for room when the local queue is full."""
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    event.value,
                    event.key,
                    timestamp=event.event_ms,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: timedelta = FLUSH_TIMEOUT) -> None:
        """Wait until Kafka has acknowledged every queued event; raise StackError otherwise."""
        left = self._producer.flush(timeout.total_seconds())
        if left or self.failed:
            raise StackError(
                f"{left} events to topic {self.topic!r} were not acknowledged within "
                f"{timeout.total_seconds():g}s and {self.failed} failed; check the broker's log"
            )

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self.failed += 1


def peak_rss_bytes(pid: int) -> int:
    """Return the peak resident set size of process ``pid`` (VmHWM in ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            kib = int(line.split()[1])
            return kib * 1024
    raise WorkerProcessError(f"/proc/{pid}/status has no VmHWM line; run on Linux")


def online_key_pattern(view: str) -> str:
    """Redis key pattern of every value that ``streamfeat worker`` writes for ``view``."""
    return f"{DEFAULT_KEY_PREFIX}:{{{view}|*"


def delete_online_keys(redis_url: str, topology: Topology) -> int:
    """Delete every online value of ``topology``'s views; return how many keys were deleted."""
    client = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        for view in topology.feature_views:
            chunk: list[bytes] = []
            for key in client.scan_iter(online_key_pattern(view.name), count=_UNLINK_CHUNK):
                chunk.append(key)
                if len(chunk) == _UNLINK_CHUNK:
                    deleted += int(client.unlink(*chunk))
                    chunk = []
            if chunk:
                deleted += int(client.unlink(*chunk))
    finally:
        client.close()
    return deleted


def _yaml_ready(value: Any) -> Any:
    """Turn a model dump into what the topology loader reads: durations as ``<n>ms`` strings."""
    if isinstance(value, timedelta):
        return f"{value // timedelta(milliseconds=1)}ms"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _yaml_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_ready(item) for item in value]
    return value


def records_written(worker: ChildProcess) -> int:
    """Return the feature records a stopped worker wrote, from its ``worker_stopped`` log line."""
    for line in reversed(worker.log_path.read_text(errors="replace").splitlines()):
        _, found, fields = line.partition("worker_stopped ")
        if found:
            values = dict(field.split("=", 1) for field in fields.split())
            return int(values["records"])
    raise WorkerProcessError(f"{worker.name} logged no worker_stopped line; see {worker.log_path}")
