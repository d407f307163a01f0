"""Batches decoded and written in the background come out in order, errors included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streamfeat.errors import SerializationError
from streamfeat.featurelog.codec import encode_record
from streamfeat.sink import ArchiveWriter
from streamfeat.sink.batches import Batch
from streamfeat.sink.decoding import BatchDecoder
from streamfeat.sink.inflight import BatchWrites
from tests.sink.factories import make_topology, plane_record

T10 = datetime(2025, 2, 3, 10, tzinfo=UTC)
TOPOLOGY = make_topology(feature_log_topic="log")


def batch(first_offset: int, values: list[bytes]) -> Batch:
    offsets = list(range(first_offset, first_offset + len(values)))
    return Batch(first_offset, 0.0, None, False, offsets[-1], len(values), values, offsets)


def planes(count: int, days: int = 1) -> list[bytes]:
    return [
        encode_record(plane_record(f"N{i}", T10 + timedelta(days=i % days))) for i in range(count)
    ]


def writes(archive: Path, max_in_flight: int = 4) -> BatchWrites:
    return BatchWrites(BatchDecoder(TOPOLOGY), ArchiveWriter(TOPOLOGY, archive), max_in_flight)


def test_batches_finish_in_start_order(tmp_path: Path) -> None:
    pending = writes(tmp_path)
    pending.start(0, batch(0, planes(30, days=3)), 29)
    pending.start(1, batch(0, planes(5)), 4)
    pending.start(0, batch(30, planes(1)), 30)

    written = list(pending.finished(wait=True))
    pending.close()

    assert [(w.partition, w.first_offset, w.last_offset) for w in written] == [
        (0, 0, 29),
        (1, 0, 4),
        (0, 30, 30),
    ]
    assert [w.records for w in written] == [30, 5, 1]
    assert [len(w.files) for w in written] == [3, 1, 1]
    assert all(path.exists() for w in written for path in w.files)


def test_failed_batch_stops_later_ones(tmp_path: Path) -> None:
    pending = writes(tmp_path)
    pending.start(0, batch(0, planes(2)), 1)
    pending.start(0, batch(2, [b"not avro"]), 2)
    pending.start(0, batch(3, planes(2)), 4)
    finished = pending.finished(wait=True)

    first = next(finished)
    with pytest.raises(SerializationError, match="partition 0 offset 2 cannot be decoded"):
        next(finished)
    pending.abandon()
    pending.close()

    assert first.last_offset == 1
    assert list(pending.finished(wait=True)) == []


def test_finished_leaves_max_in_flight_unless_done(tmp_path: Path) -> None:
    pending = writes(tmp_path, max_in_flight=1)
    for first_offset in (0, 10, 20):
        pending.start(0, batch(first_offset, planes(10)), first_offset + 9)

    early = list(pending.finished())
    rest = list(pending.finished(wait=True))
    pending.close()

    assert len(early) >= 2
    assert [w.first_offset for w in [*early, *rest]] == [0, 10, 20]
