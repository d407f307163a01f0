"""The demo run: local stack up, clean namespace, replay, worker and sink, figures, stack down.

Each step reports a short line through a ``DemoReporter``, and the command-line interface
prints the lines and draws the progress bars.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import redis

from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.demo.children import ChildProcess
from streamfeat.demo.completion import OffsetSnapshot
from streamfeat.demo.config import DemoConfig
from streamfeat.demo.namespace import DemoNamespace, reset_namespace
from streamfeat.demo.processing import ProcessingResult, process_all
from streamfeat.demo.samples import SAMPLE_ENTITIES, read_samples
from streamfeat.demo.summary import (
    DemoSummary,
    count_archive_rows,
    count_online_keys,
    count_rejections,
    read_headers,
)
from streamfeat.demo.training import write_flight_training_set
from streamfeat.devstack import DEFAULT_DOWN_TIMEOUT, LocalStack
from streamfeat.devstack._service import LocalService
from streamfeat.errors import DemoError
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.producer import FLIGHTS_ROWS, dataset_events, produce_events
from streamfeat.serialization import SchemaStore

logger = logging.getLogger(__name__)

FLIGHTS_SOURCE = "flights"
DATASET_ROWS = {FLIGHTS_SOURCE: FLIGHTS_ROWS}
"""Events in each data set, for the replay's progress bar."""


class DemoReporter(Protocol):
    """Receives the demo's progress: short lines and progress bars."""

    def step(self, message: str) -> None:
        """Show one line of progress or result."""
        ...

    def replay_progress(
        self, topic: str, total: int | None
    ) -> AbstractContextManager[Callable[[int], None]]:
        """Open a progress bar for a replay, whose callable receives counts of events sent."""
        ...

    def processing_progress(
        self, events_total: int
    ) -> AbstractContextManager[Callable[[OffsetSnapshot], None]]:
        """Open the progress bars of the worker and the sink, fed with offset snapshots."""
        ...


def run_demo(config: DemoConfig, reporter: DemoReporter) -> DemoSummary:
    """Run the whole demo and return its figures, then stop the services this run started.

    Raises a StreamfeatError subclass when a step fails, or KafkaException or a redis error
    when a service fails mid-run.
    """
    started_s = time.monotonic()
    topology = load_topology(config.topology_path)
    stack = LocalStack(report=reporter.step)
    started = _start_stack(stack, reporter)
    try:
        return _run_on_stack(config, topology, stack, reporter, started_s)
    finally:
        _stop_services(started, reporter)


def _start_stack(stack: LocalStack, reporter: DemoReporter) -> list[LocalService]:
    """Start the services that are not running, and return those this call started."""
    changes = stack.up()
    for change in changes:
        verb = "started" if change.changed else "already running"
        reporter.step(f"{change.status.name} {verb} at {change.status.address}")
    started_names = {change.status.name for change in changes if change.changed}
    return [service for service in stack.services if service.name in started_names]


def _stop_services(services: list[LocalService], reporter: DemoReporter) -> None:
    for service in services:
        service.stop(DEFAULT_DOWN_TIMEOUT.total_seconds())
        reporter.step(f"{service.name} stopped, because this demo started it")


def _run_on_stack(
    config: DemoConfig,
    topology: Topology,
    stack: LocalStack,
    reporter: DemoReporter,
    started_s: float,
) -> DemoSummary:
    namespace = DemoNamespace(topology, config.archive_dir)
    bootstrap = stack.bootstrap_servers
    client = redis.Redis.from_url(stack.redis_url)
    try:
        reset_namespace(
            namespace,
            bootstrap=bootstrap,
            redis_client=client,
            paths=config.outputs(),
            report=reporter.step,
        )
        events_total = _replay(config, topology, bootstrap, reporter)
        result = _process(config, namespace, stack, reporter, events_total)
        _show_samples(RedisOnlineStore(client, topology), topology, reporter)
        if FLIGHTS_SOURCE in {source.name for source in topology.sources}:
            trained = write_flight_training_set(
                topology, config.archive_dir, config.training_set_path
            )
            reporter.step(trained.describe())
        summary = _summarize(config, namespace, bootstrap, client, result, started_s)
    finally:
        client.close()
    summary.write(config.summary_path)
    reporter.step(summary.json_line())
    return summary


def _replay(config: DemoConfig, topology: Topology, bootstrap: str, reporter: DemoReporter) -> int:
    """Replay every source's data set into its topic, and return the number of events sent.

    The reset has created the topics already.
    """
    schemas = SchemaStore.from_dir(config.topology_path.parent / topology.schemas_dir)
    events_total = 0
    for source in topology.sources:
        events = dataset_events(source.name)
        with reporter.replay_progress(source.topic, DATASET_ROWS.get(source.name)) as advance:
            produced = produce_events(
                events, bootstrap=bootstrap, source=source, store=schemas, on_progress=advance
            )
        rate = produced.events / produced.seconds if produced.seconds > 0 else 0.0
        reporter.step(
            f"replayed {produced.events} events into {produced.topic} in "
            f"{produced.seconds:.1f}s ({rate:,.0f} events/s)"
        )
        events_total += produced.events
    return events_total


def _process(
    config: DemoConfig,
    namespace: DemoNamespace,
    stack: LocalStack,
    reporter: DemoReporter,
    events_total: int,
) -> ProcessingResult:
    def report_started(children: Sequence[ChildProcess]) -> None:
        pids = ", ".join(f"{child.name} pid {child.pid}" for child in children)
        reporter.step(f"started {pids}; logs in {config.logs_dir}")

    with reporter.processing_progress(events_total) as on_snapshot:
        result, codes = process_all(
            config,
            namespace,
            bootstrap=stack.bootstrap_servers,
            redis_url=stack.redis_url,
            on_started=report_started,
            on_snapshot=on_snapshot,
        )
    exits = ", ".join(f"{name} exit code {code}" for name, code in codes.items())
    reporter.step(
        f"processed {result.snapshot.events_processed} events in {result.seconds:.1f}s "
        f"({result.events_per_second:,.0f} events/s); stopped: {exits}"
    )
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        logs = " and ".join(str(config.logs_dir / f"{name}.log") for name in failed)
        raise DemoError(
            f"{' and '.join(failed)} did not stop cleanly after SIGTERM ({exits}); see {logs}"
        )
    return result


def _show_samples(store: RedisOnlineStore, topology: Topology, reporter: DemoReporter) -> None:
    views = {view.name for view in topology.feature_views}
    entities = {view: keys for view, keys in SAMPLE_ENTITIES.items() if view in views}
    reporter.step("sample values from the online store, each at its own as-of time:")
    for sample in read_samples(store, entities):
        reporter.step(f"  {sample.describe()}")


def _summarize(
    config: DemoConfig,
    namespace: DemoNamespace,
    bootstrap: str,
    client: redis.Redis,
    result: ProcessingResult,
    started_s: float,
) -> DemoSummary:
    topology = namespace.topology
    headers = read_headers(
        bootstrap,
        topology.dead_letters,
        namespace.partition_count(topology.dead_letters),
        group=namespace.reader_group,
    )
    return DemoSummary(
        events_in=result.snapshot.events_processed,
        rejected=count_rejections(headers),
        online_keys=count_online_keys(client, namespace.key_patterns()),
        archive_rows=count_archive_rows(
            config.archive_dir, [view.name for view in topology.feature_views]
        ),
        seconds=time.monotonic() - started_s,
        events_per_second=result.events_per_second,
    )
