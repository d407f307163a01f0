"""Columnar decoding of feature-log messages: one batch of Avro records into NumPy and Arrow.

Decoding message by message with fastavro builds a dict and a record object per message,
which held the sink to about 26,000 records per second on its 2M-record benchmark. The
feature record's layout is fixed (``schemas/feature_record.avsc``), so this module reads a
whole batch at once: the messages are joined into one byte buffer and each field is read for
every message with vectorized NumPy operations, cursor by cursor.

Only the common encoding is read this way: the current schema's fingerprint, a known view,
the entity's join-key count in one array block, and feature names the view defines in one map
block. Any other message is left to ``decode_record`` (see ``DecodedBatch.leftovers``), so a
rare case costs speed, never correctness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from streamfeat.featurelog.codec import FEATURE_RECORD_SCHEMA, schema_store

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

NULL, LONG, DOUBLE, STRING, BOOLEAN = range(5)
"""Branches of the values map's union, in the schema's order."""

_MAX_VARINT_BYTES = 10


@dataclass(frozen=True)
class FeatureValues:
    """One feature's values over a view's rows, split by union branch.

    ``branch`` is NULL for a null value and for a feature the record lacks. ``longs`` contains
    the LONG values and the BOOLEAN ones as 0 or 1, ``doubles`` the DOUBLE values and
    ``strings`` the STRING values, null elsewhere. ``strings`` is None when no row has one.
    """

    branch: npt.NDArray[np.uint8]
    longs: Ints
    doubles: npt.NDArray[np.float64]
    strings: pa.StringArray | None


@dataclass(frozen=True)
class ViewRows:
    """The rows of one view in a batch, in message order, column by column."""

    view: str
    positions: Ints
    """Indexes of the rows' messages in the batch."""
    version: npt.NDArray[np.int32]
    entity: tuple[pa.StringArray, ...]
    """One array per join key, in the entity's order."""
    event_ts_ms: Ints
    latest_event_ts_ms: Ints
    available_at_ms: Ints
    features: dict[str, FeatureValues]
    """Values of the features the view defines, in definition order."""


@dataclass
class DecodedBatch:
    """A decoded batch: rows by view, and the messages the columnar reader left."""

    views: dict[str, ViewRows] = field(default_factory=dict)
    leftovers: list[int] = field(default_factory=list)
    """Indexes of the messages to decode one by one, ascending."""


@dataclass(frozen=True)
class _ViewLayout:
    name: bytes
    join_keys: int
    features: tuple[bytes, ...]


class _Rows:
    """Read positions of a set of messages in one buffer, each field read for all at once.

    A row turns bad where its bytes do not fit the common encoding. Its later reads return
    garbage, but its position stays inside its message. So every read stays inside the
    buffer, whose padding covers the longest read past the last message's end.
    """

    def __init__(self, buffer: npt.NDArray[np.uint8], pos: Ints, ends: Ints) -> None:
        self.buffer = buffer
        self.pos = pos
        self.ends = ends
        self.good: Mask = np.ones(len(pos), dtype=np.bool_)

    def varints(self, active: Mask | None = None) -> npt.NDArray[np.uint64]:
        """Read one variable-length integer in the ``active`` rows (all by default)."""
        first = self.buffer[self.pos]
        more = first >= 0x80
        if active is not None:
            more &= active
        value = (first & 0x7F).astype(np.uint64)
        lengths = np.ones(len(first), dtype=np.int64) if active is None else active.astype(np.int64)
        shift = 7
        while more.any():
            if shift >= 7 * _MAX_VARINT_BYTES:
                self.good &= ~more
                break
            byte = self.buffer[self.pos + lengths]
            value |= ((byte & 0x7F).astype(np.uint64) * more) << np.uint64(shift)
            lengths += more
            more &= byte >= 0x80
            shift += 7
        self.skip(lengths)
        if active is not None:
            value *= active
        return value

    def longs(self, active: Mask | None = None) -> Ints:
        """Read one zigzag-encoded Avro int or long in the ``active`` rows."""
        raw = self.varints(active)
        return ((raw >> np.uint64(1)) ^ (np.uint64(0) - (raw & np.uint64(1)))).view(np.int64)

    def skip(self, lengths: Ints) -> None:
        """Move past ``lengths`` bytes; a length past the message's end is bad."""
        invalid = (lengths < 0) | (lengths > self.ends - self.pos)
        if invalid.any():
            self.good &= ~invalid
            self.pos = np.where(invalid, self.ends, self.pos + lengths)
        else:
            self.pos += lengths

    def equals(self, expected: bytes, candidates: Mask) -> Mask:
        """Return which ``candidates`` have the bytes ``expected`` at their position."""
        matches = candidates.copy()
        for offset, byte in enumerate(expected):
            matches &= self.buffer[self.pos + offset] == byte
        return matches

    def doubles(self, active: Mask) -> npt.NDArray[np.float64]:
        window = self.buffer[self.pos[:, None] + np.arange(8)]
        self.skip(active.astype(np.int64) * 8)
        doubles: npt.NDArray[np.float64] = window.view("<f8").reshape(-1)
        return doubles

    def zero_byte(self, active: Mask) -> None:
        """Read the 0 that ends an Avro array or map; anything else is bad."""
        self.good &= ~active | (self.buffer[self.pos] == 0)
        self.skip(active.astype(np.int64))

    def subset(self, rows: Ints) -> _Rows:
        return _Rows(self.buffer, self.pos[rows], self.ends[rows])


