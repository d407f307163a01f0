"""The direct feature-record writer produces the bytes fastavro writes for the same record."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat.errors import SerializationError
from streamfeat.featurelog.avro_body import record_body, zigzag_varint
from streamfeat.featurelog.codec import FEATURE_RECORD_SCHEMA, schema_store
from streamfeat.featurelog.record import FeatureRecord, FeatureValue

LONGS = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
VALUES = st.one_of(
    st.none(), st.booleans(), LONGS, st.floats(allow_nan=False), st.text(max_size=300)
)


def _branch(value: FeatureValue) -> Any:
    if value is None:
        return None
    kind = {bool: "boolean", int: "long", float: "double", str: "string"}[type(value)]
    return (kind, value)


def fastavro_body(record: FeatureRecord) -> bytes:
    datum = {
        "view": record.view,
        "version": record.version,
        "entity": list(record.entity),
        "event_ts": record.event_ts_ms,
        "latest_event_ts": record.latest_event_ts_ms,
        "available_at": record.available_at_ms,
        "values": {name: _branch(value) for name, value in record.values.items()},
    }
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema_store().schema(FEATURE_RECORD_SCHEMA).plain, datum)
    return buffer.getvalue()


records = st.builds(
    FeatureRecord,
    view=st.text(min_size=1, max_size=40),
    version=st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
    entity=st.lists(st.text(max_size=30), max_size=3).map(tuple),
    event_ts_ms=LONGS,
    latest_event_ts_ms=LONGS,
    values=st.dictionaries(st.text(max_size=20), VALUES, max_size=6),
    available_at_ms=LONGS,
)


@settings(max_examples=500, deadline=None)
@given(records)
def test_body_equals_fastavro(record: FeatureRecord) -> None:
    assert record_body(record) == fastavro_body(record)


@pytest.mark.parametrize("value", [-(1 << 63) - 1, 1 << 63])
def test_long_out_of_range_raises(value: int) -> None:
    with pytest.raises(SerializationError, match="64-bit"):
        zigzag_varint(value)


def test_unsupported_value_type_raises() -> None:
    record = FeatureRecord("v", 1, ("e",), 0, 0, {"f": [1, 2]}, 0)  # type: ignore[dict-item]

    with pytest.raises(SerializationError, match="'f'"):
        record_body(record)
