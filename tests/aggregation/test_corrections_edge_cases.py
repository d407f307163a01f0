"""Out-of-order events within the allowed lateness rewrite the records they change."""

from streamfeat.aggregation.replay import PartitionReplay
from tests.aggregation.harness import Run, ms, view

SCORE = [
    {"name": "n", "function": "count"},
    {"name": "last_score", "function": "last", "column": "score"},
    {"name": "max_score", "function": "max", "column": "score"},
]


def versions_of(run, view_name, entity):
    return [
        (v.emission.event_ts_ms, v.emission.latest_event_ts_ms, v.emission.values)
        for v in run.versions
        if v.view == view_name and v.entity == (entity,)
    ]


def test_out_of_order_event_updates_later_records_but_never_newer_last():
    run = Run(PartitionReplay([view("score", "1d", None, SCORE)], allowed_lateness_ms=30 * 60_000))
    run.send("s1", "A", "2025-02-03T00:10:00.000Z", score=10)
    run.send("s2", "B", "2025-02-03T00:20:00.000Z", score=20)
    run.send("s3", "A", "2025-02-03T00:50:00.000Z", score=11)
    run.send("s4", "B", "2025-02-03T00:40:00.000Z", score=21)
    run.send("s5", "A", "2025-02-03T00:30:00.000Z", score=99)
    run.send("s6", "C", "2025-02-03T00:55:00.000Z", score=30)
    run.send("s7", "A", "2025-02-03T00:05:00.000Z", score=5)
    run.send("s8", "B", "2025-02-03T00:25:00.000Z", score=22)
    assert run.late == ["s7"]
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
        assert run.value("score", entity, iso) == values, (entity, iso)
    assert run.final_records("score", "B") == [
        (ms("2025-02-03T00:20:00.000Z"), ms("2025-02-03T00:20:00.000Z"), [1, 20, 20]),
        (ms("2025-02-03T00:25:00.000Z"), ms("2025-02-03T00:25:00.000Z"), [2, 22, 22]),
        (ms("2025-02-03T00:40:00.000Z"), ms("2025-02-03T00:40:00.000Z"), [3, 21, 22]),
    ]


def test_older_event_writes_own_record_and_rewrites_newer_one():
    pay = view(
        "pay",
        "1h",
        None,
        [
            {"name": "n", "function": "count"},
            {"name": "total", "function": "sum", "column": "amount"},
            {"name": "last_amount", "function": "last", "column": "amount"},
        ],
    )
    run = Run(PartitionReplay([pay], allowed_lateness_ms=5 * 60_000))
    run.send("p1", "u1", "2025-02-03T10:05:00.000Z", amount=2)
    run.send("p2", "u1", "2025-02-03T10:03:00.000Z", amount=1)
    run.send("p3", "u1", "2025-02-03T10:05:00.000Z", amount=3)
    run.send("p4", "zz-0", "2025-02-03T11:10:00.000Z", amount=0)
    t = ms
    assert versions_of(run, "pay", "u1") == [
        (t("2025-02-03T10:05:00.000Z"), t("2025-02-03T10:05:00.000Z"), [1, 2.0, 2]),
        (t("2025-02-03T10:03:00.000Z"), t("2025-02-03T10:03:00.000Z"), [1, 1.0, 1]),
        (t("2025-02-03T10:05:00.000Z"), t("2025-02-03T10:05:00.000Z"), [2, 3.0, 2]),
        (t("2025-02-03T10:05:00.000Z"), t("2025-02-03T10:05:00.000Z"), [3, 6.0, 3]),
        (t("2025-02-03T11:00:00.000Z"), t("2025-02-03T10:05:00.000Z"), [0, None, None]),
    ]


def test_idle_partition_decays_values_and_corrects_early_records():
    run = Run(
        PartitionReplay(
            [view("p1m", "60s", None, [{"name": "n", "function": "count"}])],
            allowed_lateness_ms=0,
            idle_timeout_ms=30_000,
        )
    )
    run.send("1", "k", "2025-02-03T10:00:10.000Z", wall_ms=0)
    run.send("2", "k", "2025-02-03T10:00:20.000Z", wall_ms=1_000)
    run.pause_until(121_000)
    run.send("3", "k", "2025-02-03T10:00:50.000Z", wall_ms=121_000)
    run.send("4", "k", "2025-02-03T10:02:00.000Z", wall_ms=121_010)
    run.pause_until(241_010)
    assert run.late == []
    t = ms
    assert versions_of(run, "p1m", "k") == [
        (t("2025-02-03T10:00:10.000Z"), t("2025-02-03T10:00:10.000Z"), [1]),
        (t("2025-02-03T10:00:20.000Z"), t("2025-02-03T10:00:20.000Z"), [2]),
        (t("2025-02-03T10:01:00.000Z"), t("2025-02-03T10:00:20.000Z"), [0]),
        (t("2025-02-03T10:00:50.000Z"), t("2025-02-03T10:00:50.000Z"), [3]),
        (t("2025-02-03T10:01:00.000Z"), t("2025-02-03T10:00:50.000Z"), [0]),
        (t("2025-02-03T10:02:00.000Z"), t("2025-02-03T10:02:00.000Z"), [1]),
        (t("2025-02-03T10:03:00.000Z"), t("2025-02-03T10:02:00.000Z"), [0]),
    ]
    assert run.value("p1m", "k", "2025-02-03T10:01:50.000Z") == [0]
    assert run.value("p1m", "k", "2025-02-03T10:01:50.001Z") is None


def test_records_do_not_depend_on_consumption_speed():
    def replay(gap_ms):
        run = Run(
            PartitionReplay(
                [view("t1m", "60s", None, [{"name": "n", "function": "count"}])],
                allowed_lateness_ms=60_000,
                idle_timeout_ms=300_000,
            )
        )
        times = ["10:00:00", "10:00:12", "10:00:24", "10:00:36", "10:00:48", "10:02:00"]
        for i, clock in enumerate(times):
            run.send(str(i), "a", f"2025-02-03T{clock}.000Z", wall_ms=i * gap_ms)
        run.send("7", "zz-0", "2025-02-03T10:05:00.000Z", wall_ms=6 * gap_ms)
        return run.final_records("t1m", "a")

    fast, slow = replay(1), replay(20_000)
    assert fast == slow
    assert [(r[0], r[2]) for r in fast] == [
        (ms("2025-02-03T10:00:00.000Z"), [1]),
        (ms("2025-02-03T10:00:12.000Z"), [2]),
        (ms("2025-02-03T10:00:24.000Z"), [3]),
        (ms("2025-02-03T10:00:36.000Z"), [4]),
        (ms("2025-02-03T10:00:48.000Z"), [5]),
        (ms("2025-02-03T10:01:00.000Z"), [0]),
        (ms("2025-02-03T10:02:00.000Z"), [1]),
        (ms("2025-02-03T10:03:00.000Z"), [0]),
    ]
