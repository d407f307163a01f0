"""Schema compatibility: what a new reader schema breaks for records written with the old one."""

from __future__ import annotations

from typing import Any

import pytest

from streamfeat.errors import SerializationError
from streamfeat.serialization import check_compatible, require_compatible


def _record(*fields: dict[str, Any], name: str = "Flight", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def _field(name: str, kind: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, **extra}


MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
BASE = _record(_field("carrier", "string"), _field("delay", "int"), _field("at", MILLIS))


def test_same_schema_is_compatible() -> None:
    assert check_compatible(BASE, BASE) == []


def test_added_field_with_default_is_compatible() -> None:
    new = _record(*BASE["fields"], _field("gate", ["null", "string"], default=None))

    assert check_compatible(BASE, new) == []


def test_added_field_without_default_breaks() -> None:
    new = _record(*BASE["fields"], _field("gate", "string"))

    assert check_compatible(BASE, new) == [
        "field 'gate' was added without a default, so records written before cannot be read; "
        "give it a default, such as null with a nullable type"
    ]


def test_removed_field_is_compatible() -> None:
    assert check_compatible(BASE, _record(*BASE["fields"][1:])) == []


def test_type_change_breaks() -> None:
    new = _record(_field("carrier", "long"), *BASE["fields"][1:])

    assert check_compatible(BASE, new) == ["field 'carrier' changed type from string to long"]


def test_promotion_is_compatible_but_narrowing_breaks() -> None:
    wider = _record(BASE["fields"][0], _field("delay", "double"), BASE["fields"][2])

    assert check_compatible(BASE, wider) == []
    assert check_compatible(wider, BASE) == ["field 'delay' changed type from double to int"]


def test_making_a_field_nullable_is_compatible() -> None:
    nullable = _record(BASE["fields"][0], _field("delay", ["null", "int"]), BASE["fields"][2])

    assert check_compatible(BASE, nullable) == []


def test_dropping_null_from_a_union_breaks() -> None:
    nullable = _record(BASE["fields"][0], _field("delay", ["null", "int"]), BASE["fields"][2])

    problems = check_compatible(nullable, BASE)

    assert problems == ["field 'delay' changed type from null to int"]


def test_timestamp_unit_change_breaks() -> None:
    micros = {"type": "long", "logicalType": "timestamp-micros"}
    new = _record(*BASE["fields"][:2], _field("at", micros))

    assert check_compatible(BASE, new) == [
        "field 'at' changed logical type from timestamp-millis to timestamp-micros, "
        "which would misread the times written before"
    ]


def test_renamed_record_breaks_unless_aliased() -> None:
    renamed = _record(*BASE["fields"], name="Departure")
    aliased = _record(*BASE["fields"], name="Departure", aliases=["Flight"])

    assert check_compatible(BASE, renamed) == [
        "the top-level type changed type from record t.Flight to record t.Departure"
    ]
    assert check_compatible(BASE, aliased) == []


def test_field_alias_carries_old_values() -> None:
    new = _record(_field("airline", "string", aliases=["carrier"]), *BASE["fields"][1:])

    assert check_compatible(BASE, new) == []


def test_removed_enum_symbol_breaks_without_default() -> None:
    def with_enum(symbols: list[str], **extra: Any) -> dict[str, Any]:
        return _record(
            _field("origin", {"type": "enum", "name": "Airport", "symbols": symbols, **extra})
        )

    old = with_enum(["JFK", "LGA", "EWR"])

    assert check_compatible(old, with_enum(["JFK", "LGA"])) == [
        "field 'origin' dropped enum symbols EWR without an enum default; "
        "keep them or add a default symbol"
    ]
    assert check_compatible(old, with_enum(["JFK", "LGA", "OTHER"], default="OTHER")) == []


def test_nested_array_path_is_named() -> None:
    leg = {"type": "record", "name": "Leg", "fields": [_field("delay", "int")]}
    changed = {"type": "record", "name": "Leg", "fields": [_field("delay", "string")]}

    problems = check_compatible(
        _record(_field("legs", {"type": "array", "items": leg})),
        _record(_field("legs", {"type": "array", "items": changed})),
    )

    assert problems == ["field 'legs[].delay' changed type from int to string"]


def test_require_compatible_raises_with_every_problem() -> None:
    new = _record(_field("carrier", "long"), *BASE["fields"][1:], _field("gate", "string"))

    with pytest.raises(SerializationError, match="'t.Flight' cannot replace.*'carrier'.*'gate'"):
        require_compatible(BASE, new, "t.Flight")


def test_invalid_schema_raises() -> None:
    with pytest.raises(SerializationError, match="new schema is not a valid Avro schema"):
        check_compatible(BASE, {"type": "no-such-type"})
