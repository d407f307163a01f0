"""Events files as Arrow tables, decoded the way the worker decodes a message.

Time fields (``timestamp-*`` and ``local-timestamp-*``) become int64 epoch milliseconds, as the
decoder gives them. Event times are read as ``EventTimeReader`` reads them, one column at a time:
UTC instants as they are, and wall-clock times in the source's zone with ``fold=0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from streamfeat.definitions.models import Source
from streamfeat.errors import ConfigurationError, SerializationError
from streamfeat.serialization import StoredSchema
from streamfeat.serialization.event_time import EventTimeReader
from streamfeat.serialization.times import local_ms_to_utc_ms, zone_info

Ints = npt.NDArray[np.int64]

DAY_MS = 86_400_000
_UNIT_MS = {"s": (1_000, 1), "ms": (1, 1), "us": (1, 1_000), "ns": (1, 1_000_000)}
"""Per Arrow time unit: (multiplier, floor divisor) that turn its values into milliseconds."""
_CSV_TYPES = {
    "string": pa.string(),
    "enum": pa.string(),
    "int": pa.int64(),
    "long": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}
_ONE_OFFSET, _OFFSET_CHANGES, _UNREADABLE = 0, 1, 2
"""Kinds of wall-clock day: one offset throughout, an offset change, outside the years 1-9999."""
_DENSE_DAYS = 4
"""Distinct days are found with a lookup table while their span is at most this many per row."""


def read_events(path: Path, schema: StoredSchema) -> pa.Table:
    """Read an events file: Parquet keeps its types; CSV columns take the schema's types.

    Empty CSV cells are nulls. A CSV value that does not parse as its field's type is an error.
    """
    if path.suffix == ".parquet":
        return _without_dictionaries(pq.read_table(path))
    if path.suffix != ".csv":
        raise ConfigurationError(
            f"events file {path} is neither .csv nor .parquet; convert it to one"
        )
    options = pcsv.ConvertOptions(
        column_types=_csv_types(schema),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        return pcsv.read_csv(path, convert_options=options)
    except pa.ArrowInvalid as error:
        raise ConfigurationError(
            f"events file {path} has a value that does not fit its field's type in schema "
            f"{schema.name} ({error}); fix the value or the schema"
        ) from error


def _without_dictionaries(table: pa.Table) -> pa.Table:
    """Decode dictionary-encoded columns (pandas categoricals), so checks see their values."""
    for index, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            column = table.column(index).cast(field.type.value_type)
            table = table.set_column(index, field.name, column)
    return table


def decode_time_fields(table: pa.Table, schema: StoredSchema) -> pa.Table:
    """Turn timestamp columns of the schema's time fields into int64 epoch milliseconds.

    Sub-millisecond parts are floored. Integer columns already hold milliseconds and other
    types stay as they are, as the decoder leaves them.
    """
    for name in time_fields(schema):
        if name not in table.column_names:
            continue
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            index = table.column_names.index(name)
            table = table.set_column(index, name, _timestamp_ms(column))
    return table


def time_fields(schema: StoredSchema) -> list[str]:
    """Names of the fields whose type carries a timestamp logical type."""
    return [f["name"] for f in schema.raw.get("fields", []) if _is_time_type(f["type"])]


def event_times_ms(table: pa.Table, source: Source, schema: StoredSchema) -> pa.Array:
    """Event time of every row in UTC epoch milliseconds; null where it is absent or unreadable.

    ``table`` must be decoded (see ``decode_time_fields``).
    """
    reader = EventTimeReader(source, schema)
    column = table.column(source.event_time.field).combine_chunks()
    logical = _logical_type(schema, source.event_time.field)
    if pa.types.is_integer(column.type) and logical is not None:
        values = pc.cast(column, pa.int64())
        if not logical.startswith("local-"):
            return values
        if source.event_time.zone is not None:
            return _local_to_utc(values, source.event_time.zone, reader)
    return _per_distinct_value(column, reader)


def _local_to_utc(wall: pa.Array, zone: str, reader: EventTimeReader) -> pa.Array:
    """Convert wall-clock milliseconds in ``zone`` to UTC, as ``EventTimeReader`` does.

    The offset is looked up once per distinct day. A day whose first and last millisecond have
    the same offset is taken to have it throughout. Days with a change are converted value by
    value with the reader itself.
    """
    valid = np.asarray(wall.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    wall_ms = np.asarray(wall.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    days, row_day = _distinct(wall_ms // DAY_MS)
    tz = zone_info(zone)
    offsets = np.zeros(len(days), dtype=np.int64)
    day_kind = np.full(len(days), _ONE_OFFSET, dtype=np.int8)
    for index, day in enumerate(days.tolist()):
        first_ms, last_ms = day * DAY_MS, day * DAY_MS + DAY_MS - 1
        try:
            first = first_ms - local_ms_to_utc_ms(first_ms, tz)
            last = last_ms - local_ms_to_utc_ms(last_ms, tz)
        except (SerializationError, ValueError, OverflowError):
            day_kind[index] = _UNREADABLE
            continue
        offsets[index] = first
        if first != last:
            day_kind[index] = _OFFSET_CHANGES
    utc_ms = wall_ms - offsets[row_day]
    kind = day_kind[row_day]
    valid &= kind != _UNREADABLE
    # NOTE: in the IANA time zone database (releases 2025b and 2026f checked), any two offset
    # changes of one zone are more than three days apart, so one offset at both ends of a day
    # means no change inside it. A zone that changed twice within a day would be wrong here.
    changing = np.flatnonzero(valid & (kind == _OFFSET_CHANGES))
    if len(changing):
        exact = _per_distinct_value(pa.array(wall_ms[changing]), reader)
        utc_ms[changing] = exact.fill_null(0).to_numpy(zero_copy_only=False)
        valid[changing] = np.asarray(exact.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return pa.array(utc_ms, pa.int64(), mask=~valid)


def _per_distinct_value(column: pa.Array, reader: EventTimeReader) -> pa.Array:
    """Read the event time of each distinct value with the scalar reader."""
    encoded = pc.dictionary_encode(column)
    field = reader.field
    times = [reader.read_ms({field: value}) for value in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(times, pa.int64()), encoded.indices)


def _distinct(values: Ints) -> tuple[Ints, npt.NDArray[np.intp]]:
    """Sorted distinct values and each row's index among them."""
    if len(values) == 0:
        return values, np.zeros(0, dtype=np.intp)
    low, high = int(values.min()), int(values.max())
    if high - low > _DENSE_DAYS * len(values):
        distinct, inverse = np.unique(values, return_inverse=True)
        return distinct, inverse
    present = np.zeros(high - low + 1, dtype=bool)
    present[values - low] = True
    position = np.cumsum(present) - 1
    return np.flatnonzero(present).astype(np.int64) + low, position[values - low]


