"""Edge cases of hopping and tumbling windows, lateness and slot-boundary records on the core."""

import math

import pytest

from streamfeat.aggregation.replay import PartitionReplay
from tests.aggregation.harness import Run, ms, view

COUNT = [{"name": "n", "function": "count"}]
COUNT_TOTAL = COUNT + [{"name": "total", "function": "sum", "column": "value"}]


def run_of(*views, lateness_ms=0, idle_ms=30_000):
    return Run(
        PartitionReplay(list(views), allowed_lateness_ms=lateness_ms, idle_timeout_ms=idle_ms)
    )


def test_hopping_window_counts_only_last_two_slots():
    run = run_of(view("hop", "10s", "5s", COUNT))
    for second in range(0, 20, 2):
        run.send(f"k{second:02}", "k", f"2025-02-03T10:00:{second:02}.000Z")
    run.send("z", "zz-0", "2025-02-03T10:01:00.000Z")
    expected = {
        "2025-02-03T09:59:59.999Z": None,
        "2025-02-03T10:00:00.000Z": [1],
        "2025-02-03T10:00:04.999Z": [3],
        "2025-02-03T10:00:05.000Z": [3],
        "2025-02-03T10:00:08.000Z": [5],
        "2025-02-03T10:00:09.999Z": [5],
        "2025-02-03T10:00:10.000Z": [3],
        "2025-02-03T10:00:14.999Z": [5],
        "2025-02-03T10:00:15.000Z": [3],
        "2025-02-03T10:00:19.999Z": [5],
        "2025-02-03T10:00:20.000Z": [2],
        "2025-02-03T10:00:24.999Z": [2],
        "2025-02-03T10:00:25.000Z": [0],
    }
    for iso, values in expected.items():
        assert run.value("hop", "k", iso) == values, iso


def test_hopping_window_never_exceeds_events_that_fit():
    run = run_of(view("hop", "10s", "5s", COUNT))
    for second in range(0, 20, 2):
        run.send(f"k{second:02}", "k", f"2025-02-03T10:00:{second:02}.000Z")
    run.send("z", "zz-0", "2025-02-03T10:01:00.000Z")
    start = ms("2025-02-03T09:59:59.000Z")
    records = run.final_records("hop", "k")
    for t in range(start, ms("2025-02-03T10:00:31.000Z"), 1):
        at_or_before = [r for r in records if r[0] <= t]
        if at_or_before:
            assert at_or_before[-1][2][0] <= 5, t


@pytest.mark.parametrize(
    "lateness_ms, late, at_1030, n_first_slot",
    [
        (0, ["3", "5"], [1, 1.0], [1, 1.0]),
        (60_000, ["5"], [2, 6.0], [2, 6.0]),
    ],
)
def test_late_event_changes_no_value(lateness_ms, late, at_1030, n_first_slot):
    run = run_of(view("k1m", "60s", None, COUNT_TOTAL), lateness_ms=lateness_ms)
    run.send("1", "k", "2025-02-03T10:00:10.000Z", value=1)
    run.send("2", "k", "2025-02-03T10:01:20.000Z", value=2)
    run.send("3", "k", "2025-02-03T10:00:30.000Z", value=5)
    run.send("4", "k", "2025-02-03T10:02:05.000Z", value=3)
    run.send("5", "k", "2025-02-03T09:00:00.000Z", value=7)
    run.send("6", "zz-0", "2025-02-03T10:05:00.000Z", value=0)
    assert run.late == late
    assert run.value("k1m", "k", "2025-02-03T09:00:00.000Z") is None
    assert run.value("k1m", "k", "2025-02-03T10:00:30.000Z") == at_1030
    assert run.value("k1m", "k", "2025-02-03T10:00:59.999Z") == n_first_slot
    assert run.value("k1m", "k", "2025-02-03T10:01:00.000Z") == [0, None]
    assert run.value("k1m", "k", "2025-02-03T10:02:05.000Z") == [1, 3.0]


