"""Kafka topic creation: make the topics a topology needs exist with the right partition count.

Partition counts matter for correctness, not only speed: keys map to partitions by hash, and the
worker keeps per-partition watermarks. So an existing topic with another count is an error to fix
by hand, never something to change silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException

# confluent-kafka 2.16 re-exports these without listing them in __all__.
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from streamfeat.definitions.models import Source
from streamfeat.errors import ConfigurationError, StackError

logger = logging.getLogger(__name__)

BROKER_DEFAULT_REPLICATION = -1
"""Replication factor that lets the broker apply its ``default.replication.factor``."""

DEFAULT_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partition count and topic configuration (such as compaction)."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigurationError(
                f"topic {self.name!r}: partition count {self.partitions} is invalid; use 1 or more"
            )


SOURCE_TOPIC_CONFIG: Mapping[str, str] = {
    # Messages carry their event time as timestamp, and replayed events can be years old, so
    # time-based retention would delete them before the worker reads them, and time-based
    # segment rolling would start a new segment every few batches.
    "retention.ms": "-1",
    "segment.ms": str(2**63 - 1),
}


def source_topic(source: Source) -> TopicSpec:
    """Return the topic spec of a source: its declared partition count, no time retention."""
    return TopicSpec(name=source.topic, partitions=source.partitions, config=SOURCE_TOPIC_CONFIG)


def ensure_topics(
    bootstrap: str, specs: Sequence[TopicSpec], *, timeout: timedelta = DEFAULT_TIMEOUT
) -> list[str]:
    """Create the missing topics and check the partition count of existing ones.

    Returns the names of the topics created. Raises ConfigurationError naming the topic and both
    values when an existing topic has another partition count or another value for a config key
    that its spec sets, and StackError when Kafka at ``bootstrap`` cannot be reached within
    ``timeout``.
    """
    # librdkafka's own log lines go to this module's logger instead of raw stderr.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": logger}
    admin = AdminClient(config)
    seconds = timeout.total_seconds()
    existing = _topic_partitions(admin, bootstrap, seconds)
    missing = [spec for spec in specs if spec.name not in existing]
    for spec in specs:
        if spec.name in existing:
            _check_partitions(spec, existing[spec.name])
            _check_config(admin, spec, seconds)
    created = _create(admin, missing, seconds)
    if created:
        _wait_until_visible(admin, bootstrap, created, seconds)
    for spec in missing:
        if spec.name not in created:
            # Another process created it first; its count must match as well.
            _check_partitions(spec, _topic_partitions(admin, bootstrap, seconds)[spec.name])
    return created


def _topic_partitions(admin: AdminClient, bootstrap: str, seconds: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=seconds)
    except KafkaException as error:
        reason = error.args[0].str()
        raise StackError(
            f"cannot reach Kafka at {bootstrap} within {seconds:g}s ({reason}); start it "
            "with 'streamfeat stack up' or set STREAMFEAT_KAFKA_BOOTSTRAP"
        ) from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _check_partitions(spec: TopicSpec, actual: int) -> None:
    if actual != spec.partitions:
        raise ConfigurationError(
            f"topic {spec.name!r} exists with {actual} partitions but {spec.partitions} are "
            f"declared; declare {actual} partitions, or delete the topic so it is created again"
        )
    logger.debug("topic_exists topic=%s partitions=%d", spec.name, actual)


def _check_config(admin: AdminClient, spec: TopicSpec, seconds: float) -> None:
    if not spec.config:
        return
    resource = ConfigResource(ResourceType.TOPIC, spec.name)
    try:
        entries = admin.describe_configs([resource])[resource].result(timeout=seconds)
    except KafkaException as error:
        raise StackError(
            f"cannot read the config of topic {spec.name!r}: {error.args[0].str()}"
        ) from None
    for key, expected in spec.config.items():
        actual = entries[key].value if key in entries else None
        if actual != expected:
            raise ConfigurationError(
                f"topic {spec.name!r} has {key}={actual} but {expected} is required; change it "
                f"with kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
                f"--add-config {key}={expected}, or delete the topic so it is created again"
            )


def _create(admin: AdminClient, specs: Sequence[TopicSpec], seconds: float) -> list[str]:
    if not specs:
        return []
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=BROKER_DEFAULT_REPLICATION,
            config=dict(spec.config),
        )
        for spec in specs
    ]
    futures = admin.create_topics(new_topics, operation_timeout=seconds, request_timeout=seconds)
    created = []
    for spec in specs:
        try:
            futures[spec.name].result()
        except KafkaException as error:
            kafka_error: KafkaError = error.args[0]
            if kafka_error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise ConfigurationError(
                f"cannot create topic {spec.name!r} with {spec.partitions} partitions and config "
                f"{dict(spec.config)}: {kafka_error.str()}; fix the name or the config"
            ) from None
        logger.info(
            "topic_created topic=%s partitions=%d config=%s",
            spec.name,
            spec.partitions,
            spec.config,
        )
        created.append(spec.name)
    return created


def _wait_until_visible(
    admin: AdminClient, bootstrap: str, names: Sequence[str], seconds: float
) -> None:
    # Creation returns before every broker's metadata shows the topic; a producer that starts
    # at once could otherwise see "unknown topic" for a moment.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        known = _topic_partitions(admin, bootstrap, seconds)
        if all(name in known for name in names):
            return
        time.sleep(0.1)
    raise StackError(
        f"topics {', '.join(names)} were created but did not appear in the metadata of {bootstrap} "
        f"within {seconds:g}s; check the broker's log"
    )
