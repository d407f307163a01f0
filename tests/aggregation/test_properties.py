"""Property tests of the core against brute force from the window definition.

Value as of t covers the accepted events with e - W <= ts <= t, where e = floor(t / h) * h + h;
null before the entity's first event; count 0 and null for the rest in an empty window.
"""

import math
import statistics

import datasketches
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat.aggregation.partials import HLL_LG_K, KLL_K
from streamfeat.aggregation.replay import PartitionReplay
from streamfeat.aggregation.view import ViewAggregator
from tests.aggregation.harness import view

FEATURES = [
    {"name": "n", "function": "count"},
    {"name": "n_x", "function": "count", "column": "x"},
    {"name": "total", "function": "sum", "column": "x"},
    {"name": "avg", "function": "mean", "column": "x"},
    {"name": "low", "function": "min", "column": "x"},
    {"name": "high", "function": "max", "column": "x"},
    {"name": "latest", "function": "last", "column": "x"},
    {"name": "var", "function": "variance", "column": "x"},
    {"name": "sd", "function": "stddev", "column": "x"},
]

values = st.one_of(st.none(), st.integers(-1000, 1000))
events = st.lists(st.tuples(st.integers(0, 400), values), min_size=1, max_size=40)


def brute_force(window_events, events_seen):
    """Feature values from the definitions, over the (ts, seq, x) events in the window."""
    if not events_seen:
        return None
    xs = [x for _, _, x in window_events if x is not None]
    latest = max(((ts, seq, x) for ts, seq, x in window_events if x is not None), default=None)
    return [
        len(window_events),
        len(xs),
        float(sum(xs)) if xs else None,
        sum(xs) / len(xs) if xs else None,
        min(xs) if xs else None,
        max(xs) if xs else None,
        latest[2] if latest else None,
        statistics.variance(xs) if len(xs) >= 2 else None,
        statistics.stdev(xs) if len(xs) >= 2 else None,
    ]


def same(got, expected):
    if expected is None or got is None:
        return got is None and expected is None
    for g, e in zip(got, expected, strict=True):
        if e is None or g is None:
            if not (e is None and g is None):
                return False
        elif not math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-9):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(events=events, length_slots=st.integers(1, 5), hop=st.sampled_from([7, 10, 25]))
def test_stream_values_equal_brute_force(events, length_slots, hop):
    length = hop * length_slots
    replay = PartitionReplay(
        [view("v", f"{length}ms", f"{hop}ms", FEATURES)], allowed_lateness_ms=10_000
    )
    final = {}
    accepted = []
    for seq, (ts, x) in enumerate(events, start=1):
        emitted = replay.offer(ts, {"x": x}, {"v": ("k",)})
        accepted.append((ts, seq, x))
        for item in emitted:
            final[item.emission.event_ts_ms] = item.emission.values
    for item in replay.offer(10**9, {"x": None}, {"v": ("zz",)}):
        if item.entity == ("k",):
            final[item.emission.event_ts_ms] = item.emission.values
    records = sorted(final.items())
    for t in range(0, 401 + length):
        e = (t // hop) * hop + hop
        window = [ev for ev in accepted if e - length <= ev[0] <= t]
        expected = brute_force(window, [ev for ev in accepted if ev[0] <= t])
        before = [values for ts, values in records if ts <= t]
        got = before[-1] if before else None
        assert same(got, expected), (t, got, expected)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 1000), values), min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=5),
)
def test_merging_partials_in_any_grouping_equals_one_pass(rows, cuts):
    aggregator = ViewAggregator(view("v", "1h", None, FEATURES))
    one_pass = aggregator.empty()
    for seq, (ts, x) in enumerate(rows):
        aggregator.add(one_pass, {"x": x}, ts, seq)
    bounds = sorted({0, len(rows), *[c for c in cuts if c <= len(rows)]})
    merged = aggregator.empty()
    for start, stop in zip(bounds, bounds[1:], strict=False):
        part = aggregator.empty()
        for seq in range(start, stop):
            ts, x = rows[seq]
            aggregator.add(part, {"x": x}, ts, seq)
        aggregator.merge_into(merged, part)
    assert same(aggregator.values(merged), aggregator.values(one_pass))


def test_distinct_count_stays_within_three_standard_errors():
    aggregator = ViewAggregator(
        view(
            "v",
            "1h",
            None,
            [
                {"name": "d", "function": "distinct_count", "column": "x"},
            ],
        )
    )
    relative_error = 1.04 / math.sqrt(2**HLL_LG_K)
    for size in (10, 1_000, 50_000):
        halves = [aggregator.empty(), aggregator.empty()]
        for i in range(size):
            aggregator.add(halves[i % 2], {"x": f"user-{i}"}, i, i)
            aggregator.add(halves[(i + 1) % 2], {"x": f"user-{i}"}, i, i)
        aggregator.merge_into(halves[0], halves[1])
        estimate = aggregator.values(halves[0])[0]
        assert abs(estimate - size) <= 3 * relative_error * size + 1, (size, estimate)


def test_percentile_rank_error_within_kll_bound():
    aggregator = ViewAggregator(
        view(
            "v",
            "1h",
            None,
            [
                {"name": "p90", "function": "percentile", "column": "x", "quantile": 0.9},
            ],
        )
    )
    rank_error = datasketches.kll_doubles_sketch.get_normalized_rank_error(KLL_K, False)
    parts = [aggregator.empty() for _ in range(4)]
    size = 20_000
    for i in range(size):
        value = (i * 7919) % size
        aggregator.add(parts[i % 4], {"x": value}, i, i)
    for part in parts[1:]:
        aggregator.merge_into(parts[0], part)
    estimate = aggregator.values(parts[0])[0]
    rank = estimate / size
    assert abs(rank - 0.9) <= rank_error, (estimate, rank_error)
