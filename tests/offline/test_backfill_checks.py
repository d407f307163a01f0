"""The backfill's columnar checks give every row the verdict the router gives the same event.

The reference is the scalar path the worker runs: ``EventChecker`` on each decoded event, then
duplicates and lateness against one partition's clock, in delivery order.
"""

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat.aggregation.clock import PartitionClock
from streamfeat.definitions.models import Source
from streamfeat.offline._acceptance import judge_order
from streamfeat.offline._events import event_times_ms
from streamfeat.quality.checks import EventChecker
from streamfeat.quality.reasons import Reason
from streamfeat.quality.vectorized import ACCEPTED, REASONS, ColumnChecker, key_text
from streamfeat.serialization import SchemaStore
from streamfeat.serialization.event_time import EventTimeReader

PROCESSING_MS = 1_700_000_000_000
LATENESS_MS = 50
MEMORY_MS = 200
VIEW_KEYS = {"by_route": ["route"], "by_pair": ["route", "gate"], "by_gate": ["gate"]}

SOURCE = Source.model_validate(
    {
        "name": "trips",
        "topic": "trips",
        "schema": "trip.avsc",
        "event_time": {"field": "t"},
        "event_id": "trip_id",
        "allowed_lateness": timedelta(milliseconds=LATENESS_MS),
        "valid_range": {"start": datetime(2000, 1, 1, tzinfo=UTC)},
        "constraints": {
            "required": ["kind"],
            "ranges": {"score": {"min": -1.5, "max": 10}, "level": {"min": 0.5}},
            "allowed_values": {"kind": ["a", "b"], "level": [1, 2, 3, 100]},
            "max_length": {"route": 3},
        },
    }
)
START_MS = 946_684_800_000

rows = st.fixed_dictionaries(
    {
        "route": st.sampled_from([None, "", "0", "a", "bb", "long"]),
        "gate": st.one_of(st.none(), st.integers(-1, 2)),
        "t": st.one_of(
            st.none(),
            st.integers(START_MS - 5, START_MS + 400),
            st.just(PROCESSING_MS + 86_400_001),
        ),
        "score": st.one_of(
            st.none(), st.sampled_from([math.nan, math.inf, -math.inf, -2.0, -1.5, 3.0, 10.5])
        ),
        "level": st.one_of(st.none(), st.sampled_from([0, 1, 2, 7, 100])),
        "kind": st.sampled_from([None, "a", "b", "c"]),
        "trip_id": st.one_of(st.none(), st.sampled_from(["x", "y", "z", "w"])),
    }
)
TYPES = pa.schema(
    [
        ("route", pa.string()),
        ("gate", pa.int64()),
        ("t", pa.int64()),
        ("score", pa.float64()),
        ("level", pa.int32()),
        ("kind", pa.string()),
        ("trip_id", pa.string()),
    ]
)


def scalar_verdicts(events):
    """Reason per row (None when accepted) and views without a key, as the router judges them."""
    checker = EventChecker(SOURCE, VIEW_KEYS)
    clock = PartitionClock(LATENESS_MS, 30_000)
    remembered = {}
    verdicts = []
    for event in events:
        event_ms = event["t"]
        verdict = checker.check(event, event_ms, PROCESSING_MS)
        if verdict.reason is not None or event_ms is None:
            verdicts.append((verdict.reason or Reason.OUT_OF_RANGE, ()))
            continue
        event_id = event["trip_id"]
        if event_id is not None:
            seen_ms = remembered.get(event_id)
            watermark = clock.watermark_ms
            if seen_ms is not None and (watermark is None or watermark < seen_ms + MEMORY_MS):
                verdicts.append((Reason.DUPLICATE, ()))
                continue
            if not clock.is_late(event_ms):
                remembered[event_id] = event_ms
        if clock.is_late(event_ms):
            verdicts.append((Reason.LATE, ()))
            continue
        clock.accept(event_ms)
        verdicts.append((None, verdict.missing_key_views))
    return verdicts


