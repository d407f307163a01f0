"""Arrow tables of feature records: one column per join key, record times, version and feature.

Feature types follow the definition: counts are int64, sums and statistics float64, and
``min``, ``max`` and ``last`` take the type of the source column (see ``source_types``), or,
where that is unknown, the type of the values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from streamfeat.definitions.models import Feature, FeatureView, Function
from streamfeat.errors import SerializationError
from streamfeat.featurelog.record import FeatureRecord, FeatureValue
from streamfeat.sink.columns import BOOLEAN, DOUBLE, LONG, NULL, STRING, FeatureValues, ViewRows
from streamfeat.sink.layout import (
    AVAILABLE_AT,
    EVENT_TS,
    FEATURES_METADATA,
    JOIN_KEYS_METADATA,
    LATEST_EVENT_TS,
    TIMESTAMP_TYPE,
    VERSION,
    event_date,
)

_DAY_MS = 86_400_000
_EXACT_FLOAT_LIMIT = 2**53
"""Largest integer magnitude a float64 represents exactly; pyarrow rejects larger ints for it."""

_FIXED_TYPES: dict[Function, pa.DataType] = {
    Function.COUNT: pa.int64(),
    Function.DISTINCT_COUNT: pa.int64(),
    Function.SUM: pa.float64(),
    Function.MEAN: pa.float64(),
    Function.VARIANCE: pa.float64(),
    Function.STDDEV: pa.float64(),
    Function.PERCENTILE: pa.float64(),
}


def records_table(
    view: FeatureView,
    join_keys: Sequence[str],
    records: Sequence[FeatureRecord],
    column_types: Mapping[str, pa.DataType],
) -> pa.Table:
    """Build the archive table of ``records``, all of ``view``, in the order given.

    ``column_types`` gives the Arrow type of min, max and last features by feature name.

    Features the definition lists come first. A feature found only in the records (from
    another version of the view) follows in name order, so no value is dropped.
    """
    definitions = {feature.name: feature for feature in view.features}
    extra = sorted({name for record in records for name in record.values} - definitions.keys())
    columns: dict[str, pa.Array] = {}
    for position, key in enumerate(join_keys):
        columns[key] = pa.array(
            [_join_key(record, join_keys)[position] for record in records], pa.string()
        )
    columns[EVENT_TS] = pa.array([r.event_ts_ms for r in records], TIMESTAMP_TYPE)
    columns[LATEST_EVENT_TS] = pa.array([r.latest_event_ts_ms for r in records], TIMESTAMP_TYPE)
    columns[AVAILABLE_AT] = pa.array([r.available_at_ms for r in records], TIMESTAMP_TYPE)
    columns[VERSION] = pa.array([r.version for r in records], pa.int32())
    for name in [*definitions, *extra]:
        values = [record.values.get(name) for record in records]
        data_type = _feature_type(definitions.get(name), column_types.get(name), values)
        columns[name] = _feature_array(view.name, name, data_type, values)
    metadata = {
        JOIN_KEYS_METADATA: json.dumps(list(join_keys)).encode(),
        FEATURES_METADATA: json.dumps([*definitions, *extra]).encode(),
    }
    return pa.table(columns).replace_schema_metadata(metadata)


def rows_tables(
    view: FeatureView,
    join_keys: Sequence[str],
    rows: ViewRows,
    column_types: Mapping[str, pa.DataType],
) -> list[tuple[str, pa.Table]]:
    """Build the archive tables of a view's decoded rows, one per UTC event date.

    Returns (date, table) pairs in date order. Each table keeps the rows' message order and
    has the columns and types ``records_table`` gives the same records.
    """
    # A stable sort by day keeps the message order within each day, so each day's rows are
    # one slice of columns built once for the whole view.
    days = rows.event_ts_ms // _DAY_MS
    order = np.argsort(days, kind="stable")
    days = days[order]
    bounds = np.flatnonzero(np.diff(days)).tolist()
    starts, stops = [0, *(b + 1 for b in bounds)], [*(b + 1 for b in bounds), len(days)]

    columns = _record_columns(join_keys, rows, order)
    names = [*columns, *(feature.name for feature in view.features)]
    inferred = {}
    for feature in view.features:
        values = _take(rows.features[feature.name], order)
        data_type = _declared_type(feature, column_types.get(feature.name))
        if data_type is None:
            inferred[feature.name] = values
        else:
            columns[feature.name] = _values_array(view.name, feature.name, data_type, values)
    metadata = {
        JOIN_KEYS_METADATA: json.dumps(list(join_keys)).encode(),
        FEATURES_METADATA: json.dumps([feature.name for feature in view.features]).encode(),
    }

    tables = []
    for start, stop in zip(starts, stops, strict=True):
        day = {name: array.slice(start, stop - start) for name, array in columns.items()}
        for name, values in inferred.items():
            # Values decide the type per file, as records_table decides it per table.
            day_values = _slice(values, start, stop)
            day[name] = _values_array(view.name, name, _branches_type(day_values), day_values)
        table = pa.table({name: day[name] for name in names}).replace_schema_metadata(metadata)
        tables.append((event_date(int(days[start]) * _DAY_MS), table))
    return tables


def _record_columns(
    join_keys: Sequence[str], rows: ViewRows, order: np.ndarray
) -> dict[str, pa.Array]:
    """Return the join-key, time and version columns of ``rows`` in ``order``."""
    columns: dict[str, pa.Array] = {}
    indices = pa.array(order)
    for key, values in zip(join_keys, rows.entity, strict=True):
        columns[key] = values.take(indices)
    columns[EVENT_TS] = pa.array(rows.event_ts_ms[order], TIMESTAMP_TYPE)
    columns[LATEST_EVENT_TS] = pa.array(rows.latest_event_ts_ms[order], TIMESTAMP_TYPE)
    columns[AVAILABLE_AT] = pa.array(rows.available_at_ms[order], TIMESTAMP_TYPE)
    columns[VERSION] = pa.array(rows.version[order], pa.int32())
    return columns


def _declared_type(feature: Feature, column_type: pa.DataType | None) -> pa.DataType | None:
    """Return the type fixed by the function or the source column, None when values decide."""
    fixed = _FIXED_TYPES.get(feature.function)
    return fixed if fixed is not None else column_type


def _take(values: FeatureValues, order: np.ndarray) -> FeatureValues:
    strings = None if values.strings is None else values.strings.take(pa.array(order))
    return FeatureValues(values.branch[order], values.longs[order], values.doubles[order], strings)


def _slice(values: FeatureValues, start: int, stop: int) -> FeatureValues:
    strings = None if values.strings is None else values.strings.slice(start, stop - start)
    return FeatureValues(
        values.branch[start:stop], values.longs[start:stop], values.doubles[start:stop], strings
    )


_BRANCH_KINDS: dict[int, type] = {LONG: int, DOUBLE: float, STRING: str, BOOLEAN: bool}


def _branches_type(values: FeatureValues) -> pa.DataType | None:
    """Pick an Arrow type from the union branches present, as ``_inferred_type`` does."""
    branches = set(np.unique(values.branch).tolist()) - {NULL}
    return _kinds_type({_BRANCH_KINDS[branch] for branch in branches})


def _values_array(
    view: str, name: str, data_type: pa.DataType | None, values: FeatureValues
) -> pa.Array:
    """Build a feature's column from its branches; uncommon mixes go through ``pa.array``."""
    branch = values.branch
    kinds = set(np.unique(branch).tolist()) - {NULL}
    nulls = branch == NULL
    if data_type == pa.int64() and kinds <= {LONG}:
        return pa.array(values.longs, pa.int64(), mask=nulls)
    if data_type == pa.float64() and kinds <= {LONG, DOUBLE}:
        longs = branch == LONG
        if not (np.abs(values.longs[longs]) > _EXACT_FLOAT_LIMIT).any():
            doubles = np.where(longs, values.longs.astype(np.float64), values.doubles)
            return pa.array(doubles, pa.float64(), mask=nulls)
    if data_type == pa.string() and kinds <= {STRING}:
        if values.strings is None:
            return pa.nulls(len(branch), pa.string())
        return values.strings
    if data_type == pa.bool_() and kinds <= {BOOLEAN}:
        return pa.array(values.longs.astype(np.bool_), pa.bool_(), mask=nulls)
    if data_type == pa.null() and not kinds:
        return pa.nulls(len(branch))
    return _feature_array(view, name, data_type, _python_values(values))


