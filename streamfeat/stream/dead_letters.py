"""Reading back the dead-letter topic: which source offsets already have a dead letter."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, TopicPartition

logger = logging.getLogger(__name__)

_READ_TIMEOUT_S = 2.0


def dead_lettered_offsets(bootstrap_servers: str, topic: str) -> dict[tuple[str, int], int]:
    """Highest source offset with a dead letter, per (source topic, partition).

    Reads the whole dead-letter topic once; a worker that lost a partition's state uses it to
    judge that partition's events again without sending their dead letters twice.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "streamfeat.dead-letter-reader",
            "enable.auto.commit": False,
        }
    )
    highest: dict[tuple[str, int], int] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return highest
        ends = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        remaining = dict(ends)
        while remaining:
            batch = consumer.consume(1_000, _READ_TIMEOUT_S)
            if not batch:
                logger.warning(
                    "dead_letter_read_incomplete topic=%s partitions=%d", topic, len(remaining)
                )
                break
            for message in batch:
                if message.error() is not None:
                    continue
                headers = message.headers() or []
                _note(highest, dict(headers.items() if isinstance(headers, dict) else headers))
                offset = message.offset() or 0
                if offset + 1 >= remaining.get(message.partition() or 0, 0):
                    remaining.pop(message.partition() or 0, None)
    finally:
        consumer.close()
    return highest


def _note(highest: dict[tuple[str, int], int], headers: dict[str, bytes | str | None]) -> None:
    try:
        source_topic = _text(headers["streamfeat.topic"])
        partition = int(_text(headers["streamfeat.partition"]))
        offset = int(_text(headers["streamfeat.offset"]))
    except (KeyError, ValueError):
        return
    key = (source_topic, partition)
    if offset > highest.get(key, -1):
        highest[key] = offset


def _text(value: bytes | str | None) -> str:
    if value is None:
        raise ValueError("empty header")
    return value.decode() if isinstance(value, bytes) else value
