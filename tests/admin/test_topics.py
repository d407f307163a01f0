"""Topic creation against the local Kafka broker."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from streamfeat.admin import TopicSpec, ensure_topics, source_topic
from streamfeat.definitions.models import EventTime, Source
from streamfeat.errors import ConfigurationError, StackError


def _config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in entries.items()}


def _partitions(bootstrap: str, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


@pytest.mark.integration
def test_missing_topic_is_created_with_config(bootstrap: str, topic_name: str) -> None:
    spec = TopicSpec(topic_name, 3, {"cleanup.policy": "compact"})

    created = ensure_topics(bootstrap, [spec])

    assert created == [topic_name]
    assert _partitions(bootstrap, topic_name) == 3
    assert _config(bootstrap, topic_name)["cleanup.policy"] == "compact"


@pytest.mark.integration
def test_existing_topic_with_same_count_is_kept(bootstrap: str, topic_name: str) -> None:
    ensure_topics(bootstrap, [TopicSpec(topic_name, 2)])

    assert ensure_topics(bootstrap, [TopicSpec(topic_name, 2)]) == []


@pytest.mark.integration
def test_partition_mismatch_names_topic_and_counts(bootstrap: str, topic_name: str) -> None:
    ensure_topics(bootstrap, [TopicSpec(topic_name, 2)])

    with pytest.raises(ConfigurationError, match=f"'{topic_name}' exists with 2 partitions but 4"):
        ensure_topics(bootstrap, [TopicSpec(topic_name, 4)])


@pytest.mark.integration
def test_invalid_topic_config_is_rejected(bootstrap: str, topic_name: str) -> None:
    spec = TopicSpec(topic_name, 1, {"cleanup.policy": "sometimes"})

    with pytest.raises(ConfigurationError, match=f"cannot create topic '{topic_name}'"):
        ensure_topics(bootstrap, [spec])


def test_unreachable_broker_raises_stack_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(StackError, match=f"cannot reach Kafka at 127.0.0.1:{port} within 1s"):
        ensure_topics(f"127.0.0.1:{port}", [TopicSpec("x", 1)], timeout=timedelta(seconds=1))


def test_zero_partitions_is_invalid() -> None:
    with pytest.raises(ConfigurationError, match="partition count 0 is invalid"):
        TopicSpec("x", 0)


def test_source_topic_uses_declared_partitions() -> None:
    source = Source(
        name="flights",
        topic="flights-topic",
        schema="flight.avsc",
        partitions=4,
        event_time=EventTime(field="at"),
    )

    spec = source_topic(source)

    assert spec.name == "flights-topic"
    assert spec.partitions == 4
    assert spec.config["retention.ms"] == "-1"


@pytest.mark.integration
def test_config_mismatch_names_key_and_values(bootstrap: str, topic_name: str) -> None:
    ensure_topics(bootstrap, [TopicSpec(topic_name, 1)])

    with pytest.raises(
        ConfigurationError, match=f"'{topic_name}' has retention.ms=604800000 but -1 is required"
    ):
        ensure_topics(bootstrap, [TopicSpec(topic_name, 1, {"retention.ms": "-1"})])


@pytest.mark.integration
def test_existing_topic_with_same_config_is_kept(bootstrap: str, topic_name: str) -> None:
    spec = TopicSpec(topic_name, 1, {"retention.ms": "-1"})
    ensure_topics(bootstrap, [spec])

    assert ensure_topics(bootstrap, [spec]) == []
