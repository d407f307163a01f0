"""A fast pre-check of records before encoding, for schemas of primitives, arrays and maps.

fastavro's writer coerces silently (it writes 1.5 into a ``long`` as 1), so records are checked
before writing. ``fastavro.validation.validate`` does that, but it builds an exception with a JSON
message for every union branch it rejects, which cost about 30 us per flight event (measured
with ``schemas/flight.avsc`` on the 2-core development machine). This check compares exact
Python types, so it accepts a subset of what ``validate`` accepts (no subclasses such as numpy
scalars), and callers run ``validate`` only when it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], bool]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class _Types:
    """Exact Python types a primitive (or a union of primitives) accepts, with the int range."""

    types: frozenset[type]
    low: int | None
    high: int | None
    branches: Mapping[str, _Types] | None = None
    """Union branches by name, for fastavro's tuple notation ``(branch name, value)``."""

    def accepts(self, value: Any) -> bool:
        kind = type(value)
        if kind not in self.types:
            if kind is tuple and self.branches is not None and len(value) == 2:
                branch = self.branches.get(value[0])
                return branch is not None and branch.accepts(value[1])
            return False
        if kind is int and self.low is not None and self.high is not None:
            return bool(self.low <= value <= self.high)
        return True


_PRIMITIVES: dict[str, _Types] = {
    "null": _Types(frozenset({type(None)}), None, None),
    "boolean": _Types(frozenset({bool}), None, None),
    "int": _Types(frozenset({int}), *_INT32),
    "long": _Types(frozenset({int}), *_INT64),
    "float": _Types(frozenset({int, float}), None, None),
    "double": _Types(frozenset({int, float}), None, None),
    "string": _Types(frozenset({str}), None, None),
}


def build_check(schema: Any) -> Check | None:
    """Return a check for data of a fastavro-parsed record schema, or None when it cannot.

    Top-level records of primitives, arrays, maps and unions of primitives are covered; a
    schema with bytes, enums, fixed or nested records is left to ``validate``.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields: list[tuple[str, _Types | Check, bool]] = []
    for field in schema["fields"]:
        check = _node(field["type"])
        if check is None:
            return None
        fields.append((field["name"], check, "default" in field))
    return _record_check(fields)


def _record_check(fields: list[tuple[str, _Types | Check, bool]]) -> Check:
    def check_record(record: Any) -> bool:
        if not isinstance(record, Mapping):
            return False
        for name, check, has_default in fields:
            if name not in record:
                if not has_default:
                    return False
            elif not _passes(check, record[name]):
                return False
        return True

    return check_record


def _passes(check: _Types | Check, value: Any) -> bool:
    return check.accepts(value) if isinstance(check, _Types) else check(value)


def _primitive_name(schema: Any) -> str | None:
    name = schema if isinstance(schema, str) else schema.get("type")
    return name if isinstance(name, str) and name in _PRIMITIVES else None


def _node(schema: Any) -> _Types | Check | None:
    if isinstance(schema, list):
        return _union(schema)
    name = _primitive_name(schema)
    if name is not None:
        return _PRIMITIVES[name]
    if isinstance(schema, dict) and schema.get("type") == "array":
        items = _node(schema["items"])
        return None if items is None else _array(items)
    if isinstance(schema, dict) and schema.get("type") == "map":
        values = _node(schema["values"])
        return None if values is None else _map(values)
    return None


def _union(branches: list[Any]) -> _Types | None:
    names = [_primitive_name(branch) for branch in branches]
    if None in names:
        return None
    parts = [_PRIMITIVES[name] for name in names if name is not None]
    int_ranges = [(p.low, p.high) for p in parts if int in p.types]
    bounded = all(low is not None for low, _ in int_ranges)
    return _Types(
        frozenset().union(*(p.types for p in parts)),
        min((low for low, _ in int_ranges if low is not None), default=None) if bounded else None,
        max((high for _, high in int_ranges if high is not None), default=None)
        if bounded
        else None,
        {name: _PRIMITIVES[name] for name in names if name is not None},
    )


def _array(items: _Types | Check) -> Check:
    return lambda values: type(values) is list and all(_passes(items, value) for value in values)


def _map(values: _Types | Check) -> Check:
    return lambda mapping: (
        type(mapping) is dict
        and all(type(key) is str and _passes(values, value) for key, value in mapping.items())
    )