class LogDecoder:
    """Decodes batches of feature-log messages of the given views into columns.

    ``views`` maps each view name to its join-key count and its feature names in definition
    order; messages of other views are left over.
    """

    def __init__(self, views: Mapping[str, tuple[int, Sequence[str]]]) -> None:
        self._views = [
            _ViewLayout(name.encode(), keys, tuple(feature.encode() for feature in features))
            for name, (keys, features) in views.items()
        ]
        self._header = schema_store().schema(FEATURE_RECORD_SCHEMA).header
        longest = max(
            [len(v.name) for v in self._views] + [len(f) for v in self._views for f in v.features]
        )
        self._padding = bytes(max(longest, 8, _MAX_VARINT_BYTES) + len(self._header))

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        """Decode ``values``, messages of the feature log, none of them a tombstone."""
        count = len(values)
        if count == 0:
            return DecodedBatch()
        lengths = np.fromiter(map(len, values), np.int64, count)
        ends = np.cumsum(lengths)
        buffer = np.frombuffer(b"".join([*values, self._padding]), np.uint8)
        messages = _Rows(buffer, ends - lengths, ends)
        messages.good = messages.equals(self._header, lengths >= len(self._header))
        messages.skip(np.full(count, len(self._header), dtype=np.int64))
        view_ids = self._read_view(messages)
        version = messages.longs()
        messages.good &= (version >= -(2**31)) & (version < 2**31)

        batch = DecodedBatch()
        for view_id, layout in enumerate(self._views):
            rows = np.flatnonzero(messages.good & (view_ids == view_id))
            if len(rows) == 0:
                continue
            view_rows = _read_view_rows(layout, messages.subset(rows), rows, version[rows])
            messages.good[rows] = False
            if view_rows is not None:
                messages.good[view_rows.positions] = True
                batch.views[layout.name.decode()] = view_rows
        batch.leftovers = np.flatnonzero(~messages.good).tolist()
        return batch

    def _read_view(self, messages: _Rows) -> Ints:
        lengths = messages.longs()
        view_ids = np.full(len(lengths), -1, dtype=np.int64)
        for view_id, layout in enumerate(self._views):
            candidates = messages.good & (lengths == len(layout.name))
            view_ids[messages.equals(layout.name, candidates)] = view_id
        messages.good &= view_ids >= 0
        messages.skip(lengths)
        return view_ids


def _read_view_rows(
    layout: _ViewLayout, rows: _Rows, positions: Ints, version: Ints
) -> ViewRows | None:
    """Read the fields after the version for the messages of one view.

    Returns the rows that fit the common encoding (the others stay leftovers), or None when
    a string of theirs is not valid UTF-8.
    """
    count = rows.longs()
    rows.good &= count == layout.join_keys
    key_spans = []
    for _ in range(layout.join_keys):
        lengths = rows.longs()
        key_spans.append((rows.pos.copy(), lengths))
        rows.skip(lengths)
    rows.zero_byte(np.full(len(positions), layout.join_keys > 0))
    times = [rows.longs() for _ in range(3)]
    slots = _read_values(layout, rows)
    rows.good &= rows.pos == rows.ends

    keep = np.flatnonzero(rows.good)
    try:
        keys = tuple(string_array(rows.buffer, s[keep], n[keep]) for s, n in key_spans)
        features = {
            name.decode(): _feature_values(slots[feature_id], keep, rows.buffer)
            for feature_id, name in enumerate(layout.features)
        }
    except pa.ArrowInvalid:
        return None
    return ViewRows(
        view=layout.name.decode(),
        positions=positions[keep],
        version=version[keep].astype(np.int32),
        entity=keys,
        event_ts_ms=times[0][keep],
        latest_event_ts_ms=times[1][keep],
        available_at_ms=times[2][keep],
        features=features,
    )


