"""Bad input through the real worker: dead letters with their reasons, and no trace elsewhere."""

from __future__ import annotations

import math

import pytest

from streamfeat.serialization import HEADER_LENGTH, MAGIC
from tests.aggregation.harness import ms
from tests.stream.conftest import CaseFactory
from tests.stream.harness import writer_store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

R1M = {
    "name": "r1m",
    "entity": "device",
    "window": {"length": "60s"},
    "features": [
        {"name": "n", "function": "count"},
        {"name": "n_temp", "function": "count", "column": "temp"},
        {"name": "avg_temp", "function": "mean", "column": "temp"},
        {"name": "n_hum", "function": "count", "column": "humidity"},
        {"name": "avg_hum", "function": "mean", "column": "humidity"},
    ],
}
AVG3M = {
    "name": "avg3m",
    "entity": "probe",
    "window": {"length": "3m", "hop": "1m"},
    "features": [
        {"name": "n", "function": "count"},
        {"name": "avg_x", "function": "mean", "column": "amount"},
    ],
}
S1M = {
    "name": "s1m",
    "entity": "user",
    "window": {"length": "60s"},
    "features": [
        {"name": "n", "function": "count"},
        {"name": "total", "function": "sum", "column": "amount"},
    ],
}
UNKNOWN_FINGERPRINT = bytes.fromhex("0123456789abcdef")


def test_writer_versions_read_as_reader_schema(stream_case: CaseFactory) -> None:
    case = stream_case(
        views=[R1M],
        entities={"device": ["device_id"]},
        source="readings",
        schema_file="reading.avsc",
    )
    v1, v2, v3 = (writer_store(f"reading_v{n}.avsc") for n in (1, 2, 3))
    case.send("m1", writer=v1, device_id="d1", ts="2025-02-03T10:00:00.000Z", temp=20)
    case.send("m2", writer=v2, device_id="d1", ts="2025-02-03T10:00:30.000Z", temp=22, humidity=40)
    case.send("m3", writer=v3, device_id="d1", ts="2025-02-03T10:00:45.000Z", humidity=50)
    body = v2.encode(
        case.schema_name, {"device_id": "d1", "ts": ms("2025-02-03T10:00:50.000Z"), "temp": 1}
    )
    unknown_schema = MAGIC + UNKNOWN_FINGERPRINT + body[HEADER_LENGTH:]
    truncated = body[: HEADER_LENGTH + 3]
    case.send_raw("m4", unknown_schema)
    case.send_raw("m5", truncated)
    case.send("m6", writer=v2, device_id="zz-0", ts="2025-02-03T10:05:00.000Z", temp=0, humidity=0)
    case.apply()

    letters = case.dead_letters()
    assert [(d.label, d.reason) for d in letters] == [
        ("m4", "unknown_schema"),
        ("m5", "undecodable"),
    ]
    for letter, offset in zip(letters, (3, 4), strict=True):
        assert (letter.source, letter.topic, letter.partition, letter.offset) == (
            "readings",
            case.source.topic,
            0,
            offset,
        )
    assert [letter.value for letter in letters] == [unknown_schema, truncated]

    log = case.feature_log()
    expected = {
        "2025-02-03T10:00:00.000Z": [1, 1, 20.0, 0, None],
        "2025-02-03T10:00:30.000Z": [2, 2, 21.0, 1, 40.0],
        "2025-02-03T10:00:45.000Z": [3, 2, 21.0, 2, 45.0],
        "2025-02-03T10:00:59.999Z": [3, 2, 21.0, 2, 45.0],
        "2025-02-03T10:01:00.000Z": [0, 0, None, 0, None],
    }
    for iso, values in expected.items():
        assert log.value_as_of("r1m", "d1", iso) == values, iso


def test_nan_and_infinity_are_dead_letters(
    stream_case: CaseFactory,
) -> None:
    case = stream_case(views=[AVG3M], entities={"probe": ["entity_id"]})
    inputs = [
        ("x0", "k", "00:00:30", 5.0),
        ("x1", "k", "00:01:30", 7.0),
        ("x2", "k", "00:02:30", 9.0),
        ("x3", "k", "00:03:30", math.nan),
        ("x4", "k", "00:04:30", 3.0),
        ("x5", "k", "00:05:30", 5.0),
        ("xinf", "k", "00:05:45", math.inf),
        ("x6", "k", "00:06:30", 7.0),
        ("x7", "k", "00:07:30", 12.0),
        ("z", "zz-0", "00:12:00", 0.0),
    ]
    for label, entity, clock_time, x in inputs:
        case.send(label, entity_id=entity, ts=f"2024-01-01T{clock_time}.000Z", amount=x)
    case.apply()

    letters = case.dead_letters()
    assert [(d.label, d.reason) for d in letters] == [("x3", "not_finite"), ("xinf", "not_finite")]

    log = case.feature_log()
    for _, _, (_, avg_x) in log.versions("avg3m", "k"):
        assert avg_x is None or math.isfinite(avg_x)
    expected = {
        "00:00:30.000": [1, 5.0],
        "00:02:30.000": [3, 7.0],
        "00:02:59.999": [3, 7.0],
        "00:03:00.000": [2, 8.0],
        "00:03:30.000": [2, 8.0],
        "00:04:30.000": [2, 6.0],
        "00:05:30.000": [2, 4.0],
        "00:05:45.000": [2, 4.0],
        "00:06:30.000": [3, 5.0],
        "00:07:30.000": [3, 8.0],
        "00:09:59.999": [1, 12.0],
        "00:10:00.000": [0, None],
    }
    for clock_time, values in expected.items():
        assert log.value_as_of("avg3m", "k", f"2024-01-01T{clock_time}Z") == values, clock_time


