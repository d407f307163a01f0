"""Arrow types of ``min``, ``max`` and ``last`` features, read from the source's Avro schema.

These features take the type of their source column. Reading it from the schema, rather than
from the values of one batch, gives every archive file of a view the same column types, even
when a batch contains only nulls. DuckDB needs equal types to read the files as one table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from streamfeat.definitions.models import Function, Topology
from streamfeat.errors import SerializationError
from streamfeat.serialization import SchemaStore

logger = logging.getLogger(__name__)

SourceTypes = dict[tuple[str, str], pa.DataType]
"""Arrow type by (feature view, feature) for the features whose type comes from a column."""

_TYPED_BY_COLUMN = {Function.MIN, Function.MAX, Function.LAST}

# NOTE: timestamp columns are stored as int64 epoch milliseconds, as the records carry them,
# not as Arrow timestamps.
_AVRO_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "long": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "enum": pa.string(),
    "boolean": pa.bool_(),
}


def load_source_types(topology: Topology, schemas_dir: Path) -> SourceTypes:
    """Map each min, max and last feature to the Arrow type of its column in ``schemas_dir``.

    ``schemas_dir`` is the topology's schemas folder (``schemas_dir`` resolved against the
    topology file). A feature whose schema or column cannot be read is left out; the archive
    then takes its type from the values.
    """
    try:
        store = SchemaStore.from_dir(schemas_dir)
    except SerializationError as exc:
        logger.info("sink_source_schemas_unreadable path=%s error=%s", schemas_dir, exc)
        return {}
    types: SourceTypes = {}
    for view in topology.feature_views:
        source = topology.source(view.source)
        fields = _schema_fields(store, source.schema_file)
        for feature in view.features:
            if feature.function not in _TYPED_BY_COLUMN or feature.column is None:
                continue
            data_type = _arrow_type(fields.get(feature.column))
            if data_type is None:
                logger.info(
                    "sink_column_type_unknown feature_view=%s feature=%s column=%s",
                    view.name,
                    feature.name,
                    feature.column,
                )
                continue
            types[(view.name, feature.name)] = data_type
    return types


def _schema_fields(store: SchemaStore, file_name: str) -> dict[str, Any]:
    """Return the field types of a schema file, with named types written out in place."""
    try:
        schema = store.for_file(file_name)
    except SerializationError as exc:
        logger.info("sink_source_schema_unreadable file=%s error=%s", file_name, exc)
        return {}
    named = schema.parsed.get("__named_schemas", {})
    return {
        field["name"]: named.get(field["type"], field["type"])
        if isinstance(field["type"], str)
        else field["type"]
        for field in schema.parsed["fields"]
    }


def _arrow_type(avro_type: Any) -> pa.DataType | None:
    """Return the Arrow type of an Avro field type, or None for types a feature cannot hold."""
    if isinstance(avro_type, list):
        branches = [branch for branch in avro_type if branch != "null"]
        return _arrow_type(branches[0]) if len(branches) == 1 else None
    if isinstance(avro_type, dict):
        return _AVRO_TYPES.get(str(avro_type.get("type")))
    if isinstance(avro_type, str):
        return _AVRO_TYPES.get(avro_type)
    return None
