"""Backfill: records from historical events, with local times read in the declared zone."""

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfeat.definitions.models import Topology
from streamfeat.errors import ConfigurationError
from streamfeat.offline.archive import read_archive
from streamfeat.offline.backfill import backfill
from streamfeat.offline.training_set import training_set
from tests.aggregation.harness import ms

NOW = lambda: ms("2027-01-01T00:00:00.000Z")  # noqa: E731  a processing clock after every event here

SCHEMA = {
    "type": "record",
    "name": "Trip",
    "namespace": "test",
    "fields": [
        {"name": "route", "type": ["null", "string"], "default": None},
        {"name": "local_time", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    ],
}


def wall_ms(text):
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def setup(tmp_path, zone, views):
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "trip.avsc").write_text(json.dumps(SCHEMA))
    topology = Topology.model_validate(
        {
            "name": "bf",
            "entities": [{"name": "route", "join_keys": ["route"]}],
            "sources": [
                {
                    "name": "trips",
                    "topic": "trips",
                    "schema": "trip.avsc",
                    "event_time": {"field": "local_time", "zone": zone},
                }
            ],
            "feature_views": [
                {
                    "name": name,
                    "entity": "route",
                    "source": "trips",
                    "window": window,
                    "features": [{"name": "n", "function": "count"}],
                }
                for name, window in views.items()
            ],
        }
    )
    return topology, schemas


def write_events(path, rows):
    pq.write_table(
        pa.Table.from_pylist(
            [{"route": route, "local_time": wall_ms(local)} for route, local in rows]
        ),
        path,
    )


def counts(topology, archive, view, entity, times):
    import pandas as pd

    labels = pd.DataFrame(
        {
            "route": [entity] * len(times),
            "event_timestamp": pd.to_datetime(times, utc=True, format="ISO8601"),
        }
    )
    result = training_set(labels, topology, archive, features=[view])
    return [None if pd.isna(v) else int(v) for v in result[f"{view}__n"]]


def test_spring_gap_and_autumn_overlap_follow_fold_zero(tmp_path):
    topology, schemas = setup(
        tmp_path,
        "America/New_York",
        {"daily_local": {"length": "1d"}, "hourly_local": {"length": "1h"}},
    )
    events = tmp_path / "events.parquet"
    write_events(
        events,
        [
            ("k", "2026-03-07T23:30:00"),
            ("k", "2026-03-08T02:30:00"),
            ("k", "2026-03-08T03:30:00"),
            ("k", "2026-11-01T01:30:00"),
            ("k", "2026-11-01T01:30:00"),
            ("zz-0", "2026-11-02T00:00:00"),
        ],
    )
    stats = backfill(topology, "trips", events, tmp_path / "archive", schemas, clock=NOW)
    assert stats.accepted == 6
    times = [
        "2026-03-08T04:30:00Z",
        "2026-03-08T07:29:59.999Z",
        "2026-03-08T07:30:00Z",
        "2026-03-08T08:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z",
    ]
    archive = tmp_path / "archive"
    assert counts(topology, archive, "daily_local", "k", times) == [1, 1, 3, 3, 2, 2, 2]
    assert counts(topology, archive, "hourly_local", "k", times) == [1, None, 2, 0, 2, 0, 0]


def test_local_midnight_keeps_the_instant_and_utc_days(tmp_path):
    topology, schemas = setup(tmp_path, "Europe/Budapest", {"signed_1d": {"length": "1d"}})
    events = tmp_path / "events.parquet"
    write_events(
        events,
        [
            ("e3", "1977-09-05T00:00:00"),
            ("e1", "1999-11-20T00:00:00"),
            ("e4", "2001-01-01T00:00:00"),
            ("e2", "2003-02-10T00:00:00"),
            ("e5", "2006-07-15T00:00:00"),
            ("zz-0", "2006-07-16T12:00:00"),
        ],
    )
    backfill(topology, "trips", events, tmp_path / "archive", schemas, clock=NOW)
    archive = tmp_path / "archive"
    assert counts(
        topology,
        archive,
        "signed_1d",
        "e1",
        [
            "1999-11-19T22:59:59.999Z",
            "1999-11-19T23:00:00Z",
            "1999-11-19T23:59:59.999Z",
            "1999-11-20T00:00:00Z",
        ],
    ) == [None, 1, 1, 0]
    assert counts(
        topology,
        archive,
        "signed_1d",
        "e5",
        [
            "2006-07-14T22:00:00Z",
            "2006-07-14T23:59:59.999Z",
            "2006-07-15T00:00:00Z",
        ],
    ) == [1, 1, 0]
    records = read_archive(archive, "signed_1d")
    first_e1 = records[records["route"] == "e1"].iloc[0]
    assert first_e1["event_ts"] == datetime(1999, 11, 19, 23, tzinfo=UTC)
    assert (archive / "signed_1d" / "event_date=1999-11-19").is_dir()


