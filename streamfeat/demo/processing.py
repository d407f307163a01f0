"""Run one worker and one sink until every replayed event is processed and archived."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamfeat.definitions.models import Topology
from streamfeat.demo.children import ChildProcess, stop_children, streamfeat_executable
from streamfeat.demo.completion import CompletionWatch, OffsetSnapshot, TopicPartitionKey, Verdict
from streamfeat.demo.config import DemoConfig
from streamfeat.demo.namespace import DemoNamespace
from streamfeat.demo.offsets import OffsetReader
from streamfeat.errors import DemoError
from streamfeat.stream.topics import entities_of, repartition_topic

logger = logging.getLogger(__name__)

SnapshotCallback = Callable[[OffsetSnapshot], None]


@dataclass(frozen=True)
class ProcessingResult:
    """The caught-up offsets and the time from the worker's start until they were reached."""

    snapshot: OffsetSnapshot
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Source events the worker processed per second of the run, on average."""
        return self.snapshot.events_processed / self.seconds if self.seconds > 0 else 0.0


def worker_partitions(topology: Topology) -> list[TopicPartitionKey]:
    """Partitions that the worker consumes: its sources' topics and their repartition topics."""
    partitions = []
    for source in topology.sources:
        topics = [source.topic]
        topics += [repartition_topic(topology, source, e) for e in entities_of(topology, source)]
        partitions += [(topic, number) for topic in topics for number in range(source.partitions)]
    return partitions


def sink_partitions(namespace: DemoNamespace) -> list[TopicPartitionKey]:
    """Partitions that the sink consumes, which are the feature log's."""
    topic = namespace.topology.feature_log
    return [(topic, number) for number in range(namespace.partition_count(topic))]


def process_all(
    config: DemoConfig,
    namespace: DemoNamespace,
    *,
    bootstrap: str,
    redis_url: str,
    on_started: Callable[[Sequence[ChildProcess]], None],
    on_snapshot: SnapshotCallback,
) -> tuple[ProcessingResult, dict[str, int]]:
    """Start the worker and the sink, wait until they have processed everything, stop them.

    Returns the result and each process's exit code. The processes are stopped (SIGTERM, then
    SIGKILL after ``config.stop_timeout``) whether waiting succeeded or failed.
    """
    reader = OffsetReader(bootstrap)
    started_s = time.monotonic()
    children = start_children(config, bootstrap=bootstrap, redis_url=redis_url)
    try:
        on_started(children)
        snapshot = wait_until_processed(config, namespace, reader, children, on_snapshot)
        result = ProcessingResult(snapshot, time.monotonic() - started_s)
    finally:
        codes = stop_children(children, config.stop_timeout)
    return result, codes


def start_children(config: DemoConfig, *, bootstrap: str, redis_url: str) -> list[ChildProcess]:
    """Start ``streamfeat worker`` and ``streamfeat sink`` with their output in the logs folder."""
    executable = str(streamfeat_executable())
    topology = str(config.topology_path)
    worker_argv = [
        executable, "worker", topology, "--state-dir", str(config.state_dir),
        "--bootstrap-servers", bootstrap, "--redis-url", redis_url,
    ]  # fmt: skip
    sink_argv = [
        executable, "sink", topology, "--archive", str(config.archive_dir),
        "--bootstrap-servers", bootstrap,
    ]  # fmt: skip
    worker = ChildProcess("worker", worker_argv, config.logs_dir / "worker.log")
    try:
        sink = ChildProcess("sink", sink_argv, config.logs_dir / "sink.log")
    except BaseException:
        stop_children([worker], config.stop_timeout)
        raise
    return [worker, sink]


def wait_until_processed(
    config: DemoConfig,
    namespace: DemoNamespace,
    reader: OffsetReader,
    children: Sequence[ChildProcess],
    on_snapshot: SnapshotCallback,
) -> OffsetSnapshot:
    """Read the groups' offsets every ``config.check_interval`` until everything is processed.

    Raises DemoError when a child exits first, or when no committed offset moves for
    ``config.stall_timeout``.
    """
    topology = namespace.topology
    watch = CompletionWatch(config.stall_timeout)
    while True:
        _check_running(children)
        snapshot = reader.snapshot(
            worker_group=namespace.worker_group,
            worker_partitions=worker_partitions(topology),
            sink_group=namespace.sink_group,
            sink_partitions=sink_partitions(namespace),
            source_topics=[source.topic for source in topology.sources],
        )
        on_snapshot(snapshot)
        verdict = watch.observe(snapshot)
        if verdict is Verdict.DONE:
            return snapshot
        if verdict is Verdict.STALLED:
            raise DemoError(_stall_message(snapshot, watch, children))
        time.sleep(config.check_interval.total_seconds())


def _check_running(children: Sequence[ChildProcess]) -> None:
    for child in children:
        code = child.exit_code()
        if code is not None:
            raise DemoError(
                f"the {child.name} exited with code {code} before every event was processed; "
                f"see {child.log_path} for the reason"
            )


def _stall_message(
    snapshot: OffsetSnapshot, watch: CompletionWatch, children: Sequence[ChildProcess]
) -> str:
    logs = " and ".join(str(child.log_path) for child in children)
    return (
        f"no committed offset moved for {watch.seconds_without_progress:.0f}s: the worker has "
        f"processed {snapshot.events_processed} of {snapshot.events_total} source events and "
        f"the sink has archived {snapshot.records_archived} of {snapshot.records_total} "
        f"feature-log records; see {logs}"
    )
