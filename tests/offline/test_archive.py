"""The archive reader over files the sink's writer produces (no Kafka needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamfeat.errors import ConfigurationError
from streamfeat.offline import read_archive
from streamfeat.sink import ArchiveWriter, load_source_types
from tests.sink.factories import make_topology, plane_record, route_record

T10 = datetime(2025, 2, 3, 10, tzinfo=UTC)
TIMESTAMP_MS_UTC = "datetime64[ms, UTC]"


@pytest.fixture
def writer(tmp_path: Path) -> ArchiveWriter:
    topology = make_topology()
    return ArchiveWriter(
        topology, tmp_path, load_source_types(topology, Path(topology.schemas_dir))
    )


def test_batch_files_named_by_offsets(writer: ArchiveWriter, tmp_path: Path) -> None:
    records = [
        plane_record("N1", T10),
        plane_record("N1", T10 + timedelta(days=1)),
        route_record("JFK", "LAX", T10),
    ]

    paths = writer.write_batch(3, 1200, 1999, records)

    relative = sorted(str(path.relative_to(tmp_path)) for path in paths)
    assert relative == [
        "plane_stats/event_date=2025-02-03/p3-o000000001200-o000000001999.parquet",
        "plane_stats/event_date=2025-02-04/p3-o000000001200-o000000001999.parquet",
        "route_stats/event_date=2025-02-03/p3-o000000001200-o000000001999.parquet",
    ]
    assert not list(tmp_path.rglob(".*"))


def test_file_column_types(writer: ArchiveWriter) -> None:
    [path] = writer.write_batch(0, 0, 0, [plane_record("N1", T10, delay_max=None)])

    schema = pq.read_schema(path)

    assert schema.names == [
        "tailnum", "event_ts", "latest_event_ts", "available_at", "version",
        "n", "delay_sum", "delay_max", "last_carrier", "last_cancelled",
    ]  # fmt: skip
    assert schema.field("tailnum").type == pa.string()
    for name in ("event_ts", "latest_event_ts", "available_at"):
        assert schema.field(name).type == pa.timestamp("ms", tz="UTC")
    assert schema.field("version").type == pa.int32()
    assert schema.field("n").type == pa.int64()
    assert schema.field("delay_sum").type == pa.float64()
    assert schema.field("delay_max").type == pa.float64()
    assert schema.field("last_carrier").type == pa.string()
    assert schema.field("last_cancelled").type == pa.bool_()


def test_values_and_extreme_times_round_trip(writer: ArchiveWriter, tmp_path: Path) -> None:
    first = datetime(1, 1, 1, tzinfo=UTC)
    last = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    far = datetime(2580, 1, 1, tzinfo=UTC)
    writer.write_batch(
        0,
        0,
        2,
        [
            plane_record("N1", first, n=2**62, delay_sum=0.1, last_cancelled=True),
            plane_record("N2", last, latest=far, available_at=first, delay_max=None),
            plane_record("N3", far, delay_sum=None, last_carrier=None, last_cancelled=None),
        ],
    )

    frame = read_archive(tmp_path, "plane_stats")

    assert sorted(path.name for path in (tmp_path / "plane_stats").iterdir()) == [
        "event_date=0001-01-01",
        "event_date=2580-01-01",
        "event_date=9999-12-31",
    ]
    assert str(frame["event_ts"].dtype) == TIMESTAMP_MS_UTC
    assert list(frame["event_ts"]) == [pd.Timestamp(first), pd.Timestamp(last), pd.Timestamp(far)]
    assert frame["latest_event_ts"][1] == pd.Timestamp(far)
    assert frame["available_at"][1] == pd.Timestamp(first)
    assert frame["n"][0] == 2**62
    assert frame["delay_sum"][0] == 0.1
    assert pd.isna(frame["delay_sum"][2])
    assert pd.isna(frame["delay_max"][1])
    assert bool(frame["last_cancelled"][0]) is True
    assert pd.isna(frame["last_cancelled"][2])
    assert str(frame["n"].dtype) == "Int64"
    assert str(frame["last_cancelled"].dtype) == "boolean"
    assert pd.isna(frame["last_carrier"][2])
    assert list(frame["version"]) == [1, 1, 1]


def test_rewritten_batch_replaces_files(writer: ArchiveWriter, tmp_path: Path) -> None:
    records = [plane_record("N1", T10), plane_record("N2", T10)]
    [path] = writer.write_batch(0, 10, 11, records)
    original = path.read_bytes()

    [again] = writer.write_batch(0, 10, 11, records)

    assert again == path
    assert again.read_bytes() == original
    assert len(read_archive(tmp_path, "plane_stats")) == 2


def test_reproduced_record_counts_once(writer: ArchiveWriter, tmp_path: Path) -> None:
    produced = plane_record("N1", T10, available_at=T10 + timedelta(seconds=5))
    reproduced = plane_record("N1", T10, available_at=T10 + timedelta(minutes=9))
    corrected = plane_record("N1", T10, n=2, available_at=T10 + timedelta(hours=1))
    new_latest = plane_record(
        "N1", T10, latest=T10 - timedelta(minutes=1), available_at=T10 + timedelta(hours=2)
    )
    writer.write_batch(0, 0, 1, [corrected, reproduced])
    writer.write_batch(0, 2, 3, [produced, new_latest])

    frame = read_archive(tmp_path, "plane_stats")

    assert list(frame["available_at"]) == [
        pd.Timestamp(T10 + timedelta(seconds=5)),
        pd.Timestamp(T10 + timedelta(hours=1)),
        pd.Timestamp(T10 + timedelta(hours=2)),
    ]
    assert list(frame["n"]) == [1, 2, 1]


def test_value_restored_after_a_correction_stays_newest(
    writer: ArchiveWriter, tmp_path: Path
) -> None:
    first = plane_record("N1", T10, n=1, available_at=T10 + timedelta(minutes=1))
    corrected = plane_record("N1", T10, n=2, available_at=T10 + timedelta(minutes=2))
    restored = plane_record("N1", T10, n=1, available_at=T10 + timedelta(minutes=3))
    writer.write_batch(0, 0, 0, [first])
    writer.write_batch(0, 1, 1, [corrected])
    writer.write_batch(0, 2, 2, [restored])

    frame = read_archive(tmp_path, "plane_stats")

    assert list(frame["n"]) == [1, 2, 1]
    assert frame["available_at"].iloc[-1] == pd.Timestamp(T10 + timedelta(minutes=3))


def test_rows_sorted_by_entity_and_times(writer: ArchiveWriter, tmp_path: Path) -> None:
    writer.write_batch(
        0,
        0,
        3,
        [
            plane_record("N2", T10),
            plane_record("N1", T10 + timedelta(hours=1)),
            plane_record("N1", T10, n=2, available_at=T10 + timedelta(hours=5)),
            plane_record("N1", T10, n=1, available_at=T10),
        ],
    )

    frame = read_archive(tmp_path, "plane_stats")

    assert list(frame["tailnum"]) == ["N1", "N1", "N1", "N2"]
    assert list(frame["n"]) == [1, 2, 1, 1]
    assert list(frame["event_ts"])[2] == pd.Timestamp(T10 + timedelta(hours=1))


def test_time_range_half_open_and_pruned(writer: ArchiveWriter, tmp_path: Path) -> None:
    day = timedelta(days=1)
    writer.write_batch(
        0,
        0,
        2,
        [plane_record("N1", T10 - day), plane_record("N1", T10), plane_record("N1", T10 + day)],
    )
    # A broken file in a date folder outside the range proves that folder is never opened.
    (tmp_path / "plane_stats/event_date=2025-02-02/p9-o0-o0.parquet").write_bytes(b"broken")

    frame = read_archive(tmp_path, "plane_stats", start=T10, end=T10 + day)
    at_start_only = read_archive(
        tmp_path, "plane_stats", start=T10, end=T10 + timedelta(milliseconds=1)
    )
    none = read_archive(
        tmp_path, "plane_stats", start=T10 + timedelta(milliseconds=1), end=T10 + day
    )

    assert list(frame["event_ts"]) == [pd.Timestamp(T10)]
    assert len(at_start_only) == 1
    assert none.empty
    assert "tailnum" in none.columns


def test_composite_entity_columns(writer: ArchiveWriter, tmp_path: Path) -> None:
    writer.write_batch(0, 0, 1, [route_record("LGA", "ORD", T10), route_record("JFK", "LAX", T10)])

    frame = read_archive(tmp_path, "route_stats")

    assert list(frame.columns[:2]) == ["origin", "dest"]
    assert list(zip(frame["origin"], frame["dest"], strict=True)) == [
        ("JFK", "LAX"),
        ("LGA", "ORD"),
    ]


def test_mixed_file_schemas_read_together(tmp_path: Path) -> None:
    writer = ArchiveWriter(make_topology(), tmp_path)  # no schemas: types come from values
    old = plane_record("N1", T10, delay_max=None)
    newer = plane_record("N1", T10 + timedelta(hours=1), delay_max=7.5, version=2)
    newer.values["added_in_v2"] = 3
    writer.write_batch(0, 0, 0, [old])
    writer.write_batch(0, 1, 1, [newer])

    frame = read_archive(tmp_path, "plane_stats")

    assert list(frame["version"]) == [1, 2]
    assert pd.isna(frame["delay_max"][0])
    assert frame["delay_max"][1] == 7.5
    assert pd.isna(frame["added_in_v2"][0])
    assert frame["added_in_v2"][1] == 3


def test_archive_opens_in_duckdb(writer: ArchiveWriter, tmp_path: Path) -> None:
    writer.write_batch(
        0, 0, 1, [plane_record("N1", T10), plane_record("N1", T10 + timedelta(days=1))]
    )
    writer.write_batch(0, 2, 2, [plane_record("N2", T10, delay_max=None, last_carrier=None)])
    writer.write_batch(0, 3, 3, [plane_record("N3", datetime(1, 1, 1, tzinfo=UTC))])

    rows = duckdb.sql(
        f"select tailnum, event_date, event_ts, n, delay_max, last_carrier from read_parquet("
        f"'{tmp_path}/plane_stats/*/*.parquet', hive_partitioning=true) order by tailnum, event_ts"
    ).fetchall()

    assert [(row[0], str(row[1]), row[3], row[4], row[5]) for row in rows] == [
        ("N1", "2025-02-03", 1, 5.0, "UA"),
        ("N1", "2025-02-04", 1, 5.0, "UA"),
        ("N2", "2025-02-03", 1, None, None),
        ("N3", "0001-01-01", 1, 5.0, "UA"),
    ]
    assert rows[3][2] == datetime(1, 1, 1, tzinfo=UTC)


def test_unknown_view_names_archived_views(writer: ArchiveWriter, tmp_path: Path) -> None:
    writer.write_batch(0, 0, 0, [plane_record("N1", T10)])

    with pytest.raises(ConfigurationError, match=r"'planes'.*views archived there: plane_stats"):
        read_archive(tmp_path, "planes")


def test_naive_bound_is_an_error(writer: ArchiveWriter, tmp_path: Path) -> None:
    writer.write_batch(0, 0, 0, [plane_record("N1", T10)])

    with pytest.raises(ConfigurationError, match="start 2025-02-03T00:00:00 has no time zone"):
        read_archive(tmp_path, "plane_stats", start=datetime(2025, 2, 3))
