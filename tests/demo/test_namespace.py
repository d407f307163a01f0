"""What the demo resets and watches for the flights topology: topics, groups, keys, partitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.demo.namespace import DemoNamespace
from streamfeat.demo.processing import sink_partitions, worker_partitions
from streamfeat.online.redis_store import RedisOnlineStore

FLIGHTS = Path(__file__).resolve().parents[2] / "topologies" / "flights.yml"


@pytest.fixture(scope="module")
def flights() -> Topology:
    return load_topology(FLIGHTS)


def test_namespace_names_the_groups_of_worker_and_sink(flights: Topology) -> None:
    namespace = DemoNamespace(flights)

    assert namespace.worker_group == "streamfeat.flights.worker"
    assert namespace.sink_group.startswith("streamfeat.flights.sink.")


def test_namespace_owns_source_and_prefixed_topics(flights: Topology) -> None:
    namespace = DemoNamespace(flights)

    assert namespace.owns_topic("flights")
    assert namespace.owns_topic("streamfeat.flights.feature-log")
    assert namespace.owns_topic("streamfeat.flights.flights.by-plane")
    assert not namespace.owns_topic("streamfeat.flightsx.feature-log")
    assert not namespace.owns_topic("streamfeat.other.feature-log")
    assert not namespace.owns_topic("flights-topic")


def test_key_pattern_matches_own_view_only(flights: Topology) -> None:
    namespace = DemoNamespace(flights)
    # The client connects on first use only, so building the store needs no server.
    store = RedisOnlineStore(redis.Redis(), flights)
    key = store.key("plane_7d", ("N279JB",))
    pattern = namespace.key_pattern("plane_7d")

    assert key.startswith(pattern.removesuffix("*"))
    assert not store.key("airport_1h", ("JFK",)).startswith(pattern.removesuffix("*"))
    assert len(namespace.key_patterns()) == len(flights.feature_views)


def test_worker_reads_source_and_repartition_partitions(flights: Topology) -> None:
    partitions = worker_partitions(flights)

    topics = sorted({topic for topic, _ in partitions})
    assert topics == [
        "flights",
        "streamfeat.flights.flights.by-airport",
        "streamfeat.flights.flights.by-carrier",
        "streamfeat.flights.flights.by-plane",
    ]
    assert len(partitions) == 4 * 4


def test_sink_reads_every_feature_log_partition(flights: Topology) -> None:
    partitions = sink_partitions(DemoNamespace(flights))

    assert partitions == [("streamfeat.flights.feature-log", number) for number in range(4)]
