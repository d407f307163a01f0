"""Decoding of sink batches: the messages the columnar reader leaves, and their errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamfeat.errors import SerializationError
from streamfeat.featurelog.codec import encode_record
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.sink.decoding import BatchDecoder
from tests.sink.factories import make_topology, ms, plane_record, route_record

T10 = datetime(2025, 2, 3, 10, tzinfo=UTC)
TOPOLOGY = make_topology(feature_log_topic="log")


def decode(records: list[FeatureRecord | bytes]) -> tuple[BatchDecoder, list[bytes]]:
    values = [r if isinstance(r, bytes) else encode_record(r) for r in records]
    return BatchDecoder(TOPOLOGY), values


def test_common_records_decoded_as_columns() -> None:
    decoder, values = decode([plane_record("N1", T10), route_record("JFK", "LAX", T10)])

    rows = decoder.decode(0, values, [10, 11])

    assert sorted(view.view for view in rows.views) == ["plane_stats", "route_stats"]
    assert rows.records == []
    assert rows.count == 2


def test_unknown_view_skipped_and_counted() -> None:
    stranger = FeatureRecord("retired_view", 1, ("x",), ms(T10), ms(T10), {"n": 1}, ms(T10))
    decoder, values = decode([stranger, plane_record("N1", T10), stranger])

    rows = decoder.decode(0, values, [0, 1, 2])

    assert rows.skipped == {"unknown_view:retired_view": 2}
    assert rows.count == 1


def test_view_with_leftover_decoded_record_by_record() -> None:
    # A feature the definition lacks (from another version of the view) is kept as a column.
    extra = FeatureRecord(
        "plane_stats", 2, ("N2",), ms(T10), ms(T10), {"n": 1, "delay_p90": 3.5}, ms(T10)
    )
    route = route_record("JFK", "LAX", T10)
    decoder, values = decode([plane_record("N1", T10), extra, route, plane_record("N3", T10)])

    rows = decoder.decode(0, values, [0, 1, 2, 3])

    assert [view.view for view in rows.views] == ["route_stats"]
    assert [record.entity for record in rows.records] == [("N1",), ("N2",), ("N3",)]
    assert rows.records[1] == extra


def test_undecodable_message_names_its_offset() -> None:
    decoder, values = decode([plane_record("N1", T10), b"not avro"])

    with pytest.raises(SerializationError, match="log partition 3 offset 41 cannot be decoded"):
        decoder.decode(3, values, [40, 41])
