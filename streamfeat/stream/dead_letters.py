"""Reading back the dead-letter topic: which source offsets already have a dead letter."""

from __future__ import annotations

import logging

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

logger = logging.getLogger(__name__)

_READ_TIMEOUT_S = 2.0
_METADATA_TIMEOUT_S = 10.0

DeadLettered = dict[tuple[str, int], set[int]]
"""Source offsets that have a dead letter, per (source topic, partition)."""


def dead_lettered_offsets(
    bootstrap_servers: str, topic: str, since_ms: int | None = None
) -> DeadLettered:
    """Source offsets of the dead letters in ``topic`` written at or after ``since_ms``.

    ``since_ms`` is a message timestamp in epoch milliseconds; None reads the whole topic.
    A set per partition, not the highest offset: a crash during a flush can leave a later
    offset's dead letter delivered and an earlier one's not, since they go to different
    partitions of the dead-letter topic.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "streamfeat.dead-letter-reader",
            "enable.auto.commit": False,
        }
    )
    found: DeadLettered = {}
    try:
        starts = _start_offsets(consumer, topic, since_ms)
        ends = {}
        for start in starts:
            low, high = consumer.get_watermark_offsets(start, timeout=_METADATA_TIMEOUT_S)
            first = low if start.offset < 0 else max(start.offset, low)
            if high > first:
                ends[start.partition] = high
                start.offset = first
        consumer.assign([start for start in starts if start.partition in ends])
        _read_until(consumer, topic, ends, found)
    finally:
        consumer.close()
    logger.info(
        "dead_letters_read topic=%s since_ms=%s offsets=%d",
        topic,
        since_ms,
        sum(len(offsets) for offsets in found.values()),
    )
    return found


def _start_offsets(consumer: Consumer, topic: str, since_ms: int | None) -> list[TopicPartition]:
    """Per partition of ``topic``, the first offset to read; negative means the beginning."""
    metadata = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    if since_ms is None:
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
    requests = [TopicPartition(topic, p, since_ms) for p in metadata.partitions]
    starts = consumer.offsets_for_times(requests, timeout=_METADATA_TIMEOUT_S)
    # A partition with no message at or after since_ms gets offset -1: nothing to read.
    return [start for start in starts if start.offset >= 0]


def _read_until(consumer: Consumer, topic: str, ends: dict[int, int], found: DeadLettered) -> None:
    remaining = dict(ends)
    while remaining:
        batch = consumer.consume(1_000, _READ_TIMEOUT_S)
        if not batch:
            logger.warning(
                "dead_letter_read_incomplete topic=%s partitions=%d", topic, len(remaining)
            )
            return
        for message in batch:
            if message.error() is not None:
                continue
            headers = message.headers() or []
            _note(found, dict(headers.items() if isinstance(headers, dict) else headers))
            partition = message.partition() or 0
            if (message.offset() or 0) + 1 >= remaining.get(partition, 0):
                remaining.pop(partition, None)


def _note(found: DeadLettered, headers: dict[str, bytes | str | None]) -> None:
    try:
        source_topic = _text(headers["streamfeat.topic"])
        partition = int(_text(headers["streamfeat.partition"]))
        offset = int(_text(headers["streamfeat.offset"]))
    except (KeyError, ValueError):
        return
    found.setdefault((source_topic, partition), set()).add(offset)


def _text(value: bytes | str | None) -> str:
    if value is None:
        raise ValueError("empty header")
    return value.decode() if isinstance(value, bytes) else value
