"""Corrections through the real worker: record versions, online never older, idle decay."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.aggregation.harness import ms
from tests.stream.conftest import CaseFactory
from tests.stream.harness import ManualClock, OnlineRow, StreamCase, Version

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PAY = {
    "name": "pay",
    "entity": "user",
    "window": {"length": "1h"},
    "features": [
        {"name": "n", "function": "count"},
        {"name": "total", "function": "sum", "column": "amount"},
        {"name": "last_amount", "function": "last", "column": "amount"},
    ],
}
P1M = {
    "name": "p1m",
    "entity": "device",
    "window": {"length": "60s"},
    "features": [{"name": "n", "function": "count"}],
}


def test_older_event_never_overwrites_online_value(stream_case: CaseFactory) -> None:
    # The processing clock jumps by up to an hour between events. The input has no idle period,
    # so a one-day idle timeout keeps those jumps from counting as one.
    clock = ManualClock("2025-02-03T10:05:01.000Z")
    case = stream_case(
        views=[PAY],
        entities={"user": ["entity_id"]},
        allowed_lateness="5m",
        idle_timeout="1d",
        clock=clock,
    )
    t1005 = ms("2025-02-03T10:05:00.000Z")
    inputs = [
        ("p1", "10:05:00", 2.0, "10:05:01", "u1", ("ok", t1005, t1005, [1, 2.0, 2.0])),
        ("p2", "10:03:00", 1.0, "10:05:30", "u1", ("ok", t1005, t1005, [2, 3.0, 2.0])),
        ("p3", "10:05:00", 3.0, "10:06:30", "u1", ("ok", t1005, t1005, [3, 6.0, 3.0])),
        ("p4", "11:10:00", 0.0, "11:10:01", "zz-0", None),
    ]
    for label, event_time, amount, processed_at, entity, online in inputs:
        clock.set(f"2025-02-03T{processed_at}.000Z")
        case.send(label, entity_id=entity, ts=f"2025-02-03T{event_time}.000Z", amount=amount)
        case.apply()
        if online is not None:
            assert case.online_row("pay", "u1", "2025-02-03T10:05:00.000Z") == online, label
    assert case.online_row("pay", "u1", "2025-02-03T11:00:00.000Z") == (
        "ok",
        ms("2025-02-03T11:00:00.000Z"),
        t1005,
        [0, None, None],
    )

    assert case.dead_letters() == []
    log = case.feature_log()
    t1003 = ms("2025-02-03T10:03:00.000Z")
    assert log.versions("pay", "u1") == [
        (t1005, t1005, [1, 2.0, 2.0]),
        (t1003, t1003, [1, 1.0, 1.0]),
        (t1005, t1005, [2, 3.0, 2.0]),
        (t1005, t1005, [3, 6.0, 3.0]),
        (ms("2025-02-03T11:00:00.000Z"), t1005, [0, None, None]),
    ]
    # While the test clock does not move, the worker raises available_at by 1 ms per batch so
    # that versions never tie. One second covers the few hundred batches of a test.
    processed_at = ["10:05:01", "10:05:30", "10:05:30", "10:06:30", "11:10:01"]
    for record, clock_time in zip(log.of("pay", "u1"), processed_at, strict=True):
        start = ms(f"2025-02-03T{clock_time}.000Z")
        assert start <= record.available_at_ms < start + 1_000, clock_time
    assert log.value_as_of(
        "pay", "u1", "2025-02-03T10:05:45.000Z", known_at_iso="2025-02-03T10:05:45.000Z"
    ) == [2, 3.0, 2.0]
    assert log.final_records("pay", "u1") == [
        (ms("2025-02-03T10:03:00.000Z"), ms("2025-02-03T10:03:00.000Z"), [1, 1.0, 1.0]),
        (t1005, t1005, [3, 6.0, 3.0]),
        (ms("2025-02-03T11:00:00.000Z"), t1005, [0, None, None]),
    ]
    expected = {
        "2025-02-03T10:02:59.999Z": None,
        "2025-02-03T10:03:00.000Z": [1, 1.0, 1.0],
        "2025-02-03T10:04:00.000Z": [1, 1.0, 1.0],
        "2025-02-03T10:05:00.000Z": [3, 6.0, 3.0],
        "2025-02-03T10:06:00.000Z": [3, 6.0, 3.0],
        "2025-02-03T10:59:59.999Z": [3, 6.0, 3.0],
        "2025-02-03T11:00:00.000Z": [0, None, None],
    }
    for iso, values in expected.items():
        assert log.value_as_of("pay", "u1", iso) == values, iso


def test_idle_partition_decays_and_keeps_watermark(stream_case: CaseFactory) -> None:
    case = stream_case(
        views=[P1M], entities={"device": ["entity_id"]}, allowed_lateness="0s", idle_timeout="30s"
    )
    case.send("1", entity_id="k", ts="2025-02-03T10:00:10.000Z")
    case.send("2", entity_id="k", ts="2025-02-03T10:00:20.000Z")
    case.apply()
    assert online_at(case, "10:00:20") == expected_online("10:00:20", "10:00:20", 2)

    case.pause(timedelta(minutes=2))
    assert online_at(case, "10:01:00") == expected_online("10:01:00", "10:00:20", 0)

    case.send("3", entity_id="k", ts="2025-02-03T10:00:50.000Z")
    case.apply()
    assert online_at(case, "10:01:00") == expected_online("10:01:00", "10:00:50", 0)

    case.send("4", entity_id="k", ts="2025-02-03T10:02:00.000Z")
    case.apply()
    assert online_at(case, "10:02:00") == expected_online("10:02:00", "10:02:00", 1)

    case.pause(timedelta(minutes=2))
    assert online_at(case, "10:03:00") == expected_online("10:03:00", "10:02:00", 0)

    assert case.dead_letters() == []
    log = case.feature_log()
    assert log.versions("p1m", "k") == [
        version("10:00:10", "10:00:10", 1),
        version("10:00:20", "10:00:20", 2),
        version("10:01:00", "10:00:20", 0),
        version("10:00:50", "10:00:50", 3),
        version("10:01:00", "10:00:50", 0),
        version("10:02:00", "10:02:00", 1),
        version("10:03:00", "10:02:00", 0),
    ]
    expected = {
        "2025-02-03T10:00:10.000Z": [1],
        "2025-02-03T10:00:20.000Z": [2],
        "2025-02-03T10:00:50.000Z": [3],
        "2025-02-03T10:00:59.999Z": [3],
        "2025-02-03T10:01:00.000Z": [0],
        "2025-02-03T10:01:30.000Z": [0],
        "2025-02-03T10:01:50.000Z": [0],
        "2025-02-03T10:01:50.001Z": None,
        "2025-02-03T10:02:00.000Z": [1],
        "2025-02-03T10:02:59.999Z": [1],
        "2025-02-03T10:03:00.000Z": [0],
        "2025-02-04T00:00:00.000Z": None,
    }
    for iso, values in expected.items():
        assert log.value_as_of("p1m", "k", iso) == values, iso


def at(clock_time: str) -> int:
    """Epoch milliseconds of a time of day on 2025-02-03 (UTC), such as ``10:01:00``."""
    return ms(f"2025-02-03T{clock_time}.000Z")


def version(event_ts: str, latest: str, n: int) -> Version:
    return (at(event_ts), at(latest), [n])


def online_at(case: StreamCase, as_of: str) -> OnlineRow:
    return case.online_row("p1m", "k", f"2025-02-03T{as_of}.000Z")


def expected_online(as_of: str, latest: str, n: int) -> OnlineRow:
    return ("ok", at(as_of), at(latest), [n])
