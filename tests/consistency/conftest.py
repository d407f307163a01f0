"""Fixtures of the consistency test: one month backfilled once, and streamed twice.

The month is streamed through a source topic of one partition and through one of four. Each
streamed topology, its topics, consumer groups, worker state and Redis keys carry a random name of
their own, so a run never meets the demo, the other integration tests or another run. Topics,
groups and keys are removed afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.offline.backfill import BackfillStats
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.producer.kafka import ProduceSummary, produce_events
from streamfeat.serialization import SchemaStore
from streamfeat.settings import Settings
from streamfeat.sink import SinkStats
from streamfeat.stream.topics import worker_topics
from streamfeat.stream.worker import WorkerStats
from tests.consistency import month_pipeline
from tests.consistency.online_history import OnlineHistory
from tests.consistency.recording import RecordingOnlineStore

TOPOLOGY_FILE = Path(__file__).resolve().parents[2] / "topologies" / "flights.yml"
_DELETE_TIMEOUT_S = 30

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


@dataclass(frozen=True)
class MonthEvents:
    """The month's events and the same events in a Parquet file, the backfill's input."""

    events: list[dict[str, Any]]
    path: Path
    seconds: float


@dataclass(frozen=True)
class Backfilled:
    """Archive B: the backfill over the month's events file."""

    archive: Path
    stats: BackfillStats
    seconds: float


@dataclass(frozen=True)
class MonthRun:
    """Everything one streamed replay of the month left behind, with the backfill beside it."""

    topology: Topology
    events: list[dict[str, Any]]
    online: RedisOnlineStore
    history: OnlineHistory
    stream_archive: Path
    """Archive A: the sink's copy of the worker's feature log."""
    backfill_archive: Path
    produced: ProduceSummary
    worker: WorkerStats
    sink: SinkStats
    backfill: BackfillStats
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return Settings.from_env().kafka_bootstrap


@pytest.fixture(scope="module")
def month_events(tmp_path_factory: pytest.TempPathFactory) -> MonthEvents:
    started = time.monotonic()
    events = month_pipeline.month_events()
    path = tmp_path_factory.mktemp("consistency-events") / "events.parquet"
    month_pipeline.write_events_file(events, path)
    return MonthEvents(events, path, round(time.monotonic() - started, 1))


@pytest.fixture(scope="module")
def backfilled(month_events: MonthEvents, tmp_path_factory: pytest.TempPathFactory) -> Backfilled:
    """Backfill once per module; both streamed replays compare against it."""
    topology = load_topology(TOPOLOGY_FILE)
    archive = tmp_path_factory.mktemp("consistency-backfill")
    started = time.monotonic()
    stats = month_pipeline.run_backfill(
        topology, month_events.path, archive, TOPOLOGY_FILE.parent / topology.schemas_dir
    )
    return Backfilled(archive, stats, round(time.monotonic() - started, 1))


@pytest.fixture(
    scope="module",
    params=[1, 4],
    ids=["one-partition", "four-partitions"],
)
def month_topology(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[Topology]:
    """Yield the flights topology under a fresh name and source topic with ``request.param``
    partitions, its topics created.

    With one partition the worker reads the events in event-time order. With four, as in the
    deployed topology, it reads the partitions interleaved. An event from a slower partition
    then changes records already written, and the worker writes them again.
    """
    base = load_topology(TOPOLOGY_FILE)
    # A name that does not start with the deployed one, so no clean-up that matches the demo's
    # topics by prefix ("streamfeat.flights") touches this run's.
    name = f"consistency_{uuid.uuid4().hex[:10]}"
    source = base.source(month_pipeline.SOURCE).model_copy(
        update={"topic": f"sftest-{name}", "partitions": request.param}
    )
    topology = base.model_copy(update={"name": name, "sources": (source,)})
    specs = worker_topics(topology)
    ensure_topics(bootstrap, specs)
    yield topology
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=_DELETE_TIMEOUT_S).result()
    groups = [
        group.group_id
        for group in listed.valid
        if group.group_id.startswith(f"streamfeat.{topology.name}.")
    ] or [month_pipeline.worker_group(topology)]
    for future in admin.delete_consumer_groups(groups, request_timeout=_DELETE_TIMEOUT_S).values():
        # A group that never committed does not exist, and deleting it fails.
        with contextlib.suppress(KafkaException):
            future.result()
    topics = [spec.name for spec in specs]
    for future in admin.delete_topics(topics, operation_timeout=_DELETE_TIMEOUT_S).values():
        future.result()


@pytest.fixture(scope="module")
def month_run(
    month_topology: Topology,
    month_events: MonthEvents,
    backfilled: Backfilled,
    bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MonthRun]:
    """Produce the month, run the worker with its online writes recorded, then the sink."""
    topology = month_topology
    schemas_dir = TOPOLOGY_FILE.parent / topology.schemas_dir
    schemas = SchemaStore.from_dir(schemas_dir)
    client = redis.Redis.from_url(Settings.from_env().redis_url)
    prefix = f"sftest-{topology.name}"
    online = RedisOnlineStore(client, topology, key_prefix=prefix)
    recorder = RecordingOnlineStore(online, client)
    work_dir = tmp_path_factory.mktemp("consistency-stream")
    seconds = {"load": month_events.seconds, "backfill": backfilled.seconds}
    try:
        with _phase(seconds, "produce"):
            source = topology.source(month_pipeline.SOURCE)
            produced = produce_events(
                month_events.events, bootstrap=bootstrap, source=source, store=schemas
            )
        with _phase(seconds, "worker"):
            worker = month_pipeline.run_worker(
                topology, schemas, recorder, bootstrap, work_dir / "state"
            )
        with _phase(seconds, "sink"):
            sink = month_pipeline.run_sink(topology, work_dir / "archive", schemas_dir, bootstrap)
        yield MonthRun(
            topology=topology,
            events=month_events.events,
            online=online,
            history=OnlineHistory.replay(recorder.writes),
            stream_archive=work_dir / "archive",
            backfill_archive=backfilled.archive,
            produced=produced,
            worker=worker,
            sink=sink,
            backfill=backfilled.stats,
            seconds=seconds,
        )
    finally:
        for key in client.scan_iter(match=f"{prefix}:*", count=1_000):
            client.delete(key)
        client.close()


@contextlib.contextmanager
def _phase(seconds: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    seconds[name] = round(time.monotonic() - started, 1)
    logger.info("consistency_phase phase=%s seconds=%.1f", name, seconds[name])
