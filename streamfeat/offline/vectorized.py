"""Vectorized records of one feature view from its accepted events, all entities at once.

It computes the same records as the per-event core, for in-order and out-of-order input alike.
Each entity gets a record at every distinct event time, and one at every slot boundary up to
``until_ms`` where the value changes because a slot left the window.

The value as of ``t`` covers the events with ``e - W <= ts <= t``, ``e = floor(t / h) * h + h``.
Events are sorted by (entity, time), keeping delivery order among equal times, and each
(entity, time) pair is folded into one int64 key. Both ends of every record's window then
become index ranges of the sorted events through one ``searchsorted``. Range counts, sums,
extremes and the last non-null value give the features. Views with other functions (variance,
distinct count, percentiles) or with columns of other types go through the per-event core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from streamfeat.definitions.models import Feature, FeatureView, Function
from streamfeat.offline._range_tables import range_counts, range_extremes, range_sums

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

VECTORIZED = frozenset(
    {Function.COUNT, Function.SUM, Function.MEAN, Function.MIN, Function.MAX, Function.LAST}
)
_KEY_LIMIT = 2**62
"""Largest (entity, time) key; entities are split into groups whose keys stay below it."""


def is_vectorized(view: FeatureView, column_types: Mapping[str, pa.DataType]) -> bool:
    """True when every feature of ``view`` has a vectorized form for its column's Arrow type.

    A column missing from ``column_types`` is null in every event, which every form handles.
    """
    for feature in view.features:
        if feature.function not in VECTORIZED:
            return False
        kind = column_types.get(feature.column or "")
        if feature.column is None or kind is None or feature.function is Function.COUNT:
            continue
        if feature.function is Function.LAST:
            supported = (
                _is_number(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
            )
        elif feature.function in (Function.MIN, Function.MAX):
            supported = _is_number(kind)
        else:
            supported = _is_number(kind) or pa.types.is_uint64(kind)
        if not supported:
            return False
    return True


@dataclass(frozen=True)
class ViewRecords:
    """Records of one view: entity code, event time, latest event time and one array per feature."""

    entity: Ints
    event_ts_ms: Ints
    latest_event_ts_ms: Ints
    values: list[pa.Array]


def view_records(
    view: FeatureView,
    entity: Ints,
    ts_ms: Ints,
    columns: Mapping[str, pa.Array],
    until_ms: int,
) -> ViewRecords:
    """Compute the records of ``view`` from its accepted events, given in delivery order.

    ``entity`` contains each event's entity code (0 to the number of entities - 1), ``columns``
    each used column (a missing one is null throughout). ``until_ms`` is the emission clock at
    the end, the last time a slot-boundary record can fall due. Records come sorted by entity
    code, then time.
    """
    order = _by_entity_then_time(entity, ts_ms)
    entity, ts_ms = entity[order], ts_ms[order]
    sorted_columns = {name: column.take(pa.array(order)) for name, column in columns.items()}
    parts = [
        _group_records(view, entity, ts_ms, sorted_columns, until_ms, start, stop)
        for start, stop in _entity_groups(entity, ts_ms, view, until_ms)
    ]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        values = [pa.array([], _empty_type(f)) for f in view.features]
        return ViewRecords(empty, empty, empty, values)
    return ViewRecords(
        np.concatenate([p.entity for p in parts]),
        np.concatenate([p.event_ts_ms for p in parts]),
        np.concatenate([p.latest_event_ts_ms for p in parts]),
        [pa.concat_arrays([p.values[i] for p in parts]) for i in range(len(view.features))],
    )


@dataclass(frozen=True)
class _Windows:
    """Candidate record times of a group of entities and the event range of each one's window."""

    entity: Ints
    time_ms: Ints
    is_event: Mask
    lo: Ints
    hi: Ints


