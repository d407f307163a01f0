"""Arrow tables of feature records: one column per join key, record times, version and feature.

Feature types follow the definition: counts are int64, sums and statistics float64, and
``min``, ``max`` and ``last`` take the type of the source column (see ``source_types``), or,
where that is unknown, the type of the values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pyarrow as pa

from streamfeat.definitions.models import Feature, FeatureView, Function
from streamfeat.errors import SerializationError
from streamfeat.featurelog.record import FeatureRecord, FeatureValue
from streamfeat.sink.layout import (
    AVAILABLE_AT,
    EVENT_TS,
    FEATURES_METADATA,
    JOIN_KEYS_METADATA,
    LATEST_EVENT_TS,
    TIMESTAMP_TYPE,
    VERSION,
)

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
    kinds = {type(value) for value in values if value is not None}
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