def _python_values(values: FeatureValues) -> list[FeatureValue]:
    """Return the values as ``decode_record`` gives them, for the rare mixes of branches."""
    longs, doubles = values.longs.tolist(), values.doubles.tolist()
    strings = values.strings.to_pylist() if values.strings is not None else []
    converted: list[FeatureValue] = []
    for row, branch in enumerate(values.branch.tolist()):
        if branch == LONG:
            converted.append(longs[row])
        elif branch == DOUBLE:
            converted.append(doubles[row])
        elif branch == STRING:
            converted.append(strings[row])
        elif branch == BOOLEAN:
            converted.append(bool(longs[row]))
        else:
            converted.append(None)
    return converted


def _join_key(record: FeatureRecord, join_keys: Sequence[str]) -> tuple[str, ...]:
    if len(record.entity) != len(join_keys):
        raise SerializationError(
            f"feature view {record.view!r}: a record has {len(record.entity)} entity key "
            f"value(s) but the view's entity has join keys ({', '.join(join_keys)}); "
            "check that the sink runs with the topology the worker used"
        )
    return record.entity


def _feature_type(
    feature: Feature | None, column_type: pa.DataType | None, values: Sequence[FeatureValue]
) -> pa.DataType | None:
    fixed = _FIXED_TYPES.get(feature.function) if feature is not None else None
    if fixed is not None:
        return fixed
    if column_type is not None:
        return column_type
    return _inferred_type(values)


def _feature_array(
    view: str, name: str, data_type: pa.DataType | None, values: list[FeatureValue]
) -> pa.Array:
    if data_type is None:
        kinds = ", ".join(sorted({type(value).__name__ for value in values if value is not None}))
        raise SerializationError(
            f"feature view {view!r}, feature {name!r}: values of types {kinds} cannot share "
            "one archive column; a min, max or last feature holds values of one type"
        )
    try:
        return pa.array(values, data_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
        raise SerializationError(
            f"feature view {view!r}, feature {name!r}: values do not fit Arrow type {data_type} "
            f"({exc}); check that the feature's function and column match the values"
        ) from exc


def _inferred_type(values: Sequence[FeatureValue]) -> pa.DataType | None:
    """Pick an Arrow type from the non-null values; None when they mix types.

    NOTE: a batch whose values are all null gets the Arrow null type. pyarrow readers unify it
    with the other files' type, but DuckDB then needs ``union_by_name=true``; declaring the
    source schema (see ``source_types``) avoids it.
    """
    return _kinds_type({type(value) for value in values if value is not None})


def _kinds_type(kinds: set[type]) -> pa.DataType | None:
    if not kinds:
        return pa.null()
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {str}:
        return pa.string()
    if kinds == {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return None