def _group_records(
    view: FeatureView,
    entity: Ints,
    ts_ms: Ints,
    columns: Mapping[str, pa.Array],
    until_ms: int,
    start: int,
    stop: int,
) -> ViewRecords:
    """Records of the sorted events ``start:stop``, whose entities form one key group."""
    entity, ts_ms = entity[start:stop], ts_ms[start:stop]
    columns = {name: column.slice(start, stop - start) for name, column in columns.items()}
    windows = _windows(view, entity, ts_ms, until_ms)
    values = [_feature(feature, columns, windows, len(ts_ms)) for feature in view.features]
    is_record = windows.is_event | _changed(values)
    mask = pa.array(is_record)
    return ViewRecords(
        entity=windows.entity[is_record],
        event_ts_ms=windows.time_ms[is_record],
        latest_event_ts_ms=ts_ms[windows.hi[is_record] - 1],
        values=[column.filter(mask) for column in values],
    )


def _windows(view: FeatureView, entity: Ints, ts_ms: Ints, until_ms: int) -> _Windows:
    """Record times (event times and slot boundaries) and their windows' event ranges."""
    length, hop = view.window.length_ms, view.window.hop_ms
    first_entity = int(entity[0])
    entity = entity - first_entity
    base = int(ts_ms.min()) - length
    stride = max(int(ts_ms.max()), until_ms) - base + 1
    keys = entity * stride + (ts_ms - base)

    last_at_time = np.ones(len(keys), dtype=bool)
    last_at_time[:-1] = keys[1:] != keys[:-1]
    slot = ts_ms // hop
    first_in_slot = np.ones(len(keys), dtype=bool)
    first_in_slot[1:] = (entity[1:] != entity[:-1]) | (slot[1:] != slot[:-1])
    boundary_ms = slot[first_in_slot] * hop + length
    due = boundary_ms <= until_ms
    boundary_keys = entity[first_in_slot][due] * stride + (boundary_ms[due] - base)

    # Both key lists are sorted, so the stable sort merges two runs. At a tie the event comes
    # first, and only the first of equal keys is kept.
    merged = np.concatenate([keys[last_at_time], boundary_keys])
    order = np.argsort(merged, kind="stable")
    first = np.ones(len(order), dtype=bool)
    first[1:] = merged[order[1:]] != merged[order[:-1]]
    picked = order[first]
    is_event = picked < int(np.count_nonzero(last_at_time))
    record_entity = np.concatenate([entity[last_at_time], entity[first_in_slot][due]])[picked]
    time_ms = np.concatenate([ts_ms[last_at_time], boundary_ms[due]])[picked]

    # An event record's window ends after the last event at its time. A boundary record's
    # window ends where the record before it, an event record of the same entity, ends.
    event_ends = np.flatnonzero(last_at_time) + 1
    ends = np.concatenate([event_ends, np.zeros(len(boundary_keys), dtype=np.int64)])[picked]
    hi = np.maximum.accumulate(ends)
    window_start = (time_ms // hop) * hop + hop - length
    lo = np.searchsorted(keys, record_entity * stride + (window_start - base), side="left")
    return _Windows(record_entity + first_entity, time_ms, is_event, lo, hi)


def _feature(
    feature: Feature, columns: Mapping[str, pa.Array], windows: _Windows, events: int
) -> pa.Array:
    """One feature's value at every candidate record time."""
    lo, hi = windows.lo, windows.hi
    if feature.function is Function.COUNT and feature.column is None:
        return pa.array(hi - lo, pa.int64())
    column = columns.get(feature.column or "")
    if column is None:
        column = pa.nulls(events)
    present = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    count = range_counts(present, lo, hi)
    empty = count == 0
    function = feature.function
    if function is Function.COUNT:
        return pa.array(count, pa.int64())
    if function is Function.LAST:
        return _last(column, present, lo, hi)
    if function in (Function.SUM, Function.MEAN):
        values = _numbers(column, pa.float64())
        sums = range_sums(np.where(present, values, 0.0), lo, hi)
        result = sums if function is Function.SUM else sums / np.maximum(count, 1)
        return pa.array(result, pa.float64(), mask=empty)
    return _extreme(function, column, present, lo, hi, empty)


def _extreme(
    function: Function, column: pa.Array, present: Mask, lo: Ints, hi: Ints, empty: Mask
) -> pa.Array:
    """Minimum or maximum, in the column's own kind (integers stay exact)."""
    kind = column.type
    floating = pa.types.is_floating(kind) or pa.types.is_null(kind)
    values = _numbers(column, pa.float64() if floating else pa.int64())
    if floating:
        lowest, highest = -np.inf, np.inf
    else:
        lowest, highest = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    # A null must never win, so it takes the value that every other value beats.
    if function is Function.MIN:
        extremes = range_extremes(np.where(present, values, highest), lo, hi, np.minimum)
    else:
        extremes = range_extremes(np.where(present, values, lowest), lo, hi, np.maximum)
    result = pa.array(extremes, pa.float64() if floating else pa.int64(), mask=empty)
    return result.cast(pa.bool_()) if pa.types.is_boolean(kind) else result


def _last(column: pa.Array, present: Mask, lo: Ints, hi: Ints) -> pa.Array:
    """Pick the last non-null value in each range; among equal times the later delivery wins."""
    index = np.where(present, np.arange(len(present)), -1)
    last_present = np.maximum.accumulate(index) if len(index) else index
    at = last_present[np.maximum(hi - 1, 0)]
    found = (hi > lo) & (at >= lo)
    taken = column.take(pa.array(np.where(found, at, 0)))
    return pc.if_else(pa.array(found), taken, pa.scalar(None, column.type))


def _changed(values: list[pa.Array]) -> Mask:
    """Candidates whose values differ from the previous candidate's (the value just before)."""
    changed = np.zeros(len(values[0]) if values else 0, dtype=bool)
    if len(changed) < 2:
        changed[:] = True
        return changed
    changed[0] = True
    for column in values:
        if pa.types.is_null(column.type):
            continue
        current, previous = column.slice(1), column.slice(0, len(column) - 1)
        equal = pc.fill_null(pc.equal(current, previous), False)
        both_null = pc.and_(current.is_null(), previous.is_null())
        same = pc.or_(equal, both_null).to_numpy(zero_copy_only=False)
        changed[1:] |= ~np.asarray(same, dtype=bool)
    return changed


def _numbers(column: pa.Array, kind: pa.DataType) -> npt.NDArray[np.generic]:
    """Convert the column's values to numpy numbers of ``kind``, with nulls as 0."""
    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype=kind.to_pandas_dtype())
    # Integers round to the nearest float, as ``float(value)`` does in the core.
    converted = pc.cast(column, kind, safe=not pa.types.is_floating(kind)).fill_null(0)
    return np.asarray(converted.to_numpy(zero_copy_only=False))