def _timestamp_ms(column: pa.ChunkedArray) -> pa.Array:
    unit = column.type.unit
    multiplier, divisor = _UNIT_MS[unit]
    combined = column.combine_chunks()
    raw = np.asarray(
        pc.cast(combined, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    millis = raw * multiplier if multiplier != 1 else raw // divisor
    return pa.array(millis, pa.int64(), mask=~np.asarray(combined.is_valid(), dtype=bool))


def _is_time_type(node: Any) -> bool:
    if isinstance(node, list):
        return any(_is_time_type(branch) for branch in node)
    return isinstance(node, dict) and str(node.get("logicalType", "")).endswith(
        ("timestamp-millis", "timestamp-micros")
    )


def _logical_type(schema: StoredSchema, name: str) -> str | None:
    """Return the timestamp logical type of field ``name`` (a nullable union counts), else None."""
    for field in schema.raw.get("fields", []):
        if field.get("name") != name:
            continue
        node = field["type"]
        if isinstance(node, list):
            branches = [branch for branch in node if branch != "null"]
            node = branches[0] if len(branches) == 1 else None
        if isinstance(node, dict) and node.get("type") == "long":
            logical = node.get("logicalType")
            return str(logical) if _is_time_type(node) else None
    return None


def _csv_types(schema: StoredSchema) -> dict[str, pa.DataType]:
    types = {}
    for field in schema.raw.get("fields", []):
        node = field["type"]
        if isinstance(node, list):
            branches = [branch for branch in node if branch != "null"]
            node = branches[0] if len(branches) == 1 else None
        kind = node.get("type") if isinstance(node, dict) else node
        if isinstance(kind, str) and kind in _CSV_TYPES:
            types[field["name"]] = _CSV_TYPES[kind]
    return types
