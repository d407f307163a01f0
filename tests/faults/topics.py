"""Read back the feature-log and dead-letter topics, and the archive's files row by row.

The feature log is compacted, but the cleaner never touches the active segment, and in a test
the first segment never rolls (``segment.ms`` is unbounded and a segment takes a gigabyte). So
the topic still contains every record the workers produced.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Message, TopicPartition

from streamfeat.definitions.models import Topology
from streamfeat.featurelog.codec import decode_record
from streamfeat.sink.layout import AVAILABLE_AT, EVENT_TS
from tests.faults.archive_files import view_rows
from tests.faults.pipeline import QUIET

_READ_TIMEOUT_S = 10.0
_BATCH = 10_000

RowKey = tuple[str, str, int, int]
"""(view, entity, event_ts, available_at), times in epoch milliseconds."""


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every message of ``topic``, read from the start of each partition to its current end."""
    consumer = Consumer(
        {
            **QUIET,
            "bootstrap.servers": bootstrap,
            "group.id": "faults.reader",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=_READ_TIMEOUT_S).topics[topic]
        ends = {}
        for partition in metadata.partitions:
            tp = TopicPartition(topic, partition)
            _, ends[partition] = consumer.get_watermark_offsets(tp, timeout=_READ_TIMEOUT_S)
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        remaining = {p for p, end in ends.items() if end > 0}
        messages: list[Message] = []
        while remaining:
            batch = consumer.consume(_BATCH, _READ_TIMEOUT_S)
            if not batch:
                raise TimeoutError(f"{topic}: partitions {sorted(remaining)} stopped short")
            for message in batch:
                if message.error() is not None:
                    continue
                messages.append(message)
                partition, offset = message.partition() or 0, message.offset() or 0
                if offset + 1 >= ends[partition]:
                    remaining.discard(partition)
        return messages
    finally:
        consumer.close()


@dataclass(frozen=True)
class DeadLetterCheck:
    """Dead letters per (view, reason), each source event counted once, and the repeats."""

    per_view_reason: Counter[tuple[str, str]]
    repeated: int
    """Dead letters of a source event that already had one with the same reason."""


def check_dead_letters(bootstrap: str, topology: Topology) -> DeadLetterCheck:
    """Count the dead-letter topic's messages by the source offset their headers name."""
    seen: Counter[tuple[str, int, int, str]] = Counter()
    views_of: dict[tuple[str, int, int, str], list[str]] = {}
    for message in read_topic(bootstrap, topology.dead_letters):
        headers = _text_headers(message)
        key = (
            headers["streamfeat.topic"],
            int(headers["streamfeat.partition"]),
            int(headers["streamfeat.offset"]),
            headers["streamfeat.reason"],
        )
        seen[key] += 1
        views_of[key] = headers.get("streamfeat.views", "").split(",")
    per_view_reason: Counter[tuple[str, str]] = Counter()
    for key, views in views_of.items():
        for view in views:
            per_view_reason[(view, key[3])] += 1
    return DeadLetterCheck(per_view_reason, sum(count - 1 for count in seen.values()))


def _text_headers(message: Message) -> dict[str, str]:
    found = message.headers() or []
    pairs = found.items() if isinstance(found, dict) else found
    return {name: value.decode() for name, value in pairs if isinstance(value, bytes)}


@dataclass(frozen=True)
class RowCheck:
    """Archive rows against feature-log records, matched by view, entity and both times."""

    log_records: int
    archive_rows: int
    missing: Counter[RowKey]
    """Records of the feature log that no archive row holds."""
    duplicated: Counter[RowKey]
    """Archive rows beyond the one each record should have (extra copies, or no record)."""


def check_archive_rows(bootstrap: str, topology: Topology, archive: Path) -> RowCheck:
    """Match every feature-log record with the archive's rows, copies included."""
    log: Counter[RowKey] = Counter()
    for message in read_topic(bootstrap, topology.feature_log):
        record = decode_record(message.value())
        (entity,) = record.entity
        log[(record.view, str(entity), record.event_ts_ms, record.available_at_ms)] += 1
    rows: Counter[RowKey] = Counter()
    for view in topology.feature_views:
        (key,) = topology.entity(view.entity).join_keys
        table = view_rows(archive, view, key)
        columns = (table.column(name).to_pylist() for name in (key, EVENT_TS, AVAILABLE_AT))
        for entity, event_ms, available_ms in zip(*columns, strict=True):
            rows[(view.name, str(entity), event_ms, available_ms)] += 1
    return RowCheck(log.total(), rows.total(), log - rows, rows - log)
