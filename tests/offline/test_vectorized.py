"""The vectorized backfill computes exactly the core's final records, for every entity at once."""

import math

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat.aggregation.replay import PartitionReplay
from streamfeat.offline._range_tables import range_extremes, range_sums
from streamfeat.offline.vectorized import is_vectorized, view_records
from tests.aggregation.harness import view

FEATURES = [
    {"name": "n", "function": "count"},
    {"name": "n_x", "function": "count", "column": "x"},
    {"name": "total", "function": "sum", "column": "x"},
    {"name": "avg", "function": "mean", "column": "x"},
    {"name": "low", "function": "min", "column": "x"},
    {"name": "high", "function": "max", "column": "x"},
    {"name": "latest", "function": "last", "column": "x"},
    {"name": "low_i", "function": "min", "column": "i"},
    {"name": "latest_i", "function": "last", "column": "i"},
]
ENTITIES = ("a", "b", "c")

whole = st.integers(-1000, 1000).map(float)
fractional = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: v != 0.0)
values = st.one_of(st.none(), whole)
events = st.lists(
    st.tuples(st.sampled_from(ENTITIES), st.integers(0, 400), values, st.integers(-50, 50)),
    min_size=1,
    max_size=60,
)


def core_final(feature_view, accepted, until_ms):
    """Final records per (entity, event_ts) of the per-event core, with the clock at until_ms."""
    replay = PartitionReplay([feature_view], allowed_lateness_ms=10_000)
    final = {}

    def keep(items):
        for item in items or []:
            if item.entity[0] in ENTITIES and item.emission.event_ts_ms <= until_ms:
                final[(item.entity[0], item.emission.event_ts_ms)] = (
                    item.emission.latest_event_ts_ms,
                    item.emission.values,
                )

    for entity, ts, x, i in accepted:
        keep(replay.offer(ts, {"x": x, "i": i}, {feature_view.name: (entity,)}))
    keep(replay.offer(until_ms + 10_000, {"x": None}, {feature_view.name: ("zz",)}))
    return final


def vectorized_final(feature_view, accepted, until_ms):
    codes = np.array([ENTITIES.index(e) for e, _, _, _ in accepted], dtype=np.int64)
    ts = np.array([t for _, t, _, _ in accepted], dtype=np.int64)
    columns = {
        "x": pa.array([x for _, _, x, _ in accepted], pa.float64()),
        "i": pa.array([i for _, _, _, i in accepted], pa.int64()),
    }
    result = view_records(feature_view, codes, ts, columns, until_ms)
    rows = [column.to_pylist() for column in result.values]
    return {
        (ENTITIES[int(e)], int(t)): (int(latest), [column[k] for column in rows])
        for k, (e, t, latest) in enumerate(
            zip(result.entity, result.event_ts_ms, result.latest_event_ts_ms, strict=True)
        )
    }


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


def check_equal(feature_view, accepted, until_ms):
    expected = core_final(feature_view, accepted, until_ms)
    got = vectorized_final(feature_view, accepted, until_ms)
    assert sorted(got) == sorted(expected)
    for key, (latest, row) in expected.items():
        assert got[key][0] == latest, key
        assert all(same(a, b) for a, b in zip(got[key][1], row, strict=True)), (key, got[key], row)


@settings(max_examples=300, deadline=None)
@given(events=events, length_slots=st.integers(1, 5), hop=st.sampled_from([7, 10, 25]))
def test_vectorized_records_equal_core_records(events, length_slots, hop):
    feature_view = view("v", f"{hop * length_slots}ms", f"{hop}ms", FEATURES)
    assert is_vectorized(feature_view, {"x": pa.float64(), "i": pa.int64()})
    until_ms = max(ts for _, ts, _, _ in events) + 5 * hop * length_slots
    check_equal(feature_view, events, until_ms)


@settings(max_examples=100, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(ENTITIES),
            st.integers(0, 400),
            st.one_of(st.none(), fractional),
            st.just(0),
        ),
        min_size=1,
        max_size=60,
    ),
    hop=st.sampled_from([7, 25]),
)
def test_vectorized_records_equal_core_for_fractions(events, hop):
    feature_view = view("v", f"{hop * 3}ms", f"{hop}ms", FEATURES)
    check_equal(feature_view, events, max(ts for _, ts, _, _ in events) + 4 * hop)


@settings(max_examples=200, deadline=None)
@given(
    numbers=st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=80),
    data=st.data(),
)
def test_range_sums_and_extremes_match_direct_ones(numbers, data):
    values = np.array(numbers)
    lo = np.array(data.draw(st.lists(st.integers(0, len(numbers)), min_size=1, max_size=20)))
    hi = np.array([data.draw(st.integers(int(low), len(numbers))) for low in lo])
    sums = range_sums(values, lo, hi)
    lows = range_extremes(values, lo, hi, np.minimum)
    for k, (low, high) in enumerate(zip(lo, hi, strict=True)):
        window = numbers[low:high]
        assert math.isclose(sums[k], math.fsum(window), rel_tol=1e-9, abs_tol=1e-3)
        if window:
            assert lows[k] == min(window)


def test_window_sum_after_large_value_is_precise():
    values = np.array([1e17, -1e17, 0.1, 0.2, 0.3])
    sums = range_sums(values, np.array([2, 3]), np.array([5, 5]))
    assert math.isclose(sums[0], 0.6, rel_tol=1e-15)
    assert math.isclose(sums[1], 0.5, rel_tol=1e-15)


def test_string_min_uses_core():
    feature_view = view("v", "10ms", None, [{"name": "m", "function": "min", "column": "s"}])
    assert not is_vectorized(feature_view, {"s": pa.string()})
    assert is_vectorized(feature_view, {"s": pa.int32()})