def test_backfill_rejects_missing_keys_and_reruns_write_the_same_files(tmp_path):
    topology, schemas = setup(tmp_path, "UTC", {"hourly": {"length": "1h"}})
    events = tmp_path / "events.parquet"
    write_events(
        events,
        [
            ("a", "2025-02-03T10:00:00"),
            (None, "2025-02-03T10:01:00"),
            ("", "2025-02-03T10:02:00"),
            ("0", "2025-02-03T10:03:00"),
        ],
    )
    first = backfill(topology, "trips", events, tmp_path / "archive", schemas, clock=NOW)
    files = sorted(p.name for p in (tmp_path / "archive").rglob("*.parquet"))
    second = backfill(topology, "trips", events, tmp_path / "archive", schemas, clock=NOW)
    assert first.rejected == {("hourly", "missing_key"): 2}
    assert sorted(p.name for p in (tmp_path / "archive").rglob("*.parquet")) == files
    assert second.records == first.records
    assert len(read_archive(tmp_path / "archive", "hourly")) == first.records


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_backfill_reads_csv_and_parquet(tmp_path, suffix):
    topology, schemas = setup(tmp_path, "UTC", {"hourly": {"length": "1h"}})
    events = tmp_path / f"events{suffix}"
    rows = [
        {"route": "a", "local_time": wall_ms("2025-02-03T10:00:00")},
        {"route": "a", "local_time": wall_ms("2025-02-03T10:30:00")},
    ]
    if suffix == ".csv":
        events.write_text(
            "route,local_time\n" + "".join(f"{r['route']},{r['local_time']}\n" for r in rows)
        )
    else:
        pq.write_table(pa.Table.from_pylist(rows), events)
    stats = backfill(topology, "trips", events, tmp_path / "archive", schemas, clock=NOW)
    assert stats.accepted == 2
    assert counts(topology, tmp_path / "archive", "hourly", "a", ["2025-02-03T10:30:00Z"]) == [2]
    assert ms("2025-02-03T10:30:00.000Z") > 0


def test_events_file_without_event_time_column_is_an_error(tmp_path):
    topology, schemas = setup(tmp_path, "UTC", {"hourly": {"length": "1h"}})
    events = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist([{"route": "a", "when": 1}]), events)
    with pytest.raises(ConfigurationError, match="no column local_time"):
        backfill(topology, "trips", events, tmp_path / "archive", schemas, clock=NOW)


RICH_SCHEMA = {
    "type": "record",
    "name": "Ride",
    "namespace": "test",
    "fields": [
        {"name": "ride_id", "type": ["null", "string"], "default": None},
        {"name": "route", "type": ["null", "string"], "default": None},
        {"name": "driver", "type": ["null", "string"], "default": None},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "fare", "type": ["null", "double"], "default": None},
    ],
}


def rich_setup(tmp_path, features=None):
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "ride.avsc").write_text(json.dumps(RICH_SCHEMA))
    features = features or [{"name": "n", "function": "count"}]
    topology = Topology.model_validate(
        {
            "name": "rides",
            "entities": [
                {"name": "route", "join_keys": ["route"]},
                {"name": "driver", "join_keys": ["driver"]},
            ],
            "sources": [
                {
                    "name": "rides",
                    "topic": "rides",
                    "schema": "ride.avsc",
                    "event_time": {"field": "at"},
                    "event_id": "ride_id",
                    "allowed_lateness": "1m",
                    "constraints": {"ranges": {"fare": {"min": 0}}},
                }
            ],
            "feature_views": [
                {
                    "name": "by_route",
                    "entity": "route",
                    "source": "rides",
                    "window": {"length": "1h", "hop": "10m"},
                    "features": features,
                },
                {
                    "name": "by_driver",
                    "entity": "driver",
                    "source": "rides",
                    "window": {"length": "1h"},
                    "features": [{"name": "n", "function": "count"}],
                },
            ],
        }
    )
    return topology, schemas


