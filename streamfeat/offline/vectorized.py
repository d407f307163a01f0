"""Vectorized records of one feature view from one entity's accepted events, with numpy.

It computes the same records as the per-event core, for in-order and out-of-order input alike.
There is one record at every distinct event time, and one at every slot boundary up to
``until_ms`` where the value changes because a slot left the window.

The value as of ``t`` covers the events with ``e - W <= ts <= t``, ``e = floor(t / h) * h + h``.
Both ends become index ranges of the sorted events through ``searchsorted``. Prefix sums then
give counts, sums and means, a sparse table gives minima and maxima, and the index of the last
non-null value gives ``last``. Views with other functions (variance, distinct count,
percentiles) go through the per-event core instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.definitions.models import FeatureView, Function

VECTORIZED = frozenset(
    {Function.COUNT, Function.SUM, Function.MEAN, Function.MIN, Function.MAX, Function.LAST}
)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def is_vectorized(view: FeatureView) -> bool:
    """True when every feature of ``view`` has a vectorized implementation."""
    return all(feature.function in VECTORIZED for feature in view.features)


@dataclass(frozen=True)
class EntityRecords:
    """Records of one entity: event times, latest event times and one value column per feature."""

    event_ts_ms: Ints
    latest_event_ts_ms: Ints
    values: list[list[Any]]


def entity_records(
    view: FeatureView, ts_ms: Ints, columns: dict[str, Floats], until_ms: int
) -> EntityRecords:
    """Compute the records of ``view`` for one entity's events, sorted by time.

    Events with equal times stay in delivery order. ``columns`` contains each used column as
    float64 with NaN for null. ``until_ms`` is the emission clock at the end, the last time a
    slot-boundary record can fall due.
    """
    length, hop = view.window.length_ms, view.window.hop_ms
    times = _record_times(ts_ms, length, hop, until_ms)
    hi = np.searchsorted(ts_ms, times, side="right")
    window_start = (times // hop) * hop + hop - length
    lo = np.searchsorted(ts_ms, window_start, side="left")
    latest = ts_ms[hi - 1]
    features = [_feature(view, f.function, f.column, columns, lo, hi) for f in view.features]
    keep = _keep(times, ts_ms, features, hop, length)
    return EntityRecords(
        event_ts_ms=times[keep],
        latest_event_ts_ms=latest[keep],
        values=[_python(column[keep]) for column in features],
    )


def _record_times(ts_ms: Ints, length: int, hop: int, until_ms: int) -> Ints:
    """Distinct event times and the boundaries of non-empty slots up to ``until_ms``."""
    boundaries = np.unique(ts_ms // hop) * hop + length
    boundaries = boundaries[boundaries <= until_ms]
    return np.unique(np.concatenate([ts_ms, boundaries]))


def _keep(
    times: Ints, ts_ms: Ints, features: list[Any], hop: int, length: int
) -> npt.NDArray[np.bool_]:
    """Event times always; a boundary only when its values differ from one ms before."""
    is_event = np.isin(times, ts_ms)
    if is_event.all():
        return is_event
    before = times - 1
    changed = np.zeros(len(times), dtype=bool)
    for column in features:
        previous = _shift_lookup(times, before, column)
        changed |= ~_same(column, previous)
    return is_event | changed


def _shift_lookup(times: Ints, before: Ints, column: Any) -> Any:
    """Values as of ``before`` where those equal the last earlier record's values.

    Between two record times the value cannot change except at a boundary, so the value one
    millisecond before a boundary is the value of the previous record time (or none).
    """
    previous = np.empty(len(times), dtype=object)
    previous[0] = _MISSING
    previous[1:] = column[:-1]
    return previous


_MISSING = object()


def _same(column: Any, previous: Any) -> npt.NDArray[np.bool_]:
    out = np.empty(len(column), dtype=bool)
    for i, (a, b) in enumerate(zip(column, previous, strict=True)):
        out[i] = (a is None and b is None) or (
            a is not None and b is not _MISSING and b is not None and a == b
        )
    return out


def _feature(
    view: FeatureView,
    function: Function,
    column: str | None,
    columns: dict[str, Floats],
    lo: Ints,
    hi: Ints,
) -> Any:
    events = hi - lo
    if function is Function.COUNT and column is None:
        return events.astype(object)
    values = columns[column or ""]
    present = ~np.isnan(values)
    present_prefix = np.concatenate([[0], np.cumsum(present)])
    n = present_prefix[hi] - present_prefix[lo]
    if function is Function.COUNT:
        return n.astype(object)
    if function in (Function.SUM, Function.MEAN):
        sums = np.concatenate([[0.0], np.cumsum(np.where(present, values, 0.0))])
        total = sums[hi] - sums[lo]
        result = total if function is Function.SUM else total / np.maximum(n, 1)
        return np.where(n > 0, result, None)
    if function in (Function.MIN, Function.MAX):
        fill = np.inf if function is Function.MIN else -np.inf
        pick = np.minimum if function is Function.MIN else np.maximum
        table = _SparseTable(np.where(present, values, fill), pick)
        extremes: Any = table.query(lo, hi)
        return np.where(n > 0, extremes, None)
    if function is Function.LAST:
        index = np.where(present, np.arange(len(values)), -1)
        last_present = np.maximum.accumulate(index) if len(index) else index
        at = last_present[np.maximum(hi - 1, 0)]
        ok = (hi > lo) & (at >= lo)
        return np.where(ok, values[np.clip(at, 0, None)], None)
    raise ValueError(f"view {view.name!r}: {function.value} is not vectorized")


class _SparseTable:
    """Range minimum or maximum over [lo, hi) in O(1) per query after O(n log n) set-up."""

    def __init__(self, values: Floats, pick: Any) -> None:
        self.pick = pick
        self.levels = [values]
        width = 1
        while width * 2 <= len(values):
            previous = self.levels[-1]
            self.levels.append(pick(previous[:-width], previous[width:]))
            width *= 2

    def query(self, lo: Ints, hi: Ints) -> Floats:
        span = np.maximum(hi - lo, 1)
        level = np.floor(np.log2(span)).astype(np.int64)
        result = np.empty(len(lo))
        for k in np.unique(level):
            mask = level == k
            table = self.levels[k]
            left = np.clip(lo[mask], 0, len(table) - 1)
            right = np.clip(hi[mask] - (1 << int(k)), 0, len(table) - 1)
            result[mask] = self.pick(table[left], table[right])
        return result


def _python(column: Any) -> list[Any]:
    """Convert numpy scalars to plain Python values, keeping None."""
    values = []
    for value in column:
        if value is not None and hasattr(value, "item"):
            value = value.item()
        values.append(value)
    return values


def sort_events(ts_ms: Ints) -> Ints:
    """Return the stable order of events by time; equal times keep their delivery order."""
    return np.argsort(ts_ms, kind="stable")
