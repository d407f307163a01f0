"""Event checks over whole columns: the verdicts of ``EventChecker`` for a table of events.

Every row gets the reason that ``EventChecker.check`` gives the same event, with the same
precedence: ``missing_key`` (no view has its entity key), then ``out_of_range``, ``not_finite``
and ``constraint``. Duplicates and lateness depend on the partition's state and are judged by
the caller afterwards, as in the worker.

Columns of the common Arrow types (strings, integers, floats) are checked with Arrow compute
kernels. Other types are checked by calling the scalar rule once per distinct value, so their
verdicts follow Python's comparisons exactly, as the worker's do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from streamfeat.definitions.models import Source
from streamfeat.quality.checks import EventChecker
from streamfeat.quality.reasons import Reason

Mask = npt.NDArray[np.bool_]
Column: TypeAlias = pa.Array | pa.ChunkedArray

REASONS = tuple(Reason)
"""Reason codes: a row's code is the index of its reason here; a lower code takes precedence."""
ACCEPTED = len(REASONS)
"""Code of a row that passed every check."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class ColumnVerdicts:
    """Outcome of the event-level checks for each row of a table.

    ``reasons`` contains a code per row: an index into ``REASONS``, or ``ACCEPTED``. ``has_key``
    marks, per view, the rows that carry the view's entity key.
    """

    reasons: npt.NDArray[np.int8]
    has_key: dict[str, Mask]


class ColumnChecker:
    """Applies the event-level checks of one source to every row of a table at once."""

    def __init__(self, source: Source, view_join_keys: Mapping[str, Sequence[str]]) -> None:
        self.scalar = EventChecker(source, view_join_keys)
        self.view_join_keys = dict(view_join_keys)

    def check(self, table: pa.Table, event_ms: pa.Array, processing_ms: int) -> ColumnVerdicts:
        """Judge every row of ``table``, whose event times are ``event_ms`` (null when absent).

        Time fields in ``table`` must already be epoch milliseconds where the decoder would
        give them so, because ranges and finiteness apply to the decoded values.
        """
        has_key = {view: _has_key(table, keys) for view, keys in self.view_join_keys.items()}
        no_key = ~np.logical_or.reduce(list(has_key.values()))
        reasons = np.full(table.num_rows, ACCEPTED, dtype=np.int8)
        # Assigned from the lowest precedence up, so that the first reason of the order wins.
        reasons[self._constraint_failures(table)] = REASONS.index(Reason.CONSTRAINT)
        reasons[_not_finite(table)] = REASONS.index(Reason.NOT_FINITE)
        reasons[self._out_of_range(event_ms, processing_ms)] = REASONS.index(Reason.OUT_OF_RANGE)
        reasons[no_key] = REASONS.index(Reason.MISSING_KEY)
        return ColumnVerdicts(reasons, has_key)

    def _out_of_range(self, event_ms: pa.Array, processing_ms: int) -> Mask:
        scalar = self.scalar
        end_ms = scalar.range_end_ms
        if end_ms is None:
            end_ms = processing_ms + scalar.slack_ms
        inside = pc.and_(
            pc.greater_equal(event_ms, scalar.range_start_ms),
            pc.less_equal(event_ms, end_ms),
        )
        return ~_true(inside)

    def _constraint_failures(self, table: pa.Table) -> Mask:
        constraints = self.scalar.constraints
        failed = np.zeros(table.num_rows, dtype=bool)
        for name in constraints.required:
            column = _column(table, name)
            failed |= np.ones(table.num_rows, bool) if column is None else _true(column.is_null())
        for name, bounds in constraints.ranges.items():
            column = _column(table, name)
            if column is not None:
                failed |= _outside(column, bounds.min, bounds.max)
        for name, allowed in constraints.allowed_values.items():
            column = _column(table, name)
            if column is not None:
                failed |= _not_allowed(column, allowed)
        for name, limit in constraints.max_length.items():
            column = _column(table, name)
            if column is not None:
                failed |= _too_long(column, limit)
        return failed


def key_present(column: Column) -> Mask:
    """Rows whose join-key value is neither null nor empty (``"0"`` and ``0`` are keys)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return _true(pc.greater(pc.utf8_length(column), 0))
    if pa.types.is_integer(column.type):
        return _true(column.is_valid())
    return per_distinct_value(column, lambda value: value is not None and str(value) != "")


