"""The archive sink against the real local broker: files, offsets, re-runs and crash leftovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamfeat.admin.offsets import committed_offsets
from streamfeat.definitions.models import Topology
from streamfeat.featurelog.codec import encode_record
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.offline import read_archive
from streamfeat.sink import ArchiveSink, ArchiveWriter, SinkStats, load_source_types
from streamfeat.sink.runner import sink_group
from tests.sink.conftest import produce
from tests.sink.factories import ms, plane_record, route_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

T10 = datetime(2025, 2, 3, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
PLANES = [
    plane_record("N1", T10 + HOUR * i, n=i + 1, available_at=T10 + HOUR * i) for i in range(7)
]
MIXED = [
    route_record("JFK", "LAX", T10),
    route_record("JFK", "LAX", T10 + HOUR, n=2),
    plane_record("N2", T10 - timedelta(days=40)),
    route_record("LGA", "ORD", T10),
    plane_record("N2", datetime(2580, 1, 1, tzinfo=UTC), delay_max=None),
]


def run_sink(topology: Topology, archive: Path, bootstrap: str, max_records: int) -> SinkStats:
    sink = ArchiveSink(
        topology,
        archive,
        bootstrap_servers=bootstrap,
        source_types=load_source_types(topology, Path(topology.schemas_dir)),
        max_records=max_records,
    )
    return sink.run(until_idle=timedelta(seconds=2))


def produce_all(bootstrap: str, topology: Topology) -> None:
    produce(bootstrap, topology.feature_log, PLANES, partition=0)
    produce(bootstrap, topology.feature_log, MIXED, partition=1)


def archive_files(archive: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(archive)): path.read_bytes() for path in archive.rglob("*.parquet")
    }


def stored_rows(archive: Path) -> int:
    """Count rows in every file, without the reader's merging of repeats."""
    return sum(pq.read_metadata(path).num_rows for path in archive.rglob("*.parquet"))


def committed(bootstrap: str, topology: Topology, archive: Path) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": sink_group(topology, archive)})
    try:
        partitions = [TopicPartition(topology.feature_log, p) for p in (0, 1)]
        return [tp.offset for tp in committed_offsets(consumer, partitions, 30)]
    finally:
        consumer.close()


def reset_group(admin: AdminClient, topology: Topology, archive: Path) -> None:
    group = sink_group(topology, archive)
    for future in admin.delete_consumer_groups([group], request_timeout=30).values():
        future.result(timeout=30)


def test_sink_archives_and_commits(topology: Topology, tmp_path: Path, bootstrap: str) -> None:
    produce_all(bootstrap, topology)

    stats = run_sink(topology, tmp_path, bootstrap, max_records=3)

    assert stats.records == 12
    assert stats.skipped == {}
    assert committed(bootstrap, topology, tmp_path) == [7, 5]
    assert sorted(archive_files(tmp_path)) == [
        "plane_stats/event_date=2024-12-25/p1-o000000000000-o000000000002.parquet",
        "plane_stats/event_date=2025-02-03/p0-o000000000000-o000000000002.parquet",
        "plane_stats/event_date=2025-02-03/p0-o000000000003-o000000000005.parquet",
        "plane_stats/event_date=2025-02-03/p0-o000000000006-o000000000006.parquet",
        "plane_stats/event_date=2580-01-01/p1-o000000000003-o000000000004.parquet",
        "route_stats/event_date=2025-02-03/p1-o000000000000-o000000000002.parquet",
        "route_stats/event_date=2025-02-03/p1-o000000000003-o000000000004.parquet",
    ]
    planes = read_archive(tmp_path, "plane_stats")
    assert list(planes["tailnum"]) == ["N1"] * 7 + ["N2"] * 2
    assert list(planes["n"]) == [1, 2, 3, 4, 5, 6, 7, 1, 1]
    # The column has millisecond resolution, so its integers are epoch milliseconds.
    event_ts_ms = list(planes["event_ts"].astype("int64"))
    assert event_ts_ms == [r.event_ts_ms for r in [*PLANES, MIXED[2], MIXED[4]]]
    routes = read_archive(tmp_path, "route_stats")
    assert list(zip(routes["origin"], routes["dest"], routes["n"], strict=True)) == [
        ("JFK", "LAX", 1),
        ("JFK", "LAX", 2),
        ("LGA", "ORD", 1),
    ]


def test_rerun_rewrites_same_files(
    topology: Topology, tmp_path: Path, bootstrap: str, admin: AdminClient
) -> None:
    produce_all(bootstrap, topology)
    run_sink(topology, tmp_path, bootstrap, max_records=3)
    first_run = archive_files(tmp_path)
    reset_group(admin, topology, tmp_path)

    # A different batch size would cut other ranges; the files already there decide instead.
    stats = run_sink(topology, tmp_path, bootstrap, max_records=1000)

    assert stats.records == 12
    assert archive_files(tmp_path) == first_run
    assert stored_rows(tmp_path) == 12
    assert committed(bootstrap, topology, tmp_path) == [7, 5]


def test_idle_rerun_writes_nothing(topology: Topology, tmp_path: Path, bootstrap: str) -> None:
    produce_all(bootstrap, topology)
    run_sink(topology, tmp_path, bootstrap, max_records=3)
    first_run = archive_files(tmp_path)

    stats = run_sink(topology, tmp_path, bootstrap, max_records=3)

    assert stats.records == 0
    assert archive_files(tmp_path) == first_run


def test_crash_leftovers_rewritten_not_doubled(
    topology: Topology, tmp_path: Path, bootstrap: str
) -> None:
    produce_all(bootstrap, topology)
    # What a run that died after writing offsets 0..4 of partition 0, before committing, left.
    ArchiveWriter(topology, tmp_path).write_batch(0, 0, 4, PLANES[:5])

    stats = run_sink(topology, tmp_path, bootstrap, max_records=3)

    names = sorted(name.rsplit("/", 1)[1] for name in archive_files(tmp_path))
    assert "p0-o000000000000-o000000000004.parquet" in names
    assert "p0-o000000000000-o000000000002.parquet" not in names
    assert stats.records == 12
    assert stored_rows(tmp_path) == 12
    assert committed(bootstrap, topology, tmp_path) == [7, 5]


def test_tombstones_and_unknown_views_skipped(
    topology: Topology, tmp_path: Path, bootstrap: str
) -> None:
    stranger = FeatureRecord("retired_view", 1, ("x",), ms(T10), ms(T10), {"n": 1}, ms(T10))
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topology.feature_log, encode_record(stranger), b"k1", partition=0)
    producer.produce(topology.feature_log, None, b"k2", partition=0)
    producer.produce(topology.feature_log, encode_record(PLANES[0]), b"k3", partition=0)
    assert producer.flush(30) == 0

    stats = run_sink(topology, tmp_path, bootstrap, max_records=100)

    assert stats.records == 1
    assert stats.skipped == {"unknown_view:retired_view": 1, "tombstone": 1}
    assert committed(bootstrap, topology, tmp_path)[0] == 3
    assert len(read_archive(tmp_path, "plane_stats")) == 1


def test_new_archive_folder_gets_every_record(
    topology: Topology, tmp_path: Path, bootstrap: str
) -> None:
    produce_all(bootstrap, topology)
    run_sink(topology, tmp_path / "first", bootstrap, max_records=3)

    stats = run_sink(topology, tmp_path / "second", bootstrap, max_records=3)

    assert stats.records == 12
    assert stored_rows(tmp_path / "second") == 12
