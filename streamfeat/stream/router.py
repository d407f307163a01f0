"""Stage one of the worker: check each source event and forward it keyed by entity.

Per source partition the router keeps the watermark and emission clock and the event
ids seen, in RocksDB with the offset they account for.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from streamfeat.aggregation.clock import PartitionClock
from streamfeat.definitions.durations import to_ms
from streamfeat.definitions.models import Source, Topology
from streamfeat.featurelog.record import encode_entity_key
from streamfeat.observability.ratelimit import RateLimitedLog
from streamfeat.quality.checks import EventChecker
from streamfeat.quality.reasons import Reason
from streamfeat.serialization import DecodeError, Decoder
from streamfeat.serialization.event_time import EventTimeReader
from streamfeat.stream import messages
from streamfeat.stream.state import PartitionState
from streamfeat.stream.topics import entities_of, repartition_topic

logger = logging.getLogger(__name__)
_dead_letter_log = RateLimitedLog(logger)
"""Dead letters are logged once per reason every ten seconds, and counted per view."""

CLOCK_KEY = b"clock"
ID_PREFIX = b"d:"
EXPIRY_PREFIX = b"x:"
_SIGN = 1 << 63


def message_offset(message: Message) -> int:
    """Offset of a consumed message (always set for messages without an error)."""
    offset = message.offset()
    if offset is None:
        raise ValueError(f"message from {message.topic()} has no offset")
    return offset


@dataclass(frozen=True, slots=True)
class Output:
    """A message to produce: topic, partition (None lets the key decide), key, value, headers."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


@dataclass
class SourceRoute:
    """Routing of one source: its decoder, checks and repartition targets."""

    source: Source
    decoder: Decoder
    time_reader: EventTimeReader
    checker: EventChecker
    targets: list[tuple[str, list[str], tuple[str, ...]]]
    """Per entity: repartition topic, view names, join keys."""
    columns: list[str]
    views: tuple[str, ...]
    id_memory_ms: int
    mark_step_ms: int
    """Slot boundaries of the source's views are multiples of this (the hops' gcd)."""

    @classmethod
    def build(cls, topology: Topology, source: Source, decoder: Decoder) -> SourceRoute:
        views = topology.views_of(source.name)
        join_keys = {v.name: topology.entity(v.entity).join_keys for v in views}
        targets = []
        for entity in entities_of(topology, source):
            names = [v.name for v in views if v.entity == entity]
            topic = repartition_topic(topology, source, entity)
            targets.append((topic, names, topology.entity(entity).join_keys))
        columns = sorted({f.column for v in views for f in v.features if f.column is not None})
        return cls(
            source=source,
            decoder=decoder,
            time_reader=EventTimeReader(source, decoder.reader),
            checker=EventChecker(source, join_keys),
            targets=targets,
            columns=columns,
            views=tuple(v.name for v in views),
            id_memory_ms=max(v.window.length_ms for v in views),
            mark_step_ms=math.gcd(*(v.window.hop_ms for v in views)),
        )


