"""Fixtures for the sink tests: a fresh compacted feature-log topic on the local broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streamfeat.definitions.models import Topology
from streamfeat.featurelog.codec import encode_record, record_key
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.settings import Settings
from tests.sink.factories import make_topology

PARTITIONS = 2


@pytest.fixture
def bootstrap() -> str:
    return Settings.from_env().kafka_bootstrap


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture
def topology(admin: AdminClient) -> Iterator[Topology]:
    """Yield a topology whose feature-log topic is new, compacted and has two partitions."""
    suffix = uuid.uuid4().hex[:10]
    topology = make_topology(name=f"sink_tests_{suffix}", feature_log_topic=f"sftest-log-{suffix}")
    topic = NewTopic(
        topology.feature_log,
        num_partitions=PARTITIONS,
        replication_factor=1,
        config={"cleanup.policy": "compact"},
    )
    for future in admin.create_topics([topic], operation_timeout=30).values():
        future.result(timeout=30)
    yield topology
    for future in admin.delete_topics([topology.feature_log], operation_timeout=30).values():
        future.result(timeout=30)


def produce(bootstrap: str, topic: str, records: Sequence[FeatureRecord], partition: int) -> None:
    """Produce ``records`` to one partition of ``topic``, in order, and wait for delivery."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for record in records:
        producer.produce(topic, encode_record(record), record_key(record), partition=partition)
    if producer.flush(30) != 0:
        raise RuntimeError(f"records to {topic} were not delivered within 30 s")