def ride(ride_id, route, driver, iso, fare=1.0):
    return {"ride_id": ride_id, "route": route, "driver": driver, "at": ms(iso), "fare": fare}


def test_rejections_counted_in_reason_order(tmp_path, caplog):
    topology, schemas = rich_setup(tmp_path)
    events = tmp_path / "events.parquet"
    rows = [
        ride("r1", "a", "d1", "2025-02-03T10:00:00.000Z"),
        ride("r2", None, None, "2025-02-03T10:01:00.000Z"),
        ride("r3", "a", None, "2025-02-03T10:02:00.000Z"),
        ride("r4", "a", "d1", "2025-02-03T10:03:00.000Z", fare=-1.0),
        ride("r5", "a", "d1", "2025-02-03T10:04:00.000Z", fare=float("nan")),
        ride("r1", "a", "d1", "2025-02-03T10:05:00.000Z"),
        ride("r6", "a", "d1", "2025-02-03T09:00:00.000Z"),
        ride("r7", "a", "d1", "1969-12-31T23:59:59.999Z"),
        ride("r8", "b", "d2", "2025-02-03T10:06:00.000Z"),
    ]
    pq.write_table(pa.Table.from_pylist(rows), events)
    with caplog.at_level("WARNING", logger="streamfeat.offline.backfill"):
        stats = backfill(topology, "rides", events, tmp_path / "archive", schemas, clock=NOW)
    assert stats.events == 9
    assert stats.accepted == 3
    assert list(stats.rejected.items()) == [
        (("by_route", "missing_key"), 1),
        (("by_driver", "missing_key"), 2),
        (("by_route", "out_of_range"), 1),
        (("by_driver", "out_of_range"), 1),
        (("by_route", "not_finite"), 1),
        (("by_driver", "not_finite"), 1),
        (("by_route", "constraint"), 1),
        (("by_driver", "constraint"), 1),
        (("by_route", "duplicate"), 1),
        (("by_driver", "duplicate"), 1),
        (("by_route", "late"), 1),
        (("by_driver", "late"), 1),
    ]
    assert "reason=constraint events=1 views=by_route,by_driver first_row=3" in caplog.text
    assert "reason=late events=1 views=by_route,by_driver first_row=6" in caplog.text


def test_unvectorized_view_replays_through_core(tmp_path):
    features = [
        {"name": "n", "function": "count"},
        {"name": "spread", "function": "stddev", "column": "fare"},
        {"name": "top", "function": "max", "column": "fare"},
    ]
    topology, schemas = rich_setup(tmp_path, features)
    events = tmp_path / "events.parquet"
    rows = [
        ride("r1", "a", "d1", "2025-02-03T10:00:00.000Z", fare=2.0),
        ride("r2", "a", None, "2025-02-03T10:20:00.000Z", fare=4.0),
        ride("r3", "b", "d1", "2025-02-03T10:25:00.000Z", fare=9.0),
        ride("r4", "a", "d2", "2025-02-03T12:00:00.000Z", fare=None),
    ]
    pq.write_table(pa.Table.from_pylist(rows), events)
    backfill(topology, "rides", events, tmp_path / "archive", schemas, clock=NOW)
    records = read_archive(tmp_path / "archive", "by_route")
    route_a = records[records["route"] == "a"]
    at = {row.event_ts.isoformat(): (row.n, row.spread, row.top) for row in route_a.itertuples()}
    assert at["2025-02-03T10:00:00+00:00"][0] == 1
    assert at["2025-02-03T10:20:00+00:00"][0] == 2
    assert at["2025-02-03T10:20:00+00:00"][1] == pytest.approx(2.0**0.5)
    assert at["2025-02-03T10:20:00+00:00"][2] == 4.0
    assert at["2025-02-03T11:00:00+00:00"][0] == 1
    assert at["2025-02-03T11:20:00+00:00"][0] == 0
    assert sorted(at) == [
        "2025-02-03T10:00:00+00:00",
        "2025-02-03T10:20:00+00:00",
        "2025-02-03T11:00:00+00:00",
        "2025-02-03T11:20:00+00:00",
        "2025-02-03T12:00:00+00:00",
    ]


