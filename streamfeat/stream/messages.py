"""Messages between the router and the aggregator, and dead-letter headers.

A forwarded event is ``[EVENT, source partition, source offset, watermark, emission clock,
event time, columns]``; a clock mark is ``[MARK, source partition, source offset, watermark,
emission clock]``. Both are msgpack; times are epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

EVENT = 0
MARK = 1


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A decoded message of a repartition topic."""

    kind: int
    source_partition: int
    source_offset: int
    watermark_ms: int | None
    clock_ms: int | None
    event_ms: int = 0
    columns: dict[str, Any] | None = None


def pack_event(
    partition: int,
    offset: int,
    watermark_ms: int | None,
    clock_ms: int | None,
    event_ms: int,
    columns: dict[str, Any],
) -> bytes:
    packed: bytes = msgpack.packb(
        [EVENT, partition, offset, watermark_ms, clock_ms, event_ms, columns]
    )
    return packed


def pack_mark(partition: int, offset: int, watermark_ms: int | None, clock_ms: int | None) -> bytes:
    packed: bytes = msgpack.packb([MARK, partition, offset, watermark_ms, clock_ms])
    return packed


def unpack(data: bytes) -> Forwarded:
    fields = msgpack.unpackb(data, raw=False)
    if fields[0] == EVENT:
        return Forwarded(*fields)
    return Forwarded(fields[0], fields[1], fields[2], fields[3], fields[4])


def dead_letter_headers(
    reason: str,
    source: str,
    topic: str,
    partition: int,
    offset: int,
    detail: str,
    views: tuple[str, ...],
) -> list[tuple[str, bytes]]:
    """Headers of a dead letter: why, from where, and which views could not use the event."""
    return [
        ("streamfeat.reason", reason.encode()),
        ("streamfeat.source", source.encode()),
        ("streamfeat.topic", topic.encode()),
        ("streamfeat.partition", str(partition).encode()),
        ("streamfeat.offset", str(offset).encode()),
        ("streamfeat.detail", detail.encode()),
        ("streamfeat.views", ",".join(views).encode()),
    ]
