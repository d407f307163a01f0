"""The vectorized backfill computes exactly the core's final records."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat.aggregation.replay import PartitionReplay
from streamfeat.offline.vectorized import entity_records, is_vectorized, sort_events
from tests.aggregation.harness import view

FEATURES = [
    {"name": "n", "function": "count"},
    {"name": "n_x", "function": "count", "column": "x"},
    {"name": "total", "function": "sum", "column": "x"},
    {"name": "avg", "function": "mean", "column": "x"},
    {"name": "low", "function": "min", "column": "x"},
    {"name": "high", "function": "max", "column": "x"},
    {"name": "latest", "function": "last", "column": "x"},
]

values = st.one_of(st.none(), st.integers(-1000, 1000))
events = st.lists(st.tuples(st.integers(0, 400), values), min_size=1, max_size=40)


def core_final(feature_view, accepted, until_ms):
    replay = PartitionReplay([feature_view], allowed_lateness_ms=10_000)
    final = {}
    for ts, x in accepted:
        for item in replay.offer(ts, {"x": x}, {feature_view.name: ("k",)}) or []:
            final[item.emission.event_ts_ms] = (
                item.emission.latest_event_ts_ms,
                item.emission.values,
            )
    for item in replay.offer(until_ms + 10_000, {"x": None}, {feature_view.name: ("zz",)}) or []:
        if item.entity == ("k",) and item.emission.event_ts_ms <= until_ms:
            final[item.emission.event_ts_ms] = (
                item.emission.latest_event_ts_ms,
                item.emission.values,
            )
    return final


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=300, deadline=None)
@given(events=events, length_slots=st.integers(1, 5), hop=st.sampled_from([7, 10, 25]))
def test_vectorized_records_equal_core_records(events, length_slots, hop):
    feature_view = view("v", f"{hop * length_slots}ms", f"{hop}ms", FEATURES)
    assert is_vectorized(feature_view)
    until_ms = max(ts for ts, _ in events) + 5 * hop * length_slots
    expected = core_final(feature_view, events, until_ms)
    ts = np.array([t for t, _ in events], dtype=np.int64)
    order = sort_events(ts)
    x = np.array([math.nan if v is None else float(v) for _, v in events])[order]
    result = entity_records(feature_view, ts[order], {"x": x}, until_ms)
    got = {
        int(t): (int(result.latest_event_ts_ms[i]), [column[i] for column in result.values])
        for i, t in enumerate(result.event_ts_ms)
    }
    assert sorted(got) == sorted(expected)
    for t, (latest, row) in expected.items():
        assert got[t][0] == latest, t
        assert all(same(a, b) for a, b in zip(got[t][1], row, strict=True)), (t, got[t][1], row)