def test_csv_empty_cells_and_bad_values(tmp_path):
    topology, schemas = rich_setup(tmp_path)
    events = tmp_path / "events.csv"
    at = ms("2025-02-03T10:00:00.000Z")
    events.write_text(f"ride_id,route,driver,at,fare\nr1,a,,{at},\nr2,,,{at + 1},2.5\n")
    stats = backfill(topology, "rides", events, tmp_path / "archive", schemas, clock=NOW)
    assert stats.accepted == 1
    assert dict(stats.rejected) == {("by_route", "missing_key"): 1, ("by_driver", "missing_key"): 2}
    events.write_text(f"ride_id,route,driver,at,fare\nr1,a,d,{at},cheap\n")
    with pytest.raises(ConfigurationError, match="does not fit its field's type"):
        backfill(topology, "rides", events, tmp_path / "archive2", schemas, clock=NOW)


def test_archive_has_one_file_per_view_and_date(tmp_path):
    topology, schemas = rich_setup(tmp_path)
    events = tmp_path / "events.parquet"
    rows = [
        ride("r1", "a", "d1", "2025-02-03T23:30:00.000Z"),
        ride("r2", "a", "d2", "2025-02-04T00:30:00.000Z"),
        ride("r3", "b", "d1", "2025-02-05T12:00:00.000Z"),
    ]
    pq.write_table(pa.Table.from_pylist(rows), events)
    archive = tmp_path / "archive"
    stats = backfill(topology, "rides", events, archive, schemas, clock=NOW)
    files = sorted(str(path.relative_to(archive).parent) for path in archive.rglob("*.parquet"))
    assert files == [
        "by_driver/event_date=2025-02-03",
        "by_driver/event_date=2025-02-04",
        "by_driver/event_date=2025-02-05",
        "by_route/event_date=2025-02-03",
        "by_route/event_date=2025-02-04",
        "by_route/event_date=2025-02-05",
    ]
    assert stats.files == len(files)
    assert not [path for path in archive.rglob(".*")]


def test_unwritable_archive_raises_os_error(tmp_path):
    topology, schemas = rich_setup(tmp_path)
    events = tmp_path / "events.parquet"
    pq.write_table(
        pa.Table.from_pylist([ride("r1", "a", "d1", "2025-02-03T10:00:00.000Z")]), events
    )
    archive = tmp_path / "archive"
    archive.write_text("not a folder")
    with pytest.raises(OSError):
        backfill(topology, "rides", events, archive, schemas, clock=NOW)


def test_empty_events_file_writes_nothing(tmp_path):
    topology, schemas = rich_setup(tmp_path)
    events = tmp_path / "events.parquet"
    empty = pa.Table.from_pylist([ride("r1", "a", "d1", "2025-02-03T10:00:00.000Z")]).slice(0, 0)
    pq.write_table(empty, events)
    stats = backfill(topology, "rides", events, tmp_path / "archive", schemas, clock=NOW)
    assert (stats.events, stats.accepted, stats.records, stats.files) == (0, 0, 0, 0)
    assert not stats.rejected


def test_dictionary_columns_are_checked_by_value(tmp_path):
    topology, schemas = rich_setup(tmp_path)
    events = tmp_path / "events.parquet"
    rows = [
        ride("r1", "a", "d1", "2025-02-03T10:00:00.000Z", fare=float("nan")),
        ride("r2", "a", "d1", "2025-02-03T10:01:00.000Z", fare=2.0),
    ]
    table = pa.Table.from_pylist(rows)
    for name in ("route", "fare"):
        index = table.column_names.index(name)
        table = table.set_column(index, name, table.column(name).dictionary_encode())
    pq.write_table(table, events)
    stats = backfill(topology, "rides", events, tmp_path / "archive", schemas, clock=NOW)
    assert stats.accepted == 1
    assert stats.rejected[("by_route", "not_finite")] == 1
