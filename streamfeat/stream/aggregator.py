"""Stage two of the worker: windowed state per (view, entity) and the records it produces.

One task per partition of a repartition topic. Its RocksDB state holds, per (view, entity), the
engine's EntityState; an index of each entity's next slot boundary; and, per source partition,
the last source offset applied with that partition's watermark and emission clock. Events that
a restarted router forwards again carry source offsets already applied and are skipped.

An entity's slot-boundary records fall due once the emission clock of every source partition
that fed it has reached them: an entity that lives on one partition follows that
partition's clock, and one fed by several is not decayed early by the partition that runs ahead.
The boundary index is therefore grouped by the set of feeding partitions, and each group is
scanned up to the lowest clock of its set.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamfeat.aggregation.engine import Emission, EntityState, ViewEngine
from streamfeat.definitions.models import FeatureView
from streamfeat.featurelog.record import EntityKey, FeatureRecord, decode_entity_key
from streamfeat.stream.messages import EVENT, Forwarded
from streamfeat.stream.state import PartitionState

logger = logging.getLogger(__name__)

SOURCES_KEY = b"sources"
GROUPS_KEY = b"feeder-groups"
ENTITY_PREFIX = b"e:"
INDEX_PREFIX = b"i:"
_SIGN = 1 << 63
_SEPARATOR = b"\x00"
_GROUP_END = b"|"
_NOTHING_PENDING = _SIGN
_UNKNOWN_PENDING = -_SIGN

ViewEmission = tuple[str, EntityKey, Emission]


def _group(feeders: Sequence[int]) -> bytes:
    return _group_of(tuple(feeders))


@functools.lru_cache(maxsize=1_024)
def _group_of(feeders: tuple[int, ...]) -> bytes:
    return ",".join(str(p) for p in sorted(feeders)).encode()


def _index_start(group: bytes) -> bytes:
    return INDEX_PREFIX + group + _GROUP_END


def _index_key(group: bytes, boundary_ms: int, view: str, entity_text: str) -> bytes:
    return (
        _index_start(group)
        + (boundary_ms + _SIGN).to_bytes(8, "big")
        + view.encode()
        + _SEPARATOR
        + entity_text.encode()
    )


def _entity_key(view: str, entity_text: str) -> bytes:
    return ENTITY_PREFIX + view.encode() + _SEPARATOR + entity_text.encode()


@dataclass
class SourcePartitionInfo:
    """Progress of one source partition as the aggregator last heard it."""

    offset: int
    watermark_ms: int | None
    clock_ms: int | None


@dataclass
class AggregatorTask:
    """The aggregator's work for one partition of one repartition topic."""

    views: Sequence[FeatureView]
    source_partitions: int
    state: PartitionState
    engines: dict[str, ViewEngine] = field(init=False)
    sources: dict[int, SourcePartitionInfo] = field(init=False)
    groups: dict[bytes, int] = field(init=False)
    """Feeder groups with index entries, each with the earliest boundary that may be due."""
    last_offset: int | None = field(init=False)
    cache_size: int = 20_000
    """Entity states kept in memory between batches; every change is still written each batch."""
    _entities: OrderedDict[tuple[str, str], EntityState | None] = field(
        init=False, default_factory=OrderedDict
    )
    _dirty: set[tuple[str, str]] = field(init=False, default_factory=set)
    _applied: dict[int, int] = field(init=False, default_factory=dict)
    _seen: set[tuple[int, int]] = field(init=False, default_factory=set)
    _lowest_watermark: int | None = field(init=False, default=None)
    _watermark_stale: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        self.engines = {view.name: ViewEngine(view) for view in self.views}
        stored = self.state.get(SOURCES_KEY) or {}
        self.sources = {int(p): SourcePartitionInfo(*info) for p, info in stored.items()}
        self.groups = {bytes(group): _UNKNOWN_PENDING for group in self.state.get(GROUPS_KEY) or []}
        self.last_offset = self.state.offset

    def begin_batch(self) -> None:
        """Start a batch: remember which source offsets were applied before it."""
        self._applied = {p: info.offset for p, info in self.sources.items()}
        self._seen = set()

    def is_applied(self, offset: int) -> bool:
        """True when the input message at ``offset`` was applied by an earlier batch."""
        return self.last_offset is not None and offset <= self.last_offset

    def end_batch(self, max_offset: int) -> None:
        if self.last_offset is None or max_offset > self.last_offset:
            self.last_offset = max_offset

    def process(self, offset: int, key: bytes | None, message: Forwarded) -> list[ViewEmission]:
        """Apply one forwarded event or clock mark; return the records to write.

        An event whose source offset was already applied (the router forwarded it again after
        a restart) is skipped. Within a batch, events may come in any order.
        """
        if message.kind == EVENT:
            source_key = (message.source_partition, message.source_offset)
            applied = self._applied.get(message.source_partition, -1)
            if message.source_offset <= applied or source_key in self._seen:
                return []
            self._seen.add(source_key)
        clock_moved = self._note_source(message)
        emissions = self._apply_event(offset, key, message) if message.kind == EVENT else []
        if clock_moved:
            emissions.extend(self._due_boundaries(message.source_partition))
        return emissions

    def records(
        self, emissions: list[ViewEmission], versions: dict[str, int], available_at_ms: int
    ) -> list[FeatureRecord]:
        """Turn engine emissions into feature records stamped with ``available_at_ms``."""
        return [
            FeatureRecord(
                view=view,
                version=versions[view],
                entity=entity,
                event_ts_ms=emission.event_ts_ms,
                latest_event_ts_ms=emission.latest_event_ts_ms,
                values=dict(zip(self.engines[view].aggregator.names, emission.values, strict=True)),
                available_at_ms=available_at_ms,
            )
            for view, entity, emission in emissions
        ]

    def stage_state(self) -> None:
        """Stage every changed entity and the source-partition table for the next commit."""
        for view, entity_text in self._dirty:
            state = self._entities[(view, entity_text)]
            if state is None or state.is_empty:
                self.state.delete(_entity_key(view, entity_text))
            else:
                self.state.put(_entity_key(view, entity_text), state.to_wire())
        self._dirty.clear()
        while len(self._entities) > self.cache_size:
            self._entities.popitem(last=False)
        self.state.put(
            SOURCES_KEY,
            {p: [i.offset, i.watermark_ms, i.clock_ms] for p, i in self.sources.items()},
        )
        self.state.put(GROUPS_KEY, sorted(self.groups))

    def _apply_event(
        self, offset: int, key: bytes | None, message: Forwarded
    ) -> list[ViewEmission]:
        if key is None or message.columns is None:
            logger.warning("forwarded_event_without_key offset=%d", offset)
            return []
        entity_text = key.decode()
        entity = decode_entity_key(entity_text)
        min_watermark = self._min_watermark()
        emissions: list[ViewEmission] = []
        for view, engine in self.engines.items():
            state = self._load(view, entity_text)
            if state is None:
                state = self._entities[(view, entity_text)] = EntityState()
            before = (_group(state.feeders), engine.next_boundary_ms(state))
            if message.source_partition not in state.feeders:
                state.feeders.append(message.source_partition)
            found = engine.apply_event(state, message.event_ms, offset, message.columns)
            clock_ms = self._group_clock(state.feeders)
            if clock_ms is not None:
                found += engine.advance(state, clock_ms)
            if min_watermark is not None:
                engine.compact(state, min_watermark)
            self._reindex(view, entity_text, engine, state, before)
            emissions.extend((view, entity, e) for e in found)
        return emissions

    def _due_boundaries(self, moved_partition: int) -> list[ViewEmission]:
        """Records of the feeder groups that include the partition whose clock moved."""
        emissions: list[ViewEmission] = []
        moved_clock_ms = self.sources[moved_partition].clock_ms
        for group, earliest_ms in list(self.groups.items()):
            # A group's clock is at most the moved partition's, so most groups stop here.
            if moved_clock_ms is None or moved_clock_ms < earliest_ms:
                continue
            partitions = _members(group)
            if moved_partition not in partitions:
                continue
            clock_ms = self._group_clock(partitions)
            if clock_ms is not None and clock_ms >= self.groups[group]:
                emissions.extend(self._due_in_group(group, clock_ms))
        return emissions

    def _due_in_group(self, group: bytes, clock_ms: int) -> list[ViewEmission]:
        start = _index_start(group)
        stop = start + (clock_ms + 1 + _SIGN).to_bytes(8, "big")
        # Nothing of the group is pending before its earliest boundary, so the scan starts
        # there and does not walk the deleted index entries of boundaries already processed.
        earliest = self.groups[group]
        first = (
            start if earliest == _UNKNOWN_PENDING else start + (earliest + _SIGN).to_bytes(8, "big")
        )
        min_watermark = self._min_watermark()
        emissions: list[ViewEmission] = []
        self.groups[group] = _NOTHING_PENDING
        for index_key, _ in self.state.scan(first, stop):
            view_bytes, entity_bytes = index_key[len(start) + 8 :].split(_SEPARATOR, 1)
            view, entity_text = view_bytes.decode(), entity_bytes.decode()
            engine = self.engines[view]
            state = self._load(view, entity_text)
            if state is None:
                self.state.delete(index_key)
                continue
            before = (group, engine.next_boundary_ms(state))
            found = engine.advance(state, clock_ms)
            if min_watermark is not None:
                engine.compact(state, min_watermark)
            self._reindex(view, entity_text, engine, state, before)
            entity = decode_entity_key(entity_text)
            emissions.extend((view, entity, e) for e in found)
        following = self.state.first_key(stop, start[:-1] + b"}")
        if following is not None:
            boundary = int.from_bytes(following[len(start) : len(start) + 8], "big") - _SIGN
            self.groups[group] = min(self.groups[group], boundary)
        return emissions

    def _reindex(
        self,
        view: str,
        entity_text: str,
        engine: ViewEngine,
        state: EntityState,
        before: tuple[bytes, int | None],
    ) -> None:
        self._dirty.add((view, entity_text))
        old_group, old_boundary = before
        boundary = engine.next_boundary_ms(state)
        group = _group(state.feeders)
        if (group, boundary) == before:
            return
        if old_boundary is not None:
            self.state.delete(_index_key(old_group, old_boundary, view, entity_text))
        if boundary is not None:
            self.state.put(_index_key(group, boundary, view, entity_text), 1)
            self.groups[group] = min(self.groups.get(group, _NOTHING_PENDING), boundary)

    def _load(self, view: str, entity_text: str) -> EntityState | None:
        cache_key = (view, entity_text)
        if cache_key in self._entities:
            self._entities.move_to_end(cache_key)
            return self._entities[cache_key]
        wire = self.state.get(_entity_key(view, entity_text))
        state = None if wire is None else EntityState.from_wire(wire)
        self._entities[cache_key] = state
        return state

    def _note_source(self, message: Forwarded) -> bool:
        """Note a message's source offset, watermark and clock; return True when the clock moved."""
        info = self.sources.get(message.source_partition)
        if info is None:
            info = self.sources[message.source_partition] = SourcePartitionInfo(-1, None, None)
            self._watermark_stale = True
        if message.kind == EVENT:
            info.offset = max(info.offset, message.source_offset)
        watermark_before = info.watermark_ms
        info.watermark_ms = _later(info.watermark_ms, message.watermark_ms)
        if info.watermark_ms != watermark_before:
            self._watermark_stale = True
        before = info.clock_ms
        info.clock_ms = _later(info.clock_ms, message.clock_ms)
        return info.clock_ms != before

    def _group_clock(self, feeders: Sequence[int]) -> int | None:
        """Emission clock for an entity: the lowest clock of the partitions that fed it."""
        clocks = []
        for partition in feeders:
            info = self.sources.get(partition)
            if info is None or info.clock_ms is None:
                return None
            clocks.append(info.clock_ms)
        return min(clocks) if clocks else None

    def _min_watermark(self) -> int | None:
        """Lowest watermark over every source partition, None until all have reported."""
        if self._watermark_stale:
            self._lowest_watermark = self._compute_min_watermark()
            self._watermark_stale = False
        return self._lowest_watermark

    def _compute_min_watermark(self) -> int | None:
        if len(self.sources) < self.source_partitions:
            return None
        watermarks = [i.watermark_ms for i in self.sources.values()]
        if any(w is None for w in watermarks):
            return None
        return min(w for w in watermarks if w is not None)


@functools.lru_cache(maxsize=1_024)
def _members(group: bytes) -> tuple[int, ...]:
    """Source partitions of a feeder group's key."""
    return tuple(int(p) for p in group.decode().split(","))


def _later(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
