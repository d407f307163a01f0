"""Out-of-order and late events through the real worker (lateness, corrections, dead letters)."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from tests.aggregation.harness import ms
from tests.stream.conftest import CaseFactory
from tests.stream.harness import StreamCase

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SCORE = {
    "name": "score",
    "entity": "player",
    "window": {"length": "1d"},
    "features": [
        {"name": "n", "function": "count"},
        {"name": "last_score", "function": "last", "column": "score"},
        {"name": "max_score", "function": "max", "column": "score"},
    ],
}
PLAYER = {"player": ["entity_id"]}

K1M = {
    "name": "k1m",
    "window": {"length": "60s"},
    "features": [
        {"name": "n", "function": "count"},
        {"name": "total", "function": "sum", "column": "amount"},
    ],
}


def send_late_input(case: StreamCase) -> None:
    """Send events 1 to 6 of the late-event case; 3 and 5 are out of order, 5 by an hour."""
    case.send("1", entity_id="k", ts="2025-02-03T10:00:10.000Z", amount=1.0)
    case.send("2", entity_id="k", ts="2025-02-03T10:01:20.000Z", amount=2.0)
    case.send("3", entity_id="k", ts="2025-02-03T10:00:30.000Z", amount=5.0)
    case.send("4", entity_id="k", ts="2025-02-03T10:02:05.000Z", amount=3.0)
    case.send("5", entity_id="k", ts="2025-02-03T09:00:00.000Z", amount=7.0)
    case.send("6", entity_id="zz-0", ts="2025-02-03T10:05:00.000Z", amount=0.0)


def both(iso: str) -> tuple[int, int]:
    """An event time used as record time and latest event time at once."""
    return ms(iso), ms(iso)


def test_out_of_order_events_correct_values(
    stream_case: CaseFactory,
) -> None:
    case = stream_case(views=[SCORE], entities=PLAYER, allowed_lateness="30m")
    case.send("s1", entity_id="A", ts="2025-02-03T00:10:00.000Z", score=10)
    case.send("s2", entity_id="B", ts="2025-02-03T00:20:00.000Z", score=20)
    case.send("s3", entity_id="A", ts="2025-02-03T00:50:00.000Z", score=11)
    case.send("s4", entity_id="B", ts="2025-02-03T00:40:00.000Z", score=21)
    case.apply()
    assert case.online_row("score", "B", "2025-02-03T00:40:00.000Z") == (
        "ok",
        *both("2025-02-03T00:40:00.000Z"),
        [2, 21, 21],
    )

    case.send("s5", entity_id="A", ts="2025-02-03T00:30:00.000Z", score=99)
    case.apply()
    assert case.online_row("score", "A", "2025-02-03T00:50:00.000Z") == (
        "ok",
        *both("2025-02-03T00:50:00.000Z"),
        [3, 11, 99],
    )

    case.send("s6", entity_id="C", ts="2025-02-03T00:55:00.000Z", score=30)
    case.send("s7", entity_id="A", ts="2025-02-03T00:05:00.000Z", score=5)
    case.send("s8", entity_id="B", ts="2025-02-03T00:25:00.000Z", score=22)
    case.apply()

    final_online = {
        ("A", "2025-02-03T00:50:00.000Z"): [3, 11, 99],
        ("B", "2025-02-03T00:40:00.000Z"): [3, 21, 22],
        ("C", "2025-02-03T00:55:00.000Z"): [1, 30, 30],
    }
    for (entity, iso), values in final_online.items():
        assert case.online_row("score", entity, iso) == ("ok", *both(iso), values), entity

    letters = case.dead_letters()
    assert [(d.label, d.reason) for d in letters] == [("s7", "late")]
    assert letters[0].source == "events"
    assert letters[0].topic == case.source.topic
    assert letters[0].views == ("score",)

    log = case.feature_log()
    expected = {
        ("A", "2025-02-03T00:09:59.999Z"): None,
        ("A", "2025-02-03T00:10:00.000Z"): [1, 10, 10],
        ("A", "2025-02-03T00:30:00.000Z"): [2, 99, 99],
        ("A", "2025-02-03T00:49:59.999Z"): [2, 99, 99],
        ("A", "2025-02-03T00:50:00.000Z"): [3, 11, 99],
        ("A", "2025-02-03T00:05:00.000Z"): None,
        ("B", "2025-02-03T00:20:00.000Z"): [1, 20, 20],
        ("B", "2025-02-03T00:25:00.000Z"): [2, 22, 22],
        ("B", "2025-02-03T00:40:00.000Z"): [3, 21, 22],
        ("C", "2025-02-03T00:54:59.999Z"): None,
        ("C", "2025-02-03T00:55:00.000Z"): [1, 30, 30],
    }
    for (entity, iso), values in expected.items():
        assert log.value_as_of("score", entity, iso) == values, (entity, iso)
    assert log.final_records("score", "B") == [
        (*both("2025-02-03T00:20:00.000Z"), [1, 20, 20]),
        (*both("2025-02-03T00:25:00.000Z"), [2, 22, 22]),
        (*both("2025-02-03T00:40:00.000Z"), [3, 21, 22]),
    ]
    assert ms("2025-02-03T00:05:00.000Z") not in [v[0] for v in log.versions("score", "A")]

    case.stop()
    assert case.workers[0].stats.rejected == Counter({("score", "late"): 1})


def test_late_event_goes_to_dead_letters_and_changes_nothing(stream_case: CaseFactory) -> None:
    case = stream_case(views=[K1M], allowed_lateness="0s")
    send_late_input(case)
    case.apply()

    letters = case.dead_letters()
    assert [(d.label, d.reason) for d in letters] == [("3", "late"), ("5", "late")]
    assert [(d.partition, d.offset) for d in letters] == [(0, 2), (0, 4)]

    log = case.feature_log()
    expected = {
        "2025-02-03T08:59:59.999Z": None,
        "2025-02-03T09:00:00.000Z": None,
        "2025-02-03T10:00:10.000Z": [1, 1.0],
        "2025-02-03T10:00:30.000Z": [1, 1.0],
        "2025-02-03T10:00:59.999Z": [1, 1.0],
        "2025-02-03T10:01:00.000Z": [0, None],
        "2025-02-03T10:01:20.000Z": [1, 2.0],
        "2025-02-03T10:02:00.000Z": [0, None],
        "2025-02-03T10:02:05.000Z": [1, 3.0],
        "2025-02-03T10:03:00.000Z": [0, None],
    }
    for iso, values in expected.items():
        assert log.value_as_of("k1m", "k", iso) == values, iso
    assert log.final_records("k1m", "k") == [
        (*both("2025-02-03T10:00:10.000Z"), [1, 1.0]),
        (ms("2025-02-03T10:01:00.000Z"), ms("2025-02-03T10:00:10.000Z"), [0, None]),
        (*both("2025-02-03T10:01:20.000Z"), [1, 2.0]),
        (ms("2025-02-03T10:02:00.000Z"), ms("2025-02-03T10:01:20.000Z"), [0, None]),
        (*both("2025-02-03T10:02:05.000Z"), [1, 3.0]),
        (ms("2025-02-03T10:03:00.000Z"), ms("2025-02-03T10:02:05.000Z"), [0, None]),
    ]
    # No version ever held the late events: no n = 2, no total 6.0, no record at their times.
    versions = log.versions("k1m", "k")
    assert all(values[0] <= 1 for _, _, values in versions)
    assert {ms("2025-02-03T09:00:00.000Z"), ms("2025-02-03T10:00:30.000Z")}.isdisjoint(
        event_ts for event_ts, _, _ in versions
    )

    case.stop()
    assert case.workers[0].stats.rejected == Counter({("k1m", "late"): 2})


def test_larger_lateness_accepts_the_same_event(stream_case: CaseFactory) -> None:
    case = stream_case(views=[K1M], allowed_lateness="60s")
    send_late_input(case)
    case.apply()

    assert [(d.label, d.reason) for d in case.dead_letters()] == [("5", "late")]
    log = case.feature_log()
    expected = {
        "2025-02-03T09:00:00.000Z": None,
        "2025-02-03T10:00:10.000Z": [1, 1.0],
        "2025-02-03T10:00:30.000Z": [2, 6.0],
        "2025-02-03T10:00:59.999Z": [2, 6.0],
        "2025-02-03T10:01:00.000Z": [0, None],
        "2025-02-03T10:02:05.000Z": [1, 3.0],
    }
    for iso, values in expected.items():
        assert log.value_as_of("k1m", "k", iso) == values, iso

    case.stop()
    assert case.workers[0].stats.rejected == Counter({("k1m", "late"): 1})


@pytest.mark.parametrize("state_lost", [False, True], ids=["no_crash", "state_lost"])
def test_watermark_per_source_partition(stream_case: CaseFactory, state_lost: bool) -> None:
    c1m = {
        "name": "c1m",
        "window": {"length": "60s"},
        "features": [{"name": "n", "function": "count"}],
    }
    case = stream_case(views=[c1m], partitions=2)
    case.send("1", partition=0, entity_id="a", ts="2025-02-03T10:00:10.000Z")
    case.send("2", partition=0, entity_id="a", ts="2025-02-03T10:00:40.000Z")
    case.send("3", partition=0, entity_id="x", ts="2025-02-03T10:01:30.000Z")
    case.send("4", partition=1, entity_id="b", ts="2025-02-03T10:00:20.000Z")
    case.apply()
    assert case.online_row("c1m", "a", "2025-02-03T10:01:00.000Z") == (
        "ok",
        ms("2025-02-03T10:01:00.000Z"),
        ms("2025-02-03T10:00:40.000Z"),
        [0],
    )
    assert case.online_row("c1m", "b", "2025-02-03T10:00:20.000Z") == (
        "ok",
        *both("2025-02-03T10:00:20.000Z"),
        [1],
    )
    if state_lost:
        # The worker stops after committing event 4, and its state folder is deleted. The
        # next worker rebuilds both partitions from their input, watermarks included, before
        # it judges event 5.
        case.stop()
        shutil.rmtree(case.state_dir)

    case.send("5", partition=0, entity_id="a", ts="2025-02-03T10:00:50.000Z")
    case.send("6", partition=0, entity_id="x", ts="2025-02-03T10:02:00.000Z")
    case.send("7", partition=1, entity_id="b", ts="2025-02-03T10:01:05.000Z")
    case.send("8", partition=0, entity_id="zz-0", ts="2025-02-03T10:05:00.000Z")
    case.send("9", partition=1, entity_id="zz-1", ts="2025-02-03T10:05:00.000Z")
    case.apply()

    letters = case.dead_letters()
    assert [(d.label, d.reason, d.partition) for d in letters] == [("5", "late", 0)]
    assert case.online_row("c1m", "a", "2025-02-03T10:01:00.000Z") == (
        "ok",
        ms("2025-02-03T10:01:00.000Z"),
        ms("2025-02-03T10:00:40.000Z"),
        [0],
    )
    assert case.online_row("c1m", "x", "2025-02-03T10:03:00.000Z") == (
        "ok",
        ms("2025-02-03T10:03:00.000Z"),
        ms("2025-02-03T10:02:00.000Z"),
        [0],
    )

    log = case.feature_log()
    expected = {
        ("a", "10:00:40.000"): [2],
        ("a", "10:00:50.000"): [2],
        ("a", "10:00:59.999"): [2],
        ("a", "10:01:00.000"): [0],
        ("x", "10:01:30.000"): [1],
        ("x", "10:01:59.999"): [1],
        ("x", "10:02:00.000"): [1],
        ("x", "10:03:00.000"): [0],
        ("b", "10:00:20.000"): [1],
        ("b", "10:01:00.000"): [0],
        ("b", "10:01:05.000"): [1],
        ("b", "10:02:00.000"): [0],
    }
    for (entity, clock_time), values in expected.items():
        iso = f"2025-02-03T{clock_time}Z"
        assert log.value_as_of("c1m", entity, iso) == values, (entity, clock_time)
    first_versions = [
        (*both("2025-02-03T10:00:10.000Z"), [1]),
        (*both("2025-02-03T10:00:40.000Z"), [2]),
        (ms("2025-02-03T10:01:00.000Z"), ms("2025-02-03T10:00:40.000Z"), [0]),
    ]
    # NOTE: without a state changelog the rebuild writes a's records a second time, with the
    # same values, where a restore would write them once. Compaction keeps one of each.
    rebuilt = first_versions if state_lost else []
    assert log.versions("c1m", "a") == first_versions + rebuilt

    case.stop()
    assert case.workers[-1].stats.rejected == Counter({("c1m", "late"): 1})
