"""Archive tables of backfilled records, with the sink's columns, types and metadata.

The sink's ``records_table`` decides the schema: join keys as strings, record times as
``timestamp[ms, tz=UTC]``, ``version`` as int32, counts as int64, sums and statistics as
float64, and ``min``, ``max`` and ``last`` in their source column's type. Where that type is
unknown, the values decide, as they do in the sink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from streamfeat.definitions.models import FeatureView
from streamfeat.errors import SerializationError
from streamfeat.offline.vectorized import ViewRecords
from streamfeat.sink.layout import AVAILABLE_AT, EVENT_TS, LATEST_EVENT_TS, TIMESTAMP_TYPE, VERSION
from streamfeat.sink.table import records_table


def vectorized_table(
    view: FeatureView,
    join_keys: Sequence[str],
    records: ViewRecords,
    entity_keys: Sequence[pa.Array],
    column_types: Mapping[str, pa.DataType],
    available_at_ms: int,
) -> pa.Table:
    """Build the archive table of ``records``.

    ``entity_keys`` contains, per join key, the key's text for each entity code of ``records``.
    ``column_types`` gives the Arrow type of min, max and last features by feature name.
    """
    schema = records_table(view, join_keys, [], column_types).schema
    rows = len(records.event_ts_ms)
    entity = pa.array(records.entity)
    columns: dict[str, pa.Array] = {}
    for key, texts in zip(join_keys, entity_keys, strict=True):
        columns[key] = texts.take(entity)
    columns[EVENT_TS] = _timestamps(records.event_ts_ms)
    columns[LATEST_EVENT_TS] = _timestamps(records.latest_event_ts_ms)
    columns[AVAILABLE_AT] = _timestamps(np.full(rows, available_at_ms, dtype=np.int64))
    columns[VERSION] = pa.array(np.full(rows, view.version, dtype=np.int32))
    for feature, values in zip(view.features, records.values, strict=True):
        target = schema.field(feature.name).type
        columns[feature.name] = _archive_array(view.name, feature.name, values, target)
    return pa.table(columns).replace_schema_metadata(schema.metadata)


def _timestamps(epoch_ms: np.ndarray) -> pa.Array:
    return pa.array(epoch_ms, pa.int64()).cast(TIMESTAMP_TYPE)


def _archive_array(view: str, name: str, values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast a feature's values to its archive type, or to the type its values imply."""
    if pa.types.is_null(target):
        target = _inferred_type(values)
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SerializationError(
            f"feature view {view!r}, feature {name!r}: values do not fit Arrow type {target} "
            f"({error}); check that the feature's function and column match the values"
        ) from error


# NOTE: the sink infers an unknown type per file, so there a file whose values are all null gets
# the null type; here one type serves the whole view. Readers unify both to the same table.
def _inferred_type(values: pa.Array) -> pa.DataType:
    """Return the type the sink gives values of an unknown column (null when all are null)."""
    kind = values.type
    if values.null_count == len(values):
        return pa.null()
    if pa.types.is_integer(kind):
        return pa.int64()
    if pa.types.is_floating(kind):
        return pa.float64()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.string()
    return kind
