"""Timestamp logical types: which schema nodes carry them and how their values convert.

fastavro turns timestamp logical types into ``datetime`` objects by default. streamfeat keeps
times as int epoch milliseconds instead, which is exact and builds no object per value. So
schemas are read and written with the timestamp ``logicalType`` removed, and the values are
converted here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

TIMESTAMP_MILLIS = "timestamp-millis"
TIMESTAMP_MICROS = "timestamp-micros"
LOCAL_TIMESTAMP_MILLIS = "local-timestamp-millis"
LOCAL_TIMESTAMP_MICROS = "local-timestamp-micros"

INSTANT_TYPES = frozenset({TIMESTAMP_MILLIS, TIMESTAMP_MICROS})
"""Logical types whose values are UTC instants."""

LOCAL_TYPES = frozenset({LOCAL_TIMESTAMP_MILLIS, LOCAL_TIMESTAMP_MICROS})
"""Logical types whose values are wall-clock times of an unstated zone."""

TIMESTAMP_TYPES = INSTANT_TYPES | LOCAL_TYPES
MICROS_TYPES = frozenset({TIMESTAMP_MICROS, LOCAL_TIMESTAMP_MICROS})

_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()

Converter = Callable[[Any], Any]
LeafFactory = Callable[[str, str], Converter | None]
"""Given a timestamp logical type and the field path, return the value converter, if any."""


def strip_timestamp_types(schema: Any) -> Any:
    """Return a copy of a raw (JSON) schema without timestamp ``logicalType`` annotations."""
    if isinstance(schema, list):
        return [strip_timestamp_types(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    stripped = {key: strip_timestamp_types(value) for key, value in schema.items()}
    if stripped.get("logicalType") in TIMESTAMP_TYPES:
        del stripped["logicalType"]
    return stripped


def timestamp_type(schema: Any) -> str | None:
    """Return the timestamp logical type of a schema node, or None when it has none."""
    if isinstance(schema, dict) and schema.get("type") == "long":
        logical = schema.get("logicalType")
        if logical in TIMESTAMP_TYPES:
            return str(logical)
    return None


def wall_ms(moment: datetime) -> int:
    """Return a datetime's wall-clock reading as epoch milliseconds, ignoring its zone (floored)."""
    return wall_us(moment) // 1_000


def wall_us(moment: datetime) -> int:
    """Return a datetime's wall-clock reading as epoch microseconds, ignoring its zone."""
    days = moment.toordinal() - _EPOCH_ORDINAL
    seconds = moment.hour * 3_600 + moment.minute * 60 + moment.second
    return (days * 86_400 + seconds) * 1_000_000 + moment.microsecond


def instant_us(moment: datetime) -> int:
    """Return an aware datetime as exact epoch microseconds, with integer arithmetic only."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"{moment.isoformat()} has no time zone")
    offset_us = (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds
    return wall_us(moment) - offset_us


def instant_ms(moment: datetime) -> int:
    """Return an aware datetime as epoch milliseconds (sub-millisecond parts floored)."""
    return instant_us(moment) // 1_000


def datetime_from_ms(epoch_ms: int) -> datetime:
    """Return epoch milliseconds as an aware UTC datetime (years 0001..9999 only)."""
    days, rest_ms = divmod(epoch_ms, 86_400_000)
    midnight = datetime.fromordinal(_EPOCH_ORDINAL + days).replace(tzinfo=UTC)
    seconds, millis = divmod(rest_ms, 1_000)
    return midnight.replace(
        hour=seconds // 3_600,
        minute=seconds // 60 % 60,
        second=seconds % 60,
        microsecond=millis * 1_000,
    )


def build_converter(
    schema: Any, names: Mapping[str, Any], leaf: LeafFactory, path: str = ""
) -> Converter | None:
    """Build a function that converts every timestamp value inside data of ``schema``.

    ``schema`` is a fastavro-parsed schema and ``names`` its named types. Returns None when
    nothing in the schema needs converting, so callers skip the walk for such data.
    """
    return _Builder(names, leaf).build(schema, path)


class _Builder:
    def __init__(self, names: Mapping[str, Any], leaf: LeafFactory) -> None:
        self._names = names
        self._leaf = leaf
        self._visiting: set[str] = set()

    def build(self, schema: Any, path: str) -> Converter | None:
        if isinstance(schema, str):
            return self._named(schema, path)
        if isinstance(schema, list):
            return self._union(schema, path)
        logical = timestamp_type(schema)
        if logical is not None:
            return self._leaf(logical, path)
        kind = schema.get("type")
        if kind == "record":
            return self._record(schema, path)
        if kind == "array":
            return _each(self.build(schema["items"], f"{path}[]"))
        if kind == "map":
            return _each_value(self.build(schema["values"], f"{path}{{}}"))
        if isinstance(kind, (dict, list)) or kind in self._names:
            return self.build(kind, path)
        return None

    def _named(self, name: str, path: str) -> Converter | None:
        if name not in self._names or name in self._visiting:
            # NOTE: a recursive type is not walked a second time, so a timestamp nested inside
            # its recursion (a linked list of timestamps) is left unconverted.
            return None
        self._visiting.add(name)
        try:
            return self.build(self._names[name], path)
        finally:
            self._visiting.discard(name)

    def _record(self, schema: Mapping[str, Any], path: str) -> Converter | None:
        prefix = f"{path}." if path else ""
        fields = []
        for field in schema["fields"]:
            converter = self.build(field["type"], prefix + field["name"])
            if converter is not None:
                fields.append((field["name"], converter))
        if not fields:
            return None
        return _record_converter(tuple(fields))

    def _union(self, branches: list[Any], path: str) -> Converter | None:
        # A value in a union is matched to a converting branch by its Python type. So in a union
        # with a timestamp and another int-like branch, every int is taken as the timestamp.
        by_type: dict[type, Converter] = {}
        for branch in branches:
            converter = self.build(branch, path)
            if converter is not None:
                for python_type in _python_types(branch, self._names):
                    by_type.setdefault(python_type, converter)
        if not by_type:
            return None
        return _union_converter(by_type)


def _python_types(schema: Any, names: Mapping[str, Any]) -> tuple[type, ...]:
    if isinstance(schema, str) and schema in names:
        schema = names[schema]
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if kind == "long":
        return (int, datetime)
    if kind in ("record", "map"):
        return (dict,)
    if kind == "array":
        return (list, tuple)
    return ()


def _record_converter(fields: tuple[tuple[str, Converter], ...]) -> Converter:
    def convert(record: Any) -> Any:
        if not isinstance(record, dict):
            return record
        converted = dict(record)
        for name, converter in fields:
            if name in converted:
                converted[name] = converter(converted[name])
        return converted

    return convert


def _union_converter(by_type: dict[type, Converter]) -> Converter:
    def convert(value: Any) -> Any:
        converter = by_type.get(type(value))
        if converter is None and isinstance(value, datetime):
            converter = by_type.get(datetime)
        return value if converter is None else converter(value)

    return convert


def _each(item: Converter | None) -> Converter | None:
    if item is None:
        return None
    return lambda values: values if values is None else [item(value) for value in values]


def _each_value(value_converter: Converter | None) -> Converter | None:
    if value_converter is None:
        return None
    return lambda mapping: (
        mapping if mapping is None else {key: value_converter(v) for key, v in mapping.items()}
    )
