"""Feature-record codec: exact round trips and value types."""

from __future__ import annotations

import json
import math

import pytest

from streamfeat.errors import SerializationError
from streamfeat.featurelog.codec import decode_record, encode_record, record_key
from streamfeat.featurelog.record import FeatureRecord, FeatureValue
from streamfeat.serialization import DecodeError


def _record(**values: FeatureValue) -> FeatureRecord:
    return FeatureRecord(
        view="plane_7d",
        version=2,
        entity=("N14228",),
        event_ts_ms=1_357_053_300_000,
        latest_event_ts_ms=1_357_053_000_000,
        values=dict(values),
        available_at_ms=1_700_000_000_123,
    )


def test_record_round_trips() -> None:
    record = _record(flights=3, max_dep_delay=12.5, name="x", ok=True, missing=None)

    assert decode_record(encode_record(record)) == record


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, bool), (False, bool), (0, int), (1, int), (2.0, float), (-0.0, float), ("1", str)],
)
def test_value_keeps_python_type(value: FeatureValue, kind: type) -> None:
    decoded = decode_record(encode_record(_record(feature=value)))

    assert decoded.values["feature"] == value
    assert type(decoded.values["feature"]) is kind


def test_special_floats_round_trip() -> None:
    decoded = decode_record(encode_record(_record(nan=math.nan, inf=math.inf)))

    assert math.isnan(decoded.values["nan"])  # type: ignore[arg-type]
    assert decoded.values["inf"] == math.inf


def test_times_before_epoch_and_large_longs_round_trip() -> None:
    record = FeatureRecord("v", 1, ("a", ""), -62_135_596_800_000, -1, {"big": 2**62}, 0)

    assert decode_record(encode_record(record)) == record


def test_unsupported_value_type_names_feature() -> None:
    with pytest.raises(SerializationError, match="feature 'when' has the value b'x'"):
        encode_record(_record(when=b"x"))  # type: ignore[arg-type]


def test_message_is_single_object_encoded() -> None:
    assert encode_record(_record())[:2] == b"\xc3\x01"


def test_garbage_raises_decode_error() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_record(b"not avro")

    assert caught.value.reason == "undecodable"


def test_key_names_view_entity_and_event_time() -> None:
    key = record_key(_record())

    assert json.loads(key) == ["plane_7d", ["N14228"], 1_357_053_300_000]
