"""The columnar reader gives, for every message it takes, what ``decode_record`` gives."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from streamfeat.featurelog.codec import decode_record, encode_record
from streamfeat.featurelog.record import FeatureRecord, FeatureValue
from streamfeat.sink.columns import BOOLEAN, DOUBLE, LONG, STRING, LogDecoder, ViewRows

PLANE_FEATURES = ["n", "delay_sum", "delay_max", "last_carrier", "last_cancelled"]
VIEWS = {"plane_stats": (1, PLANE_FEATURES), "route_stats": (2, ["n"])}
LONGS = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
VALUES = st.one_of(
    st.none(), st.booleans(), LONGS, st.floats(allow_nan=False), st.text(max_size=20)
)


def _record(view: str, entity: tuple[str, ...], values: dict[str, FeatureValue]) -> FeatureRecord:
    return FeatureRecord(view, 3, entity, 1_357_000_000_000, 1_356_999_000_000, values, 1_700_000)


PLANE = _record("plane_stats", ("N1",), {"n": 2, "delay_sum": 4.5, "last_carrier": "UA"})


def _value(rows: ViewRows, feature: str, row: int) -> FeatureValue:
    values = rows.features[feature]
    branch = int(values.branch[row])
    if branch == LONG:
        return int(values.longs[row])
    if branch == DOUBLE:
        return float(values.doubles[row])
    if branch == STRING:
        return values.strings[row].as_py() if values.strings is not None else None
    if branch == BOOLEAN:
        return bool(values.longs[row])
    return None


def columnar_records(messages: list[bytes]) -> tuple[dict[int, FeatureRecord], list[int]]:
    """Rebuild records from the columns, by message index; nulls are left out of the values."""
    batch = LogDecoder(VIEWS).decode(messages)
    records = {}
    for name, rows in batch.views.items():
        for row, position in enumerate(rows.positions.tolist()):
            values = {feature: _value(rows, feature, row) for feature in rows.features}
            records[position] = FeatureRecord(
                name,
                int(rows.version[row]),
                tuple(keys[row].as_py() for keys in rows.entity),
                int(rows.event_ts_ms[row]),
                int(rows.latest_event_ts_ms[row]),
                {feature: value for feature, value in values.items() if value is not None},
                int(rows.available_at_ms[row]),
            )
    return records, batch.leftovers


def typed(record: FeatureRecord) -> tuple[object, ...]:
    """The record's fields, with each non-null value paired with its type (1 is not True)."""
    values = {name: (type(value), value) for name, value in record.values.items()}
    return (
        record.view,
        record.version,
        record.entity,
        record.event_ts_ms,
        record.latest_event_ts_ms,
        {name: pair for name, pair in values.items() if pair[1] is not None},
        record.available_at_ms,
    )


def fits_columns(record: FeatureRecord) -> bool:
    """Whether the record is one the columnar reader takes: known view, arity and features."""
    layout = VIEWS.get(record.view)
    if layout is None:
        return False
    keys, features = layout
    return len(record.entity) == keys and set(record.values) <= set(features)


plane_records = st.builds(
    FeatureRecord,
    view=st.sampled_from(["plane_stats", "route_stats", "retired_view"]),
    version=st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
    entity=st.lists(st.text(max_size=12), min_size=0, max_size=3).map(tuple),
    event_ts_ms=LONGS,
    latest_event_ts_ms=LONGS,
    values=st.dictionaries(st.sampled_from([*PLANE_FEATURES, "extra"]), VALUES, max_size=6),
    available_at_ms=LONGS,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(plane_records, min_size=1, max_size=30))
def test_columns_match_decode_record(records: list[FeatureRecord]) -> None:
    messages = [encode_record(record) for record in records]

    decoded, leftovers = columnar_records(messages)

    for position, record in enumerate(records):
        if fits_columns(record):
            assert typed(decoded[position]) == typed(decode_record(messages[position]))
        else:
            assert position in leftovers
    assert sorted([*decoded, *leftovers]) == list(range(len(records)))


def test_nan_and_infinities_kept() -> None:
    record = _record("plane_stats", ("N1",), {"delay_sum": math.nan, "delay_max": -math.inf})

    decoded, _ = columnar_records([encode_record(record)])

    assert math.isnan(decoded[0].values["delay_sum"])  # type: ignore[arg-type]
    assert decoded[0].values["delay_max"] == -math.inf


def test_features_in_any_order_read() -> None:
    record = _record("plane_stats", ("N1",), {"last_carrier": "AA", "n": 7, "delay_max": 1.5})

    decoded, leftovers = columnar_records([encode_record(record)])

    assert leftovers == []
    assert decoded[0].values == {"last_carrier": "AA", "n": 7, "delay_max": 1.5}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=8), st.data())
def test_arbitrary_bytes_never_misread(garbage: list[bytes], data: st.DataObject) -> None:
    """Random bytes, alone or after a valid header, are left over or read as fastavro reads them."""
    header = encode_record(PLANE)[:10]
    messages = [data.draw(st.sampled_from([b"", header])) + chunk for chunk in garbage]

    decoded, leftovers = columnar_records(messages)

    assert sorted([*decoded, *leftovers]) == list(range(len(messages)))
    for position, record in decoded.items():
        assert typed(record) == typed(decode_record(messages[position]))


def test_every_truncation_left_over_last() -> None:
    message = encode_record(PLANE)

    for length in range(len(message)):
        _, leftovers = columnar_records([message[:length]])

        assert leftovers == [0]


def test_every_truncation_left_over() -> None:
    message = encode_record(PLANE)
    cuts = [message[:length] for length in range(len(message))]

    decoded, leftovers = columnar_records([*cuts, message])

    assert leftovers == list(range(len(cuts)))
    assert decoded[len(cuts)] == PLANE


def test_malformed_messages_left_over() -> None:
    message = encode_record(PLANE)
    cancelled = encode_record(_record("plane_stats", ("N1",), {"last_cancelled": True}))
    malformed = [
        b"",
        b"not avro",
        message + b"\x00",
        b"\xc3\x01" + bytes(8) + message[10:],
        # The boolean's byte is 2, neither false (0) nor true (1).
        cancelled[:-2] + b"\x02\x00",
    ]

    decoded, leftovers = columnar_records([*malformed, message])

    assert leftovers == list(range(len(malformed)))
    assert decoded[len(malformed)] == PLANE


def test_invalid_utf8_leaves_whole_view_over() -> None:
    """Arrow checks the strings of a view's rows at once, so a bad one sends all back."""
    message = encode_record(PLANE)
    key_at = message.index(b"N1")
    invalid = message[:key_at] + b"\xff\xfe" + message[key_at + 2 :]
    route = _record("route_stats", ("JFK", "LAX"), {"n": 1})

    decoded, leftovers = columnar_records([invalid, message, encode_record(route)])

    assert leftovers == [0, 1]
    assert decoded == {2: route}


def test_map_in_two_blocks_left_over() -> None:
    """Avro allows several blocks, and a negative count followed by the block's size."""
    one_block = encode_record(_record("route_stats", ("JFK", "LAX"), {"n": 1}))
    # The map is the message's tail: count 1 (\x02), key "n", long 1 (\x02\x02), then 0.
    body = one_block[: -len(b"\x02\x02n\x02\x02\x00")]
    two_blocks = body + b"\x01\x08\x02n\x02\x02\x00"

    decoded, leftovers = columnar_records([two_blocks, one_block])

    assert leftovers == [0]
    assert decode_record(two_blocks) == decode_record(one_block)
    assert decoded[1] == decode_record(one_block)
