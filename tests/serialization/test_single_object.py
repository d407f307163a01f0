"""Single-object encoding: framing, timestamps as epoch milliseconds, decode failures."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import to_parsing_canonical_form

from streamfeat.errors import SerializationError
from streamfeat.serialization import DecodeError, SchemaStore, StoredSchema

EVENT = {
    "type": "record",
    "name": "Event",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {
            "name": "seen",
            "type": ["null", {"type": "long", "logicalType": "local-timestamp-micros"}],
            "default": None,
        },
        {"name": "amount", "type": ["null", "double"], "default": None},
    ],
}


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification defines it, written out for an independent check."""
    empty = 0xC15D213AA4D7A795
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ (empty & -(value & 1))
        table.append(value)
    result = empty
    for byte in data:
        result = (result >> 8) ^ table[(result ^ byte) & 0xFF]
    return result


def _store(*schemas: Any, previous: tuple[Any, ...] = ()) -> SchemaStore:
    return SchemaStore(
        [StoredSchema.from_json(s, f"schema{i}.avsc") for i, s in enumerate(schemas)],
        [StoredSchema.from_json(s, f"previous/{i}.avsc") for i, s in enumerate(previous)],
    )


def _event(**changes: Any) -> dict[str, Any]:
    return {"id": "e1", "at": 0, "at_us": 0, "seen": None, "amount": None, **changes}


@pytest.fixture
def store() -> SchemaStore:
    return _store(EVENT)


def test_header_is_marker_and_little_endian_crc64(store: SchemaStore) -> None:
    data = store.encode("test.Event", _event())
    canonical = to_parsing_canonical_form(store.schema("test.Event").parsed)

    assert data[:2] == b"\xc3\x01"
    assert int.from_bytes(data[2:10], "little") == _crc64_avro(canonical.encode())


def test_round_trip_keeps_values(store: SchemaStore) -> None:
    record = _event(at=1_357_017_300_000, at_us=-5, seen=7, amount=2.5)

    decoded = store.decoder("test.Event").decode(store.encode("test.Event", record))

    assert decoded == record


def test_aware_datetime_encodes_exactly(store: SchemaStore) -> None:
    moment = datetime(2107, 4, 1, 0, 0, 0, 445_000, tzinfo=UTC)
    decoder = store.decoder("test.Event")

    decoded = decoder.decode(store.encode("test.Event", _event(at=moment, at_us=moment)))

    assert decoded["at"] == 4_331_059_200_445
    assert decoded["at_us"] == 4_331_059_200_445


def test_datetime_with_offset_encodes_as_instant(store: SchemaStore) -> None:
    moment = datetime(2013, 1, 1, 0, 15, tzinfo=timezone(timedelta(hours=-5)))

    decoded = store.decoder("test.Event").decode(store.encode("test.Event", _event(at=moment)))

    assert decoded["at"] == 1_357_017_300_000


def test_micros_floor_toward_minus_infinity(store: SchemaStore) -> None:
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    data = store.encode("test.Event", _event(at_us=before_epoch))

    decoded = store.decoder("test.Event").decode(data)

    assert decoded["at_us"] == -1
    assert type(decoded["at_us"]) is int


def test_local_micros_take_naive_datetime_wall_clock(store: SchemaStore) -> None:
    wall = datetime(2013, 3, 10, 2, 30, 0, 1_999)

    decoded = store.decoder("test.Event").decode(store.encode("test.Event", _event(seen=wall)))

    assert decoded["seen"] == 1_362_882_600_001


def test_local_field_rejects_aware_datetime(store: SchemaStore) -> None:
    with pytest.raises(SerializationError, match="'seen'.*aware datetime"):
        store.encode("test.Event", _event(seen=datetime(2013, 1, 1, tzinfo=UTC)))


@pytest.fixture
def host_zone() -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("host_zone")
def test_naive_datetime_for_instant_raises_whatever_host_zone(store: SchemaStore) -> None:
    with pytest.raises(SerializationError, match="field 'at' .*naive datetime 2013-01-01T00:00:00"):
        store.encode("test.Event", _event(at=datetime(2013, 1, 1)))


def test_wrong_type_names_the_field(store: SchemaStore) -> None:
    with pytest.raises(SerializationError, match=r"field test\.Event\.at is 1\.5, expected long"):
        store.encode("test.Event", _event(at=1.5))


def test_missing_field_raises(store: SchemaStore) -> None:
    record = _event()
    del record["id"]

    with pytest.raises(SerializationError, match="id"):
        store.encode("test.Event", record)


def test_unknown_schema_name_lists_known(store: SchemaStore) -> None:
    with pytest.raises(SerializationError, match="'test.Nope' is not in the store.*test.Event"):
        store.encode("test.Nope", _event())


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (None, "no value"),
        (b"", "single-object marker"),
        (b"\xc3\x01\x00", "single-object marker"),
        (b"\x00\x00" + bytes(8) + b"\x02", "single-object marker"),
    ],
)
def test_bad_framing_is_undecodable(store: SchemaStore, data: bytes | None, detail: str) -> None:
    with pytest.raises(DecodeError, match=detail) as caught:
        store.decoder("test.Event").decode(data)

    assert caught.value.reason == "undecodable"


def test_truncated_body_is_undecodable(store: SchemaStore) -> None:
    data = store.encode("test.Event", _event(amount=1.0))

    with pytest.raises(DecodeError) as caught:
        store.decoder("test.Event").decode(data[:-3])

    assert caught.value.reason == "undecodable"


def test_trailing_bytes_are_undecodable(store: SchemaStore) -> None:
    data = store.encode("test.Event", _event())

    with pytest.raises(DecodeError, match="trailing bytes") as caught:
        store.decoder("test.Event").decode(data + b"\x00")

    assert caught.value.reason == "undecodable"