def _read_values(layout: _ViewLayout, rows: _Rows) -> list[_Slot]:
    """Read the values map of a view's rows; return one slot per feature of the view."""
    slots = [_Slot(len(rows.pos)) for _ in layout.features]
    entries = rows.longs()
    rows.good &= (entries >= 0) & (entries <= len(layout.features))
    for position in range(int(entries[rows.good].max(initial=0))):
        active = rows.good & (entries > position)
        feature_ids = _read_key(layout, rows, active, position)
        active &= rows.good
        branches = rows.longs(active)
        rows.good &= ~active | ((branches >= NULL) & (branches <= BOOLEAN))
        active &= rows.good
        if (feature_ids[active] == position).all():
            slots[position].read(rows, active, branches)
            continue
        for feature_id, slot in enumerate(slots):
            chosen = active & (feature_ids == feature_id)
            if chosen.any():
                slot.read(rows, chosen, branches)
    rows.zero_byte(rows.good & (entries > 0))
    return slots


def _read_key(layout: _ViewLayout, rows: _Rows, active: Mask, position: int) -> Ints:
    """Read one map key in the ``active`` rows; return its index among the view's features.

    The worker writes the features in definition order, so the feature at ``position`` is
    tried first and the others only for the rows it does not match.
    """
    lengths = rows.longs(active)
    feature_ids = np.full(len(lengths), -1, dtype=np.int64)
    order = [position, *(i for i in range(len(layout.features)) if i != position)]
    unmatched = active
    for feature_id in order:
        name = layout.features[feature_id]
        matches = rows.equals(name, unmatched & (lengths == len(name)))
        feature_ids[matches] = feature_id
        unmatched = unmatched & ~matches
        if not unmatched.any():
            break
    rows.good &= ~unmatched
    rows.skip(lengths)
    return feature_ids


class _Slot:
    """Values of one feature over a view's rows, filled map entry by map entry."""

    def __init__(self, count: int) -> None:
        self.branch = np.zeros(count, dtype=np.int64)
        self.longs = np.zeros(count, dtype=np.int64)
        self.doubles = np.zeros(count, dtype=np.float64)
        self.string_starts = np.zeros(count, dtype=np.int64)
        self.string_lengths = np.zeros(count, dtype=np.int64)

    def read(self, rows: _Rows, chosen: Mask, branches: Ints) -> None:
        """Read the values of the ``chosen`` rows, whose union branches are ``branches``."""
        # A repeated key overwrites the earlier value, as decoding into a dict does.
        np.copyto(self.branch, branches, where=chosen)
        longs = chosen & (branches == LONG)
        if longs.any():
            np.copyto(self.longs, rows.longs(longs), where=longs)
        doubles = chosen & (branches == DOUBLE)
        if doubles.any():
            np.copyto(self.doubles, rows.doubles(doubles), where=doubles)
        strings = chosen & (branches == STRING)
        if strings.any():
            lengths = rows.longs(strings)
            np.copyto(self.string_starts, rows.pos, where=strings)
            np.copyto(self.string_lengths, lengths, where=strings)
            rows.skip(lengths)
        booleans = chosen & (branches == BOOLEAN)
        if booleans.any():
            flags = rows.buffer[rows.pos]
            rows.good &= ~booleans | (flags <= 1)
            np.copyto(self.longs, flags, where=booleans)
            rows.skip(booleans.astype(np.int64))


def _feature_values(slot: _Slot, keep: Ints, buffer: npt.NDArray[np.uint8]) -> FeatureValues:
    branch = slot.branch[keep].astype(np.uint8)
    is_string = branch == STRING
    strings = None
    if is_string.any():
        starts, lengths = slot.string_starts[keep], slot.string_lengths[keep]
        strings = string_array(buffer, starts, lengths, is_string)
    return FeatureValues(branch, slot.longs[keep], slot.doubles[keep], strings)


def string_array(
    buffer: npt.NDArray[np.uint8], starts: Ints, lengths: Ints, valid: Mask | None = None
) -> pa.StringArray:
    """Build a string array of the byte spans ``buffer[start:start + length]``.

    Rows where ``valid`` is False are null. Raises ``pa.ArrowInvalid`` when a span is not
    valid UTF-8.
    """
    count = len(starts)
    if valid is not None:
        lengths = np.where(valid, lengths, 0)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    validity = None
    nulls = 0
    if valid is not None:
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = count - int(np.count_nonzero(valid))
    array = pa.StringArray.from_buffers(
        count,
        pa.py_buffer(offsets.astype(np.int32)),
        pa.py_buffer(buffer[gather]),
        validity,
        nulls,
    )
    array.validate(full=True)
    return array
