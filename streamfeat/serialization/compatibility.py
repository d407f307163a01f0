"""Schema compatibility: can a new reader schema read every record written with the old one?

A source schema changes while old messages still sit in the topic, so the change must keep them
readable (Avro's backward compatibility). ``check_compatible`` lists what would break, following
Avro's schema resolution rules, plus one rule Avro lacks: a timestamp field must keep its logical
type, because millis read as micros (or UTC read as wall clock) decode without error to wrong times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException

from streamfeat.errors import SerializationError
from streamfeat.serialization._logical import timestamp_type

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def check_compatible(old_reader: Any, new_reader: Any) -> list[str]:
    """List why ``new_reader`` cannot read data written with ``old_reader``; empty when it can.

    Both are Avro schemas as JSON-like objects (parsed or not). Each problem is one sentence
    naming the field path, such as ``field 'legs[].dep_delay' changed type from double to long``.
    """
    old_parsed = _parse(old_reader, "old")
    new_parsed = _parse(new_reader, "new")
    checker = _Checker(old_parsed["__named_schemas"], new_parsed["__named_schemas"])
    checker.check(old_parsed, new_parsed, "")
    return checker.problems


def require_compatible(old_reader: Any, new_reader: Any, name: str) -> None:
    """Raise SerializationError listing every problem when the change of ``name`` breaks reading."""
    problems = check_compatible(old_reader, new_reader)
    if problems:
        raise SerializationError(
            f"schema {name!r} cannot replace its previous version, because records written before "
            f"would not be readable: {'; '.join(problems)}; keep the old field types and give new "
            "fields a default"
        )


def _parse(schema: Any, which: str) -> dict[str, Any]:
    try:
        parsed = parse_schema(schema, named_schemas={})
    except (SchemaParseException, ValueError, TypeError, KeyError) as error:
        raise SerializationError(
            f"the {which} schema is not a valid Avro schema: {error}"
        ) from None
    if not isinstance(parsed, dict):
        # A bare union or name: wrap it so the walk starts from a dict with the names table.
        parsed = {"type": parsed, "__named_schemas": {}}
    return parsed


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "union [" + ", ".join(_describe(branch) for branch in schema) + "]"
    if isinstance(schema, str):
        return schema
    logical = schema.get("logicalType")
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {schema['name']}"
    if isinstance(kind, (dict, list)):
        return _describe(kind)
    return f"{kind} ({logical})" if logical else str(kind)


def _where(path: str) -> str:
    return f"field {path!r}" if path else "the top-level type"


class _Checker:
    def __init__(self, old_names: Mapping[str, Any], new_names: Mapping[str, Any]) -> None:
        self._old_names = old_names
        self._new_names = new_names
        self._seen: set[tuple[str, str]] = set()
        self.problems: list[str] = []

    def check(self, old: Any, new: Any, path: str) -> None:
        old = self._resolve(old, self._old_names)
        new = self._resolve(new, self._new_names)
        if isinstance(new, list):
            self._into_union(old, new, path)
        elif isinstance(old, list):
            for branch in old:
                self.check(branch, new, path)
        else:
            self._same_shape(old, new, path)

    def fits(self, old: Any, new: Any, path: str) -> bool:
        """Tell whether ``old`` resolves into ``new`` without recording problems."""
        trial = _Checker(self._old_names, self._new_names)
        trial._seen = set(self._seen)
        trial.check(old, new, path)
        return not trial.problems

    def _resolve(self, schema: Any, names: Mapping[str, Any]) -> Any:
        while isinstance(schema, str) and schema in names:
            schema = names[schema]
        while isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
            schema = schema["type"]
        if isinstance(schema, str):
            return {"type": schema}
        return schema

    def _into_union(self, old: Any, new: list[Any], path: str) -> None:
        old_branches = old if isinstance(old, list) else [old]
        for branch in old_branches:
            if not any(self.fits(branch, candidate, path) for candidate in new):
                self.problems.append(
                    f"{_where(path)}: values of type {_describe(branch)} written before match "
                    f"no branch of the new {_describe(new)}"
                )

    def _same_shape(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_kind, new_kind = old["type"], new["type"]
        if old_kind in _PRIMITIVES and new_kind in _PRIMITIVES:
            self._primitive(old, new, path)
        elif old_kind != new_kind:
            self._changed(old, new, path)
        elif old_kind == "record":
            self._record(old, new, path)
        elif old_kind == "enum":
            self._enum(old, new, path)
        elif old_kind == "array":
            self.check(old["items"], new["items"], f"{path}[]")
        elif old_kind == "map":
            self.check(old["values"], new["values"], f"{path}{{}}")
        elif old_kind == "fixed" and (old["size"] != new["size"] or not _same_name(old, new)):
            self._changed(old, new, path)

    def _primitive(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_kind, new_kind = old["type"], new["type"]
        if old_kind != new_kind and new_kind not in _PROMOTIONS.get(old_kind, ()):
            self._changed(old, new, path)
            return
        old_logical, new_logical = timestamp_type(old), timestamp_type(new)
        if old_logical != new_logical:
            self.problems.append(
                f"{_where(path)} changed logical type from {old_logical or 'none'} to "
                f"{new_logical or 'none'}, which would misread the times written before"
            )

    def _changed(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        self.problems.append(
            f"{_where(path)} changed type from {_describe(old)} to {_describe(new)}"
        )

    def _record(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        if not _same_name(old, new):
            self._changed(old, new, path)
            return
        pair = (old["name"], new["name"])
        if pair in self._seen:
            return
        self._seen.add(pair)
        old_fields = {field["name"]: field for field in old["fields"]}
        prefix = f"{path}." if path else ""
        for field in new["fields"]:
            names = [field["name"], *field.get("aliases", ())]
            previous = next((old_fields[n] for n in names if n in old_fields), None)
            field_path = prefix + field["name"]
            if previous is not None:
                self.check(previous["type"], field["type"], field_path)
            elif "default" not in field:
                self.problems.append(
                    f"field {field_path!r} was added without a default, so records written "
                    "before cannot be read; give it a default, such as null with a nullable type"
                )

    def _enum(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        if not _same_name(old, new):
            self._changed(old, new, path)
            return
        removed = [s for s in old["symbols"] if s not in new["symbols"]]
        if removed and "default" not in new:
            self.problems.append(
                f"{_where(path)} dropped enum symbols {', '.join(removed)} without an enum "
                "default; keep them or add a default symbol"
            )


def _same_name(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old_name = old["name"]
    aliases = {_qualify(alias, new["name"]) for alias in new.get("aliases", ())}
    return bool(old_name == new["name"] or old_name in aliases)


def _qualify(alias: str, full_name: str) -> str:
    namespace = full_name.rpartition(".")[0]
    return alias if "." in alias or not namespace else f"{namespace}.{alias}"
