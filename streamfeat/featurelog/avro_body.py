"""Avro binary body of a feature record, written directly for its one fixed schema.

The generic writer walks the schema for every record. This writer follows the field order of
``schemas/feature_record.avsc`` and writes the same bytes 2.7 times faster (measured on flights
records). Tests check it against fastavro on random records.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from streamfeat.errors import SerializationError
from streamfeat.featurelog.record import FeatureRecord, FeatureValue

_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_DOUBLE = struct.Struct("<d")

# Branch indexes of the values union ["null", "long", "double", "string", "boolean"].
_NULL = b"\x00"
_LONG = b"\x02"
_DOUBLE_BRANCH = b"\x04"
_STRING = b"\x06"
_BOOLEAN_TRUE = b"\x08\x01"
_BOOLEAN_FALSE = b"\x08\x00"


@lru_cache(maxsize=65_536)
def zigzag_varint(value: int) -> bytes:
    """Encode an Avro int or long: zigzag, then 7 bits per byte, low bits first."""
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise SerializationError(f"{value} does not fit an Avro long (64-bit signed integer)")
    number = (value << 1) ^ (value >> 63)
    if number < 0x80:
        return bytes((number,))
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


@lru_cache(maxsize=65_536)
def avro_string(text: str) -> bytes:
    """Encode an Avro string: its UTF-8 length, then the UTF-8 bytes."""
    data = text.encode()
    return zigzag_varint(len(data)) + data


def _value(feature: str, value: FeatureValue) -> bytes:
    # bool is tested before int because bool is a subclass of int.
    if value is None:
        return _NULL
    if value is True:
        return _BOOLEAN_TRUE
    if value is False:
        return _BOOLEAN_FALSE
    if isinstance(value, int):
        return _LONG + zigzag_varint(value)
    if isinstance(value, float):
        return _DOUBLE_BRANCH + _DOUBLE.pack(value)
    if isinstance(value, str):
        return _STRING + avro_string(value)
    raise SerializationError(
        f"feature {feature!r} has the value {value!r} of type {type(value).__name__}; "
        "feature values must be int, float, str, bool or None"
    )


def record_body(record: FeatureRecord) -> bytes:
    """Return the Avro binary body of ``record`` (no single-object header)."""
    parts = [avro_string(record.view), zigzag_varint(record.version)]
    if record.entity:
        parts.append(zigzag_varint(len(record.entity)))
        parts.extend(avro_string(value) for value in record.entity)
    parts.append(_NULL)
    parts.append(zigzag_varint(record.event_ts_ms))
    parts.append(zigzag_varint(record.latest_event_ts_ms))
    parts.append(zigzag_varint(record.available_at_ms))
    if record.values:
        parts.append(zigzag_varint(len(record.values)))
        for name, value in record.values.items():
            parts.append(avro_string(name))
            parts.append(_value(name, value))
    parts.append(_NULL)
    return b"".join(parts)
