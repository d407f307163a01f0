"""Reading back the dead-letter topic: which source offsets already have a dead letter."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, TopicPartition

logger = logging.getLogger(__name__)

_READ_TIMEOUT_S = 2.0


def dead_lettered_offsets(bootstrap_servers: str, topic: str) -> dict[tuple[str, int], set[int]]:
    """Source offsets that have a dead letter, per (source topic, partition).

    A set, not the highest offset: a crash during a flush can leave a later offset's dead
    letter delivered and an earlier one's not, because they go to different partitions.

    Reads the whole dead-letter topic once. On each assignment a worker uses it to judge events
    again (after lost state, or after a crash before its state was saved) without sending their
    dead letters twice.

    NOTE: the read grows with the topic; a dead-letter topic with a short retention keeps it
    small.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "streamfeat.dead-letter-reader",
            "enable.auto.commit": False,
        }
    )
    found: dict[tuple[str, int], set[int]] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return found
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
                _note(found, dict(headers.items() if isinstance(headers, dict) else headers))
                offset = message.offset() or 0
                if offset + 1 >= remaining.get(message.partition() or 0, 0):
                    remaining.pop(message.partition() or 0, None)
    finally:
        consumer.close()
    return found


def _note(found: dict[tuple[str, int], set[int]], headers: dict[str, bytes | str | None]) -> None:
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
