"""Fixtures of the end-to-end flights test: one replayed week on the local Kafka and Redis.

The pipeline runs once per module. Its topology, topics, consumer groups, worker state and
Redis keys carry a random name of their own, so runs never meet the demo or each other, and
they are removed afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.producer.kafka import ProduceSummary
from streamfeat.serialization import SchemaStore
from streamfeat.settings import Settings
from streamfeat.sink import SinkStats
from streamfeat.stream.topics import worker_topics
from streamfeat.stream.worker import WorkerStats
from tests.integration import pipeline
from tests.integration.flights_reference import ViewReference, load_week_flights

TOPOLOGY_FILE = Path(__file__).resolve().parents[2] / "topologies" / "flights.yml"
_DELETE_TIMEOUT_S = 30


@dataclass(frozen=True)
class WeekRun:
    """What one replay of the week left behind, for the tests to compare with the reference."""

    topology: Topology
    online: RedisOnlineStore
    redis_client: redis.Redis
    key_prefix: str
    archive_dir: Path
    produced: ProduceSummary
    worker: WorkerStats
    sink: SinkStats
    source_watermarks_ms: list[int | None]
    """Per source partition, the last event time: with no allowed lateness, its watermark."""


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return Settings.from_env().kafka_bootstrap


@pytest.fixture(scope="module")
def flights_topology(bootstrap: str) -> Iterator[Topology]:
    """Yield the flights topology under a fresh name and source topic, with its topics created."""
    base = load_topology(TOPOLOGY_FILE)
    name = f"flights_it_{uuid.uuid4().hex[:10]}"
    source = base.source(pipeline.SOURCE).model_copy(update={"topic": f"sftest-{name}"})
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
    ] or [pipeline.worker_group(topology)]
    for future in admin.delete_consumer_groups(groups, request_timeout=_DELETE_TIMEOUT_S).values():
        # A group that never committed does not exist, and deleting it fails.
        with contextlib.suppress(KafkaException):
            future.result()
    topics = [spec.name for spec in specs]
    for future in admin.delete_topics(topics, operation_timeout=_DELETE_TIMEOUT_S).values():
        future.result()


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(Settings.from_env().redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def week_run(
    flights_topology: Topology,
    bootstrap: str,
    redis_client: redis.Redis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WeekRun]:
    """Produce the week, run the worker until it applied everything, then archive the log."""
    topology = flights_topology
    schemas_dir = TOPOLOGY_FILE.parent / topology.schemas_dir
    schemas = SchemaStore.from_dir(schemas_dir)
    prefix = f"sftest-{topology.name}"
    online = RedisOnlineStore(redis_client, topology, key_prefix=prefix)
    work_dir = tmp_path_factory.mktemp("flights-week")
    try:
        produced = pipeline.produce_week(topology, schemas, bootstrap)
        stats = pipeline.run_worker(topology, schemas, online, bootstrap, work_dir / "state")
        sink_stats = pipeline.run_sink(topology, work_dir / "archive", schemas_dir, bootstrap)
        unarchived = pipeline.unarchived_messages(topology, bootstrap, work_dir / "archive")
        assert not unarchived, f"the sink left feature-log messages unarchived: {unarchived}"
        watermarks = pipeline.source_watermarks_ms(topology, bootstrap)
        yield WeekRun(
            topology=topology,
            online=online,
            redis_client=redis_client,
            key_prefix=prefix,
            archive_dir=work_dir / "archive",
            produced=produced,
            worker=stats,
            sink=sink_stats,
            source_watermarks_ms=watermarks,
        )
    finally:
        for key in redis_client.scan_iter(match=f"{prefix}:*", count=1_000):
            redis_client.delete(key)


@pytest.fixture(scope="module")
def references(flights_topology: Topology) -> dict[str, ViewReference]:
    """Reference values of every feature view, from the raw CSV."""
    flights = load_week_flights()
    return {
        view.name: ViewReference(flights_topology, view, flights)
        for view in flights_topology.feature_views
    }
