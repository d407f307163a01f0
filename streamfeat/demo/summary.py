"""The demo's closing figures: events in, dead letters by view and reason, keys and rows out."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamfeat.demo.namespace import scan_keys
from streamfeat.errors import StackError

logger = logging.getLogger(__name__)

REASON_HEADER = "streamfeat.reason"
VIEWS_HEADER = "streamfeat.views"
UNKNOWN = "unknown"
"""Placeholder for the reason or the view when a dead letter lacks the header naming it."""

DEFAULT_READ_TIMEOUT = timedelta(seconds=60)
_BATCH = 1_000
_WATERMARK_TIMEOUT_S = 10.0
_RETRY_DELAY_S = 0.2

HeaderValue = str | bytes | None
Headers = Sequence[tuple[str, HeaderValue]]

Rejections = dict[str, dict[str, int]]
"""Dead letters per feature view, then per reason."""


def count_rejections(dead_letters: Iterable[Headers | None]) -> Rejections:
    """Count dead letters per view and reason, from the headers the worker gives each one.

    A dead letter counts once for every view its ``streamfeat.views`` header names (a comma
    list), under the reason in ``streamfeat.reason``.
    """
    counts: Rejections = {}
    for headers in dead_letters:
        values = {key: _text(value) for key, value in headers or ()}
        reason = values.get(REASON_HEADER) or UNKNOWN
        views = [view for view in values.get(VIEWS_HEADER, "").split(",") if view] or [UNKNOWN]
        for view in views:
            per_reason = counts.setdefault(view, {})
            per_reason[reason] = per_reason.get(reason, 0) + 1
    return {view: dict(sorted(reasons.items())) for view, reasons in sorted(counts.items())}


def _text(value: HeaderValue) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value or ""


def read_headers(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    group: str,
    timeout: timedelta = DEFAULT_READ_TIMEOUT,
) -> Iterator[Headers | None]:
    """Yield the headers of every message in ``topic``, up to the end offsets at the start.

    The consumer is assigned the partitions directly and commits nothing, so ``group`` keeps
    no offsets. Raises StackError when the messages are not all read within ``timeout``.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "logger": logger,
        }
    )
    try:
        deadline = time.monotonic() + timeout.total_seconds()
        remaining = _assign_all(consumer, topic, partitions, deadline)
        while remaining:
            if time.monotonic() >= deadline:
                raise StackError(
                    f"reading topic {topic!r} timed out after {timeout.total_seconds():g}s with "
                    f"partitions {sorted(remaining)} unfinished; check the broker's log"
                )
            for message in consumer.consume(_BATCH, 1.0):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise StackError(f"cannot read topic {topic!r}: {error.str()}")
                    continue
                partition, offset = message.partition(), message.offset()
                if partition in remaining and offset is not None:
                    headers = message.headers()
                    yield list(headers.items()) if isinstance(headers, dict) else headers
                    if offset + 1 >= remaining[partition]:
                        del remaining[partition]
    finally:
        consumer.close()


def _assign_all(consumer: Consumer, topic: str, partitions: int, deadline: float) -> dict[int, int]:
    """Assign every non-empty partition from its first offset, and return their end offsets."""
    ends: dict[int, int] = {}
    assignment = []
    for number in range(partitions):
        low, high = _watermarks(consumer, TopicPartition(topic, number), deadline)
        if high > low:
            ends[number] = high
            assignment.append(TopicPartition(topic, number, low))
    consumer.assign(assignment)
    return ends


def _watermarks(consumer: Consumer, partition: TopicPartition, deadline: float) -> tuple[int, int]:
    """Return a partition's first and end offsets, retrying until ``deadline`` on errors."""
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=_WATERMARK_TIMEOUT_S)
        except KafkaException as exception:
            # A topic created moments ago fails with "not leader for partition" until the
            # broker that was asked knows the partition's leader.
            if time.monotonic() >= deadline:
                raise StackError(
                    f"cannot read the offsets of {partition.topic}[{partition.partition}]: "
                    f"{exception.args[0].str()}; check the broker's log"
                ) from None
            logger.info(
                "watermark_retry topic=%s partition=%d error=%s",
                partition.topic,
                partition.partition,
                exception.args[0].str(),
            )
            time.sleep(_RETRY_DELAY_S)


def count_online_keys(client: redis.Redis, patterns: Iterable[str]) -> int:
    """Count the Redis keys that match any of ``patterns`` (patterns must not overlap)."""
    return sum(1 for pattern in patterns for _ in scan_keys(client, pattern))


def count_archive_rows(archive_dir: Path, views: Iterable[str]) -> dict[str, int]:
    """Count the rows in each view's Parquet files, as stored.

    These are raw rows: ``streamfeat.offline.read_archive`` would count the repeats a
    recovering worker writes only once.
    """
    rows = {}
    for view in views:
        files = sorted((archive_dir / view).glob("*/*.parquet"))
        rows[view] = sum(pq.read_metadata(path).num_rows for path in files)
    return rows


@dataclass(frozen=True)
class DemoSummary:
    """Closing figures of one demo run."""

    events_in: int
    """Source events the worker consumed: its group's committed offsets on the source topics."""
    rejected: Rejections
    online_keys: int
    archive_rows: dict[str, int]
    """Rows in each view's Parquet files, repeats included."""
    seconds: float
    """Wall time of the whole demo run."""
    events_per_second: float
    """``events_in`` divided by the time from the worker's start until everything was processed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "events_in": self.events_in,
            "rejected": self.rejected,
            "online_keys": self.online_keys,
            "archive_rows": self.archive_rows,
            "seconds": round(self.seconds, 1),
            "events_per_second": round(self.events_per_second, 1),
        }

    def json_line(self) -> str:
        """Return the summary as compact JSON on one line."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    def write(self, path: Path) -> None:
        """Write the summary as indented JSON to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
