"""Archive tables from decoded columns equal the tables built from the same records."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat.errors import SerializationError
from streamfeat.featurelog.codec import encode_record
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.sink import ArchiveWriter, load_source_types
from streamfeat.sink.columns import LogDecoder
from streamfeat.sink.layout import event_date
from streamfeat.sink.table import records_table, rows_tables
from tests.sink.factories import SCHEMAS_DIR, make_topology, ms, plane_record

TOPOLOGY = make_topology()
VIEW = TOPOLOGY.view("plane_stats")
JOIN_KEYS = TOPOLOGY.entity("plane").join_keys
DECLARED = {
    feature: data_type
    for (view, feature), data_type in load_source_types(TOPOLOGY, SCHEMAS_DIR).items()
    if view == VIEW.name
}
T10 = datetime(2025, 2, 3, 10, tzinfo=UTC)
LONGS = st.integers(min_value=-(1 << 62), max_value=1 << 62)
VALUES = st.one_of(st.none(), st.booleans(), LONGS, st.floats(allow_nan=False), st.text(max_size=8))
SMALL_NUMBERS = st.one_of(st.none(), st.integers(-1000, 1000), st.floats(-1e6, 1e6))
plane_records = st.builds(
    lambda tailnum, hours, values: FeatureRecord(
        "plane_stats", 1, (tailnum,), ms(T10) + hours * 3_600_000, ms(T10), values, ms(T10)
    ),
    st.sampled_from(["N1", "N2", "Ñ3"]),
    st.integers(-30, 60),
    st.fixed_dictionaries(
        {},
        optional={
            "n": st.one_of(st.none(), LONGS),
            "delay_sum": SMALL_NUMBERS,
            "delay_max": st.one_of(SMALL_NUMBERS, VALUES),
            "last_carrier": st.one_of(st.none(), st.text(max_size=8), VALUES),
            "last_cancelled": st.one_of(st.none(), st.booleans(), VALUES),
        },
    ),
)


def tables_from_records(
    records: list[FeatureRecord], column_types: dict[str, pa.DataType]
) -> dict[str, pa.Table]:
    groups: dict[str, list[FeatureRecord]] = defaultdict(list)
    for record in records:
        groups[event_date(record.event_ts_ms)].append(record)
    return {
        date: records_table(VIEW, JOIN_KEYS, group, column_types) for date, group in groups.items()
    }


def tables_from_columns(
    records: list[FeatureRecord], column_types: dict[str, pa.DataType]
) -> dict[str, pa.Table]:
    decoder = LogDecoder({VIEW.name: (1, [feature.name for feature in VIEW.features])})
    batch = decoder.decode([encode_record(record) for record in records])
    assert batch.leftovers == []
    return dict(rows_tables(VIEW, JOIN_KEYS, batch.views[VIEW.name], column_types))


@pytest.mark.parametrize("column_types", [DECLARED, {}], ids=["declared", "inferred"])
@settings(max_examples=200, deadline=None)
@given(records=st.lists(plane_records, min_size=1, max_size=25))
def test_columns_tables_equal_records_tables(
    records: list[FeatureRecord], column_types: dict[str, pa.DataType]
) -> None:
    try:
        expected = tables_from_records(records, column_types)
    except SerializationError:
        with pytest.raises(SerializationError):
            tables_from_columns(records, column_types)
        return

    actual = tables_from_columns(records, column_types)

    assert list(actual) == sorted(actual)
    assert actual.keys() == expected.keys()
    for date, table in expected.items():
        assert actual[date].equals(table, check_metadata=True), date


def test_columns_tables_keep_message_order() -> None:
    records = [
        plane_record("N2", T10 + timedelta(days=1)),
        plane_record("N1", T10),
        plane_record("N3", T10 + timedelta(days=1), n=3),
        plane_record("N4", T10, n=4),
    ]

    tables = tables_from_columns(records, DECLARED)

    assert list(tables) == ["2025-02-03", "2025-02-04"]
    assert tables["2025-02-03"]["tailnum"].to_pylist() == ["N1", "N4"]
    assert tables["2025-02-04"]["tailnum"].to_pylist() == ["N2", "N3"]


def test_decoded_batch_writes_same_bytes(tmp_path: Path) -> None:
    records = [plane_record(f"N{i}", T10 + timedelta(hours=9 * i), n=i) for i in range(12)]
    decoder = LogDecoder({VIEW.name: (1, [feature.name for feature in VIEW.features])})
    batch = decoder.decode([encode_record(record) for record in records])
    source_types = load_source_types(TOPOLOGY, SCHEMAS_DIR)

    from_records = ArchiveWriter(TOPOLOGY, tmp_path / "records", source_types).write_named(
        "p0.parquet", records
    )
    from_columns = ArchiveWriter(TOPOLOGY, tmp_path / "columns", source_types).write_decoded(
        "p0.parquet", list(batch.views.values()), []
    )

    assert len(from_records) == 5
    for records_path, columns_path in zip(from_records, from_columns, strict=True):
        assert records_path.relative_to(tmp_path / "records") == columns_path.relative_to(
            tmp_path / "columns"
        )
        assert records_path.read_bytes() == columns_path.read_bytes()