def test_late_event_log_has_boundary_records_only_where_values_change():
    run = run_of(view("k1m", "60s", None, COUNT_TOTAL))
    for label, iso, value in [
        ("1", "2025-02-03T10:00:10.000Z", 1),
        ("2", "2025-02-03T10:01:20.000Z", 2),
        ("3", "2025-02-03T10:00:30.000Z", 5),
        ("4", "2025-02-03T10:02:05.000Z", 3),
        ("5", "2025-02-03T09:00:00.000Z", 7),
    ]:
        run.send(label, "k", iso, value=value)
    run.send("6", "zz-0", "2025-02-03T10:05:00.000Z", value=0)
    expected = [
        ("2025-02-03T10:00:10.000Z", "2025-02-03T10:00:10.000Z", [1, 1.0]),
        ("2025-02-03T10:01:00.000Z", "2025-02-03T10:00:10.000Z", [0, None]),
        ("2025-02-03T10:01:20.000Z", "2025-02-03T10:01:20.000Z", [1, 2.0]),
        ("2025-02-03T10:02:00.000Z", "2025-02-03T10:01:20.000Z", [0, None]),
        ("2025-02-03T10:02:05.000Z", "2025-02-03T10:02:05.000Z", [1, 3.0]),
        ("2025-02-03T10:03:00.000Z", "2025-02-03T10:02:05.000Z", [0, None]),
    ]
    assert run.final_records("k1m", "k") == [(ms(a), ms(b), v) for a, b, v in expected]


def test_slot_indices_above_two_to_the_31_keep_every_event():
    run = run_of(view("hop700", "2100ms", "700ms", COUNT_TOTAL))
    run.send("1", "k", "2023-11-14T22:13:20.123Z", value=1)
    run.send("2", "k", "2023-11-14T22:13:20.650Z", value=2)
    run.send("3", "k", "2023-11-14T22:13:21.900Z", value=3)
    run.send("4", "zz-0", "2023-11-14T22:13:30.000Z", value=0)
    expected = [
        ("2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.123Z", [1, 1.0]),
        ("2023-11-14T22:13:20.650Z", "2023-11-14T22:13:20.650Z", [2, 3.0]),
        ("2023-11-14T22:13:21.700Z", "2023-11-14T22:13:20.650Z", [1, 2.0]),
        ("2023-11-14T22:13:21.900Z", "2023-11-14T22:13:21.900Z", [2, 5.0]),
        ("2023-11-14T22:13:22.400Z", "2023-11-14T22:13:21.900Z", [1, 3.0]),
        ("2023-11-14T22:13:23.800Z", "2023-11-14T22:13:21.900Z", [0, None]),
    ]
    assert run.final_records("hop700", "k") == [(ms(a), ms(b), v) for a, b, v in expected]
    assert run.value("hop700", "k", "2023-11-14T22:13:20.122Z") is None
    assert run.value("hop700", "k", "2023-11-14T22:13:21.699Z") == [2, 3.0]


def test_mean_over_hopping_slots_ignores_rejected_values():
    mean_view = view(
        "avg3m",
        "3m",
        "1m",
        [
            {"name": "n", "function": "count"},
            {"name": "avg_x", "function": "mean", "column": "x"},
        ],
    )
    run = run_of(mean_view)
    for label, iso, x in [
        ("x0", "00:00:30", 5.0),
        ("x1", "00:01:30", 7.0),
        ("x2", "00:02:30", 9.0),
        ("x4", "00:04:30", 3.0),
        ("x5", "00:05:30", 5.0),
        ("x6", "00:06:30", 7.0),
        ("x7", "00:07:30", 12.0),
    ]:
        run.send(label, "k", f"2024-01-01T{iso}.000Z", x=x)
    run.send("z", "zz-0", "2024-01-01T00:12:00.000Z", x=0.0)
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
    for clock, values in expected.items():
        got = run.value("avg3m", "k", f"2024-01-01T{clock}Z")
        assert got[0] == values[0], clock
        if values[1] is None:
            assert got[1] is None, clock
        else:
            assert math.isclose(got[1], values[1]), clock


def test_key_zero_is_an_ordinary_key_and_sum_of_zero_is_zero():
    run = run_of(
        view(
            "s1m",
            "60s",
            None,
            [
                {"name": "n", "function": "count"},
                {"name": "total", "function": "sum", "column": "v"},
            ],
        )
    )
    run.send("2", "0", "2025-02-03T10:00:10.000Z", v=2)
    run.send("4", "u1", "2025-02-03T10:00:20.000Z", v=4)
    run.send("6", "u1", "2025-02-03T10:00:30.000Z", v=6)
    run.send("7", "u1", "2025-02-03T10:01:10.000Z", v=0)
    run.send("8", "zz-0", "2025-02-03T10:05:00.000Z", v=0)
    assert run.value("s1m", "0", "2025-02-03T10:00:10.000Z") == [1, 2.0]
    assert run.value("s1m", "0", "2025-02-03T10:01:00.000Z") == [0, None]
    assert run.value("s1m", "u1", "2025-02-03T10:00:30.000Z") == [2, 10.0]
    assert run.value("s1m", "u1", "2025-02-03T10:01:00.000Z") == [0, None]
    assert run.value("s1m", "u1", "2025-02-03T10:01:10.000Z") == [1, 0.0]
