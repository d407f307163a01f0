"""What the worker wrote, read back from Kafka: feature-log record versions and dead letters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streamfeat.definitions.models import Topology
from streamfeat.featurelog.record import FeatureRecord, FeatureValue
from tests.aggregation.harness import ms

KAFKA_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0

Values = list[FeatureValue]
"""Feature values in the order the view lists its features."""

Version = tuple[int, int, Values]
"""One record version: event_ts, the entity's latest event time, values (epoch ms)."""


@dataclass(frozen=True)
class DeadLetter:
    """A message of the dead-letter topic, with the label of the event it carries."""

    label: str
    reason: str
    source: str
    topic: str
    partition: int
    offset: int
    views: tuple[str, ...]
    detail: str
    value: bytes | None


def dead_letter_from(message: Message, labels: Mapping[tuple[int, int], str]) -> DeadLetter:
    """Parse a dead-letter message; ``labels`` maps (partition, offset) of the source to labels."""
    # The worker sets headers as a list of (str, bytes) pairs.
    pairs = cast(list[tuple[str, bytes]], message.headers() or [])
    headers = {key: value.decode() for key, value in pairs}
    partition = int(headers["streamfeat.partition"])
    offset = int(headers["streamfeat.offset"])
    views = headers["streamfeat.views"]
    return DeadLetter(
        label=labels.get((partition, offset), f"unknown@{partition}:{offset}"),
        reason=headers["streamfeat.reason"],
        source=headers["streamfeat.source"],
        topic=headers["streamfeat.topic"],
        partition=partition,
        offset=offset,
        views=tuple(views.split(",")) if views else (),
        detail=headers["streamfeat.detail"],
        value=message.value(),
    )


@dataclass(frozen=True)
class FeatureLog:
    """Record versions read from the feature-log topic, in offset order within each partition."""

    topology: Topology
    records: list[FeatureRecord]

    def of(self, view: str, entity: str) -> list[FeatureRecord]:
        return [r for r in self.records if r.view == view and r.entity == (entity,)]

    def versions(self, view: str, entity: str) -> list[Version]:
        """Every version for (view, entity), in write order."""
        return [self._version(r) for r in self.of(view, entity)]

    def final_records(
        self, view: str, entity: str, *, known_at_iso: str | None = None
    ) -> list[Version]:
        """The newest version per event_ts (latest available_at), sorted by event_ts.

        Without ``known_at_iso`` this is what compaction keeps; with it, only versions
        available by then count ("as known then").
        """
        known_at = None if known_at_iso is None else ms(known_at_iso)
        newest: dict[int, FeatureRecord] = {}
        for record in self.of(view, entity):
            if known_at is not None and record.available_at_ms > known_at:
                continue
            current = newest.get(record.event_ts_ms)
            if current is None or record.available_at_ms >= current.available_at_ms:
                newest[record.event_ts_ms] = record
        return [self._version(newest[ts]) for ts in sorted(newest)]

    def value_as_of(
        self, view: str, entity: str, iso: str, *, known_at_iso: str | None = None
    ) -> Values | None:
        """Values as of ``iso`` the way the point-in-time join reads the log.

        It takes the last record with event_ts at or before ``iso``. The value is null when there
        is none, or when the record's latest event time is older than the view's TTL at ``iso``
        (the bound itself is still served).
        """
        t = ms(iso)
        final = self.final_records(view, entity, known_at_iso=known_at_iso)
        candidates = [r for r in final if r[0] <= t]
        if not candidates:
            return None
        _, latest, values = candidates[-1]
        ttl_ms = self.topology.view(view).ttl_ms
        if ttl_ms is not None and latest < t - ttl_ms:
            return None
        return values

    def _version(self, record: FeatureRecord) -> Version:
        names = [feature.name for feature in self.topology.view(record.view).features]
        return (record.event_ts_ms, record.latest_event_ts_ms, [record.values[n] for n in names])


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Read every message of ``topic`` up to its current end, partition by partition."""
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sftest-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
        }
    )
    try:
        return _read_to_end(reader, topic)
    finally:
        reader.close()


def _read_to_end(reader: Consumer, topic: str) -> list[Message]:
    """Read every partition of ``topic`` from its start to its current end offset."""
    metadata = reader.list_topics(topic, timeout=KAFKA_TIMEOUT_S)
    ends: dict[int, int] = {}
    assignment = []
    for partition in sorted(metadata.topics[topic].partitions):
        tp = TopicPartition(topic, partition)
        low, high = reader.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_S)
        if high > low:
            ends[partition] = high
            assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
    if not assignment:
        return []
    reader.assign(assignment)
    found: dict[int, list[Message]] = {p: [] for p in ends}
    next_offsets = dict.fromkeys(ends, 0)
    deadline = time.monotonic() + READ_TIMEOUT_S
    while any(next_offsets[p] < ends[p] for p in ends):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out reading {topic} to its end offsets {ends}")
        for message in reader.consume(500, 0.5):
            if message.error() is not None:
                continue
            partition, offset = message_position(message)
            if offset < ends[partition]:
                found[partition].append(message)
            next_offsets[partition] = offset + 1
    return [message for p in sorted(found) for message in found[p]]


def message_position(message: Message) -> tuple[int, int]:
    """(partition, offset) of a consumed or delivered message."""
    partition, offset = message.partition(), message.offset()
    if partition is None or offset is None:
        raise AssertionError(f"a message of {message.topic()} has no partition or offset")
    return partition, offset