def key_text(column: Column) -> pa.ChunkedArray | pa.Array:
    """Convert join-key values to the strings of an entity key (``str`` of the decoded value)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.cast(column, pa.string())
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.string())
    encoded = pc.dictionary_encode(_combined(column))
    texts = [None if v is None else str(v) for v in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(texts, pa.string()), encoded.indices)


def per_distinct_value(column: Column, predicate: Callable[[Any], bool]) -> Mask:
    """Evaluate ``predicate`` once per distinct value (nulls as None) and map it to every row."""
    array = _combined(column)
    try:
        encoded = pc.dictionary_encode(array)
    except pa.ArrowNotImplementedError:
        return np.array([predicate(value) for value in array.to_pylist()], dtype=bool)
    verdicts = np.array([predicate(v) for v in encoded.dictionary.to_pylist()], dtype=bool)
    indices = encoded.indices
    result = np.full(len(array), predicate(None), dtype=bool)
    valid = _true(indices.is_valid())
    result[valid] = verdicts[indices.to_numpy(zero_copy_only=False)[valid].astype(np.int64)]
    return result


def _not_finite(table: pa.Table) -> Mask:
    """Rows with NaN or an infinity in any floating-point column."""
    failed = np.zeros(table.num_rows, dtype=bool)
    for column in table.columns:
        if pa.types.is_floating(column.type):
            failed |= _true(pc.invert(pc.is_finite(column)))
    return failed


def _outside(column: Column, low: float | None, high: float | None) -> Mask:
    """Rows whose value is below ``low`` or above ``high``; nulls are never outside."""
    kind = column.type
    if pa.types.is_integer(kind):
        return _int_below(column, low) | _int_above(column, high)
    if pa.types.is_floating(kind):
        failed = np.zeros(len(column), dtype=bool)
        if low is not None:
            failed |= _true(pc.less(column, low))
        if high is not None:
            failed |= _true(pc.greater(column, high))
        return failed
    return per_distinct_value(
        column,
        lambda value: (
            value is not None
            and ((low is not None and value < low) or (high is not None and value > high))
        ),
    )


def _int_below(column: Column, low: float | None) -> Mask:
    """Integer rows below a float bound, compared exactly: ``v < low`` iff ``v < ceil(low)``."""
    if low is None or low == -math.inf:
        return np.zeros(len(column), dtype=bool)
    if low == math.inf:
        return _true(column.is_valid())
    bound = math.ceil(low)
    if bound > _INT64_MAX:
        return _true(column.is_valid())
    if bound <= _INT64_MIN:
        return np.zeros(len(column), dtype=bool)
    return _true(pc.less(pc.cast(column, pa.int64()), bound))


def _int_above(column: Column, high: float | None) -> Mask:
    """Integer rows above a float bound: ``v > high`` iff ``v > floor(high)``."""
    if high is None or high == math.inf:
        return np.zeros(len(column), dtype=bool)
    if high == -math.inf:
        return _true(column.is_valid())
    bound = math.floor(high)
    if bound < _INT64_MIN:
        return _true(column.is_valid())
    if bound >= _INT64_MAX:
        return np.zeros(len(column), dtype=bool)
    return _true(pc.greater(pc.cast(column, pa.int64()), bound))


def _not_allowed(column: Column, allowed: Sequence[str | int]) -> Mask:
    """Rows with a value that equals none of ``allowed``; nulls are allowed."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        members = pa.array([a for a in allowed if isinstance(a, str)], pa.string())
    elif pa.types.is_integer(kind):
        members = pa.array([int(a) for a in allowed if isinstance(a, int)], pa.int64())
        column = pc.cast(column, pa.int64())
    else:
        return per_distinct_value(column, lambda value: value is not None and value not in allowed)
    return _true(pc.and_(column.is_valid(), pc.invert(pc.is_in(column, value_set=members))))


def _too_long(column: Column, limit: int) -> Mask:
    """Rows whose value is longer than ``limit`` (characters for text, bytes for binary)."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _true(pc.greater(pc.utf8_length(column), limit))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return _true(pc.greater(pc.binary_length(column), limit))
    return per_distinct_value(column, lambda value: value is not None and len(value) > limit)


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | None:
    """Return the column ``name``, or None when the table has none (the event lacks the field)."""
    if name not in table.column_names:
        return None
    return table.column(name)


def _has_key(table: pa.Table, join_keys: Sequence[str]) -> Mask:
    """Rows that carry every join key; a key column the table lacks is null in every row."""
    present = np.ones(table.num_rows, dtype=bool)
    for name in join_keys:
        column = _column(table, name)
        if column is None:
            return np.zeros(table.num_rows, dtype=bool)
        present &= key_present(column)
    return present


def _true(condition: Column) -> Mask:
    """Convert a boolean Arrow result to a numpy mask, with null as False."""
    filled = pc.fill_null(condition, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks() if filled.num_chunks != 1 else filled.chunk(0)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _combined(column: Column) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column