def _by_entity_then_time(entity: Ints, ts_ms: Ints) -> Ints:
    """Stable order by entity, then time; events delivered in time order need one sort only."""
    # numpy sorts 16-bit integers with a radix sort, much faster than its int64 merge sort.
    codes = entity.astype(np.uint16) if len(entity) and entity.max() < 2**16 else entity
    if len(ts_ms) > 1 and not np.all(ts_ms[1:] >= ts_ms[:-1]):
        by_time = np.argsort(ts_ms, kind="stable")
        return by_time[np.argsort(codes[by_time], kind="stable")]
    return np.argsort(codes, kind="stable")


def _entity_groups(
    entity: Ints, ts_ms: Ints, view: FeatureView, until_ms: int
) -> list[tuple[int, int]]:
    """Split the sorted events into runs of whole entities whose keys fit in an int64."""
    if len(entity) == 0:
        return []
    span = max(int(ts_ms.max()), until_ms) - int(ts_ms.min()) + view.window.length_ms + 1
    per_group = max(1, _KEY_LIMIT // span)
    edges = np.searchsorted(entity, np.arange(0, int(entity[-1]) + 1, per_group), side="left")
    bounds = [*edges.tolist(), len(entity)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _empty_type(feature: Feature) -> pa.DataType:
    if feature.function is Function.COUNT:
        return pa.int64()
    return pa.float64() if feature.function in (Function.SUM, Function.MEAN) else pa.null()


def _is_number(kind: pa.DataType) -> bool:
    if pa.types.is_uint64(kind):
        return False
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
    )