@dataclass
class RouterTask:
    """The router's work for one source-topic partition."""

    route: SourceRoute
    topology_name: str
    dead_letter_topic: str
    partition: int
    state: PartitionState
    partitions_out: int
    clock: PartitionClock = field(init=False)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    accepted: int = 0
    last_offset: int | None = None
    mark_sent_clock_ms: int | None = None
    dead_lettered: frozenset[int] = frozenset()
    """Offsets of this partition already in the dead-letter topic: events judged again after a
    restart or a move, whose dead letters are not sent a second time."""

    def __post_init__(self) -> None:
        source = self.route.source
        self.clock = PartitionClock(to_ms(source.allowed_lateness), to_ms(source.idle_timeout))
        stored = self.state.get(CLOCK_KEY)
        if stored is not None:
            self.clock.restore(stored)
        self.last_offset = self.state.offset

    def process(self, message: Message, wall_ms: int, out: Callable[[Output], None]) -> None:
        """Check one source message and emit its forwards or its dead letter."""
        offset = message_offset(message)
        if self.last_offset is not None and offset <= self.last_offset:
            return
        self.last_offset = offset
        self.clock.note_message(wall_ms)
        try:
            event = self.route.decoder.decode(message.value())
        except DecodeError as error:
            self._dead_letter(message, Reason(error.reason), error.detail, self.route.views, out)
            return
        event_ms = self.route.time_reader.read_ms(event)
        verdict = self.route.checker.check(event, event_ms, wall_ms)
        if verdict.reason is not None or event_ms is None:
            reason = verdict.reason or Reason.OUT_OF_RANGE
            views = verdict.missing_key_views if reason is Reason.MISSING_KEY else self.route.views
            self._dead_letter(message, reason, verdict.detail, views, out)
            return
        rejection = self._duplicate_or_late(event, event_ms)
        if rejection is not None:
            self._dead_letter(message, rejection[0], rejection[1], self.route.views, out)
            return
        if verdict.missing_key_views:
            detail = "the event has no entity key for these views"
            self._dead_letter(message, Reason.MISSING_KEY, detail, verdict.missing_key_views, out)
        self.clock.accept(event_ms)
        self.accepted += 1
        self._forward(event, event_ms, offset, verdict.keys, out)

    def idle_tick(self, wall_ms: int) -> bool:
        """Advance the emission clock while idle; True when it moved."""
        return self.clock.advance_idle(wall_ms)

    def marks(self) -> list[Output]:
        """Clock marks for every partition of every repartition topic.

        Only a clock that reaches a new slot boundary can make records due, so a mark goes out
        when the clock crosses a multiple of the views' hops, not on every move.
        """
        clock_ms = self.clock.emission_ms
        if clock_ms is None:
            return []
        step = self.route.mark_step_ms
        sent = self.mark_sent_clock_ms
        if sent is not None and clock_ms // step == sent // step:
            return []
        self.mark_sent_clock_ms = clock_ms
        value = messages.pack_mark(
            self.partition, self.last_offset or 0, self.clock.watermark_ms, clock_ms
        )
        return [
            Output(topic, q, None, value)
            for topic, _, _ in self.route.targets
            for q in range(self.partitions_out)
        ]

    def stage_state(self) -> None:
        self.state.put(CLOCK_KEY, self.clock.to_wire())

    def _forward(
        self,
        event: dict[str, Any],
        event_ms: int,
        offset: int,
        keys: dict[str, tuple[str, ...]],
        out: Callable[[Output], None],
    ) -> None:
        columns = {name: event.get(name) for name in self.route.columns}
        value = messages.pack_event(
            self.partition,
            offset,
            self.clock.watermark_ms,
            self.clock.emission_ms,
            event_ms,
            columns,
        )
        for topic, view_names, _ in self.route.targets:
            entity = keys.get(view_names[0])
            if entity is not None:
                out(Output(topic, None, encode_entity_key(entity).encode(), value))

    def _duplicate_or_late(self, event: dict[str, Any], event_ms: int) -> tuple[Reason, str] | None:
        id_field = self.route.source.event_id
        if id_field is not None:
            event_id = event.get(id_field)
            if event_id is not None:
                key = ID_PREFIX + str(event_id).encode()
                if self.state.get(key) is not None:
                    return Reason.DUPLICATE, f"event id {event_id!r} was already accepted"
                if not self.clock.is_late(event_ms):
                    self._remember_id(key, event_ms)
        watermark = self.clock.watermark_ms
        if watermark is not None and event_ms < watermark:
            late_by_ms = watermark - event_ms
            return Reason.LATE, f"event time {event_ms} ms is {late_by_ms} ms below the watermark"
        return None

    def _remember_id(self, key: bytes, event_ms: int) -> None:
        self.state.put(key, event_ms)
        expires = event_ms + self.route.id_memory_ms
        self.state.put(EXPIRY_PREFIX + (expires + _SIGN).to_bytes(8, "big") + key, 1)

    def forget_expired_ids(self) -> None:
        """Forget event ids once the watermark passed their time plus the longest window."""
        watermark = self.clock.watermark_ms
        if watermark is None or self.route.source.event_id is None:
            return
        stop = EXPIRY_PREFIX + (watermark + _SIGN).to_bytes(8, "big")
        for index_key, _ in self.state.scan(EXPIRY_PREFIX, stop):
            self.state.delete(index_key)
            self.state.delete(index_key[len(EXPIRY_PREFIX) + 8 :])

    def _dead_letter(
        self,
        message: Message,
        reason: Reason,
        detail: str,
        views: tuple[str, ...],
        out: Callable[[Output], None],
    ) -> None:
        offset = message_offset(message)
        if offset in self.dead_lettered:
            return
        for view in views:
            self.rejected[(view, reason.value)] += 1
        headers = messages.dead_letter_headers(
            reason.value,
            self.route.source.name,
            self.route.source.topic,
            self.partition,
            message_offset(message),
            detail,
            views,
        )
        out(Output(self.dead_letter_topic, None, message.key(), message.value(), headers))
        _dead_letter_log.warning(
            reason.value,
            "dead_letter reason=%s topic=%s partition=%d offset=%d views=%s",
            reason.value,
            self.route.source.topic,
            self.partition,
            message_offset(message),
            ",".join(views),
        )