def columnar_verdicts(events):
    table = pa.Table.from_pylist(events, schema=TYPES)
    times = table.column("t").combine_chunks()
    verdicts = ColumnChecker(SOURCE, VIEW_KEYS).check(table, times, PROCESSING_MS)
    ts = np.asarray(times.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    ids = key_text(table.column("trip_id")).combine_chunks()
    acceptance = judge_order(ts, verdicts.reasons == ACCEPTED, ids, LATENESS_MS, MEMORY_MS)
    result = []
    for row, code in enumerate(verdicts.reasons.tolist()):
        if acceptance.duplicate[row]:
            result.append((Reason.DUPLICATE, ()))
        elif acceptance.late[row]:
            result.append((Reason.LATE, ()))
        elif code != ACCEPTED:
            result.append((REASONS[code], ()))
        else:
            missing = tuple(v for v in VIEW_KEYS if not verdicts.has_key[v][row])
            result.append((None, missing))
    return result


@settings(max_examples=400, deadline=None)
@given(events=st.lists(rows, min_size=1, max_size=40))
def test_columnar_verdicts_equal_scalar_ones(events):
    assert columnar_verdicts(events) == scalar_verdicts(events)


def test_first_reason_in_order_wins():
    bad_everything = {
        "route": "long",
        "gate": None,
        "t": START_MS - 1,
        "score": math.nan,
        "level": 7,
        "kind": None,
        "trip_id": None,
    }
    no_key = {**bad_everything, "route": None}
    assert [r for r, _ in columnar_verdicts([bad_everything, no_key])] == [
        Reason.OUT_OF_RANGE,
        Reason.MISSING_KEY,
    ]


def test_duplicate_forgotten_after_id_memory():
    base = {"route": "a", "gate": 1, "score": 1.0, "level": 1, "kind": "a"}
    events = [
        {**base, "t": START_MS, "trip_id": "x"},
        {**base, "t": START_MS + 100, "trip_id": "x"},
        {**base, "t": START_MS + 300, "trip_id": None},
        {**base, "t": START_MS + 260, "trip_id": "x"},
    ]
    assert [r for r, _ in columnar_verdicts(events)] == [None, Reason.DUPLICATE, None, None]


ZONES = ["America/New_York", "Europe/Budapest", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]


def local_source(tmp_path, zone):
    schema = {
        "type": "record",
        "name": "Stamp",
        "fields": [
            {"name": "t", "type": {"type": "long", "logicalType": "local-timestamp-millis"}}
        ],
    }
    (tmp_path / "stamp.avsc").write_text(json.dumps(schema))
    stored = SchemaStore.from_dir(tmp_path).for_file("stamp.avsc")
    source = Source.model_validate(
        {
            "name": "s",
            "topic": "s",
            "schema": "stamp.avsc",
            "event_time": {"field": "t", "zone": zone},
        }
    )
    return source, stored


def test_local_times_match_scalar_reader(tmp_path):
    rng = np.random.default_rng(7)
    years = [datetime(y, 1, 1, tzinfo=UTC) for y in (1, 1890, 1945, 1970, 2013, 2026, 2040, 9999)]
    starts = [int(moment.timestamp() * 1000) for moment in years]
    walls = np.concatenate(
        [start + rng.integers(0, 366 * 86_400_000, 1_000) for start in starts]
        + [np.arange(starts[4], starts[4] + 366 * 86_400_000, 7 * 60_000 + 13)]
    )
    walls = np.concatenate([walls, [-62_135_596_800_001, 253_402_300_800_000]])
    for zone in ZONES:
        source, stored = local_source(tmp_path, zone)
        reader = EventTimeReader(source, stored)
        table = pa.table({"t": pa.array(walls, pa.int64())})
        got = event_times_ms(table, source, stored).to_pylist()
        expected = [reader.read_ms({"t": int(wall)}) for wall in walls]
        mismatches = [
            (int(w), g, e) for w, g, e in zip(walls, got, expected, strict=True) if g != e
        ]
        assert not mismatches, (zone, mismatches[:5])