def test_garbage_body_is_undecodable(store: SchemaStore) -> None:
    header = store.schema("test.Event").header

    with pytest.raises(DecodeError) as caught:
        store.decoder("test.Event").decode(header + b"\xff" * 12)

    assert caught.value.reason == "undecodable"


def test_unknown_fingerprint_is_unknown_schema(store: SchemaStore) -> None:
    with pytest.raises(DecodeError, match="fingerprint 0102030405060708") as caught:
        store.decoder("test.Event").decode(b"\xc3\x01\x01\x02\x03\x04\x05\x06\x07\x08\x02")

    assert caught.value.reason == "unknown_schema"


def _evolved() -> dict[str, Any]:
    fields = [*EVENT["fields"], {"name": "note", "type": "string", "default": "none"}]
    return {**EVENT, "fields": fields}


def test_old_writer_resolves_into_new_reader() -> None:
    old_store = _store(EVENT)
    new_store = _store(_evolved(), previous=(EVENT,))
    data = old_store.encode("test.Event", _event(at=42))

    decoded = new_store.decoder("test.Event").decode(data)

    assert decoded["at"] == 42
    assert decoded["note"] == "none"


def test_incompatible_writer_is_unknown_schema() -> None:
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    store = _store(EVENT, other)

    with pytest.raises(DecodeError, match="cannot be read as test.Event") as caught:
        store.decoder("test.Event").decode(store.encode("Other", {"x": 1}))

    assert caught.value.reason == "unknown_schema"


def test_nested_timestamps_convert() -> None:
    nested = {
        "type": "record",
        "name": "Trip",
        "fields": [
            {
                "name": "legs",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Leg",
                        "fields": [
                            {
                                "name": "at",
                                "type": {"type": "long", "logicalType": "timestamp-micros"},
                            }
                        ],
                    },
                },
            },
            {"name": "last", "type": ["null", "Leg"], "default": None},
        ],
    }
    store = _store(nested)
    moment = datetime(2013, 1, 1, tzinfo=UTC)
    data = store.encode("Trip", {"legs": [{"at": moment}, {"at": 1}], "last": {"at": moment}})

    decoded = store.decoder("Trip").decode(data)

    assert decoded == {
        "legs": [{"at": 1_356_998_400_000}, {"at": 1}],
        "last": {"at": 1_356_998_400_000},
    }


def test_from_dir_loads_current_and_previous(tmp_path: Path) -> None:
    (tmp_path / "previous").mkdir()
    (tmp_path / "event.avsc").write_text(json.dumps(_evolved()))
    (tmp_path / "previous" / "event_v1.avsc").write_text(json.dumps(EVENT))

    store = SchemaStore.from_dir(tmp_path)
    old = _store(EVENT).schema("test.Event")

    assert store.names == ("test.Event",)
    assert store.for_file("event.avsc").name == "test.Event"
    assert store.by_fingerprint(old.fingerprint) is not None


def test_from_dir_rejects_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "a.avsc").write_text(json.dumps(EVENT))
    (tmp_path / "b.avsc").write_text(json.dumps(_evolved()))

    with pytest.raises(SerializationError, match="defined twice.*'previous' sub-folder"):
        SchemaStore.from_dir(tmp_path)


def test_from_dir_names_invalid_file(tmp_path: Path) -> None:
    (tmp_path / "broken.avsc").write_text("{not json")

    with pytest.raises(SerializationError, match="broken.avsc"):
        SchemaStore.from_dir(tmp_path)


def test_from_dir_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="does not exist"):
        SchemaStore.from_dir(tmp_path / "nope")


NUMBERS = {
    "type": "record",
    "name": "Numbers",
    "fields": [
        {"name": "small", "type": "int"},
        {"name": "big", "type": ["null", "long"]},
        {"name": "ratio", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "names", "type": {"type": "array", "items": "string"}},
        {"name": "scores", "type": {"type": "map", "values": ["null", "long", "double"]}},
    ],
}


class _Real(float):
    """A float subclass, as numpy's float64 is; the quick type check leaves it to fastavro."""


def _numbers(**changes: Any) -> dict[str, Any]:
    record = {"small": 1, "big": None, "ratio": 0.5, "flag": True, "names": [], "scores": {}}
    return {**record, **changes}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"small": 2**31}, "Numbers.small is 2147483648, expected int"),
        ({"big": 2**63}, "Numbers.big is 9223372036854775808"),
        ({"big": True}, "Numbers.big is True"),
        ({"ratio": "0.5"}, "Numbers.ratio is '0.5', expected double"),
        ({"flag": 1}, "Numbers.flag is 1, expected boolean"),
        ({"names": ["a", 1]}, "Numbers.names is 1, expected string"),
        ({"scores": {"a": ("long", 1.5)}}, "Numbers.scores is"),
    ],
)
def test_value_of_wrong_type_is_rejected(changes: dict[str, Any], problem: str) -> None:
    store = _store(NUMBERS)

    with pytest.raises(SerializationError, match=re.escape(problem)):
        store.encode("Numbers", _numbers(**changes))


def test_int_in_double_field_and_tuple_branches_encode() -> None:
    store = _store(NUMBERS)
    record = _numbers(ratio=2, big=2**63 - 1, scores={"a": ("double", 1.0), "b": None})

    decoded = store.decoder("Numbers").decode(store.encode("Numbers", record))

    assert decoded == {**record, "ratio": 2.0, "scores": {"a": 1.0, "b": None}}


def test_float_subclass_is_accepted() -> None:
    store = _store(NUMBERS)

    decoded = store.decoder("Numbers").decode(store.encode("Numbers", _numbers(ratio=_Real(0.25))))

    assert decoded["ratio"] == 0.25
