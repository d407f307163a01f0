"""Restarts: a worker restarted on its state folder skips the input it already applied."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from tests.aggregation.harness import ms
from tests.stream.conftest import CaseFactory
from tests.stream.harness import StreamCase
from tests.stream.test_late_events import K1M

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def send_input(case: StreamCase) -> None:
    """Accepted events, a late one and one without a key, ending past every boundary of k."""
    case.send("1", entity_id="k", ts="2025-02-03T10:00:10.000Z", amount=1.0)
    case.send("2", entity_id="k", ts="2025-02-03T10:01:20.000Z", amount=2.0)
    case.send("3", entity_id="k", ts="2025-02-03T10:00:30.000Z", amount=5.0)
    case.send("4", entity_id=None, ts="2025-02-03T10:02:00.000Z", amount=1.0)
    case.send("5", entity_id="k", ts="2025-02-03T10:02:05.000Z", amount=3.0)
    case.send("6", entity_id="zz-0", ts="2025-02-03T10:05:00.000Z", amount=0.0)


def send_fresh_event(case: StreamCase) -> None:
    """An event after the old ones: once it is applied, a restarted worker has passed them all.

    It sits exactly at the watermark, so it is accepted and makes no slot-boundary record.
    """
    case.send("7", entity_id="fresh", ts="2025-02-03T10:05:00.000Z", amount=4.0)


@pytest.mark.parametrize("new_group", [False, True], ids=["same_group", "commits_lost"])
def test_restarted_worker_writes_nothing_again(stream_case: CaseFactory, new_group: bool) -> None:
    case = stream_case(views=[K1M])
    send_input(case)
    case.apply()
    case.stop()
    records_before = case.feature_log().records
    letters_before = case.dead_letters()
    assert [(d.label, d.reason) for d in letters_before] == [("3", "late"), ("4", "missing_key")]

    case.start(new_group=new_group)
    send_fresh_event(case)
    case.apply()
    case.stop()

    records_after = case.feature_log().records
    assert records_after[: len(records_before)] == records_before
    new_records = [
        (r.entity, r.event_ts_ms, r.latest_event_ts_ms, r.values)
        for r in records_after[len(records_before) :]
    ]
    t_fresh = ms("2025-02-03T10:05:00.000Z")
    assert new_records == [(("fresh",), t_fresh, t_fresh, {"n": 1, "total": 4.0})]
    assert case.dead_letters() == letters_before
    assert case.online_row("k1m", "k", "2025-02-03T10:03:00.000Z") == (
        "ok",
        ms("2025-02-03T10:03:00.000Z"),
        ms("2025-02-03T10:02:05.000Z"),
        [0, None],
    )
    assert case.workers[1].stats.source_events == 1


def test_restarted_worker_decays_idle_partition(stream_case: CaseFactory) -> None:
    p1m = {
        "name": "p1m",
        "window": {"length": "60s"},
        "features": [{"name": "n", "function": "count"}],
    }
    case = stream_case(views=[p1m], idle_timeout="30s")
    case.send("1", entity_id="k", ts="2025-02-03T10:00:10.000Z")
    case.send("2", entity_id="k", ts="2025-02-03T10:00:20.000Z")
    case.apply()
    case.stop()

    case.start()
    case.wait_applied()
    # Whatever wall time the restarted worker assigns to the last message, it lies before the
    # restart, so the partition has been quiet for at least these 2 minutes: the emission clock
    # is at least 10:02:20, past the 10:01:00 boundary.
    case.pause(timedelta(minutes=2))

    assert case.feature_log().versions("p1m", "k")[-1] == (
        ms("2025-02-03T10:01:00.000Z"),
        ms("2025-02-03T10:00:20.000Z"),
        [0],
    )
    assert case.online_row("p1m", "k", "2025-02-03T10:01:00.000Z") == (
        "ok",
        ms("2025-02-03T10:01:00.000Z"),
        ms("2025-02-03T10:00:20.000Z"),
        [0],
    )


def test_lost_state_dead_letters_each_event_once(
    stream_case: CaseFactory,
) -> None:
    case = stream_case(views=[K1M])
    send_input(case)
    case.apply()
    case.stop()
    letters_before = case.dead_letters()

    shutil.rmtree(case.state_dir)
    case.start()
    send_fresh_event(case)
    case.apply()

    assert case.dead_letters() == letters_before


def test_merge_skips_partition_assigned_at_end(
    stream_case: CaseFactory,
) -> None:
    # A partition assigned at its end never hands over a message, so the consumer reports no
    # position for it. The merge must not wait for it, or the other partition's events, fewer
    # than fill its buffers, would stay there for good.
    case = stream_case(views=[K1M], partitions=2)
    case.send("1", partition=0, entity_id="k", ts="2025-02-03T10:00:10.000Z", amount=1.0)
    case.apply()
    case.stop()

    case.start()
    case.send("2", partition=1, entity_id="j", ts="2025-02-03T10:00:20.000Z", amount=2.0)
    case.apply()
    case.stop()

    records = [(r.entity, r.values) for r in case.feature_log().records if r.entity == ("j",)]
    assert records == [(("j",), {"n": 1, "total": 2.0})]


def test_stale_state_is_rebuilt(stream_case: CaseFactory, caplog: pytest.LogCaptureFixture) -> None:
    # The first worker's state stops at event 1; a worker elsewhere (another state folder)
    # then takes the partition and processes event 2. When the partition comes back, the old
    # state is out of date, so the first worker rebuilds from the input instead of resuming.
    case = stream_case(views=[K1M])
    first_state = case.state_dir
    case.send("1", entity_id="k", ts="2025-02-03T10:00:10.000Z", amount=1.0)
    case.apply()
    case.stop()
    case.state_dir = first_state.with_name(first_state.name + "-elsewhere")
    case.send("2", entity_id="k", ts="2025-02-03T10:00:20.000Z", amount=2.0)
    case.apply()
    case.stop()
    before = case.feature_log().records

    case.state_dir = first_state
    with caplog.at_level("WARNING", logger="streamfeat.stream.assigned_state"):
        case.start()
        case.send("3", entity_id="k", ts="2025-02-03T10:00:30.000Z", amount=4.0)
        case.apply()
        case.stop()

    assert "stale_state_discarded" in caplog.text
    rebuilt = case.feature_log().records[len(before) :]
    assert [(r.entity, r.event_ts_ms, r.values) for r in rebuilt] == [
        (("k",), ms("2025-02-03T10:00:10.000Z"), {"n": 1, "total": 1.0}),
        (("k",), ms("2025-02-03T10:00:20.000Z"), {"n": 2, "total": 3.0}),
        (("k",), ms("2025-02-03T10:00:30.000Z"), {"n": 3, "total": 7.0}),
    ]