def test_null_or_empty_key_is_dead_letter(stream_case: CaseFactory) -> None:
    case = stream_case(views=[S1M], entities={"user": ["entity_id"]})
    inputs = [
        ("1", None, "10:00:05", 1.0),
        ("2", "0", "10:00:10", 2.0),
        ("3", "", "10:00:15", 3.0),
        ("4", "u1", "10:00:20", 4.0),
        ("5", None, "10:00:50", 5.0),
        ("6", "u1", "10:00:30", 6.0),
        ("7", "u1", "10:01:10", 0.0),
        ("8", "zz-0", "10:05:00", 0.0),
    ]
    for label, entity, clock_time, v in inputs:
        case.send(label, entity_id=entity, ts=f"2025-02-03T{clock_time}.000Z", amount=v)
    case.apply()

    letters = case.dead_letters()
    assert [(d.label, d.reason) for d in letters] == [
        ("1", "missing_key"),
        ("3", "missing_key"),
        ("5", "missing_key"),
    ]
    assert all(letter.views == ("s1m",) for letter in letters)

    log = case.feature_log()
    expected = {
        ("0", "10:00:10.000"): [1, 2.0],
        ("0", "10:01:00.000"): [0, None],
        ("u1", "10:00:20.000"): [1, 4.0],
        ("u1", "10:00:30.000"): [2, 10.0],
        ("u1", "10:00:59.999"): [2, 10.0],
        ("u1", "10:01:00.000"): [0, None],
        ("u1", "10:01:10.000"): [1, 0.0],
        ("None", "10:00:30.000"): None,
        ("null", "10:00:30.000"): None,
        ("", "10:00:30.000"): None,
    }
    for (entity, clock_time), values in expected.items():
        iso = f"2025-02-03T{clock_time}Z"
        assert log.value_as_of("s1m", entity, iso) == values, (entity, clock_time)
    assert {record.entity for record in log.records} == {("0",), ("u1",), ("zz-0",)}

    reads = case.online("s1m", ["None", "null", ""], "2025-02-03T10:00:30.000Z")
    assert [value.status.value for value in reads] == ["not_found"] * 3
    assert case.online_keys() == sorted(
        case.online_store.key("s1m", (entity,)) for entity in ("0", "u1", "zz-0")
    )


def test_partially_keyed_event_feeds_keyed_views(stream_case: CaseFactory) -> None:
    views = [
        {**S1M, "name": "by_user", "entity": "user"},
        {**S1M, "name": "by_group", "entity": "group"},
    ]
    case = stream_case(views=views, entities={"user": ["entity_id"], "group": ["group_id"]})
    inputs = [
        ("a1", "u1", "g1", "10:00:00", 1.0),
        ("a2", "u1", None, "10:00:10", 2.0),
        ("a3", None, "g1", "10:00:20", 4.0),
        ("a4", None, None, "10:00:30", 8.0),
    ]
    for label, user, group, clock_time, amount in inputs:
        ts = f"2025-02-03T{clock_time}.000Z"
        case.send(label, entity_id=user, group_id=group, ts=ts, amount=amount)
    case.apply()

    letters = case.dead_letters()
    assert [(d.label, d.reason, d.views) for d in letters] == [
        ("a2", "missing_key", ("by_group",)),
        ("a3", "missing_key", ("by_user",)),
        ("a4", "missing_key", ("by_user", "by_group")),
    ]

    log = case.feature_log()
    assert log.final_records("by_user", "u1") == [
        (ms("2025-02-03T10:00:00.000Z"), ms("2025-02-03T10:00:00.000Z"), [1, 1.0]),
        (ms("2025-02-03T10:00:10.000Z"), ms("2025-02-03T10:00:10.000Z"), [2, 3.0]),
    ]
    assert log.final_records("by_group", "g1") == [
        (ms("2025-02-03T10:00:00.000Z"), ms("2025-02-03T10:00:00.000Z"), [1, 1.0]),
        (ms("2025-02-03T10:00:20.000Z"), ms("2025-02-03T10:00:20.000Z"), [2, 5.0]),
    ]
    assert {(r.view, r.entity) for r in log.records} == {
        ("by_user", ("u1",)),
        ("by_group", ("g1",)),
    }
