"""Registry-free Avro: a folder of ``.avsc`` files and the single-object encoding.

A single-object message is the two marker bytes ``C3 01``, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's parsing canonical form, then the Avro binary body.
The fingerprint lets a reader pick the writer schema of every message, so old messages stay
readable after a compatible schema change.

Times are int epoch milliseconds on both sides: a ``timestamp-*`` or ``local-timestamp-*``
field decodes to milliseconds (micros floored), and encodes from milliseconds or a datetime.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException, fingerprint, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from streamfeat.errors import SerializationError
from streamfeat.serialization import _logical, _typecheck
from streamfeat.serialization.compatibility import check_compatible

logger = logging.getLogger(__name__)

MAGIC = b"\xc3\x01"
"""Marker bytes that start every single-object encoded message."""

HEADER_LENGTH = len(MAGIC) + 8
PREVIOUS_DIR = "previous"
"""Sub-folder of a schemas folder with past versions, kept so that old messages decode."""

DecodeReason = Literal["undecodable", "unknown_schema"]


class DecodeError(SerializationError):
    """A message that cannot be decoded: ``reason`` is its dead-letter reason, ``detail`` why."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: DecodeReason = reason
        self.detail = detail


@dataclass(frozen=True, eq=False)
class StoredSchema:
    """One Avro schema of a store, with what encoding and decoding need precomputed.

    ``parsed`` keeps the logical types and ``plain`` has the timestamp ones removed; fastavro
    reads and writes ``plain`` so that times stay integers.
    """

    name: str
    fingerprint: bytes
    raw: Any
    parsed: dict[str, Any]
    plain: dict[str, Any]
    origin: str

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint

    @classmethod
    def from_json(cls, raw: Any, origin: str) -> StoredSchema:
        """Parse one schema; ``origin`` (a file path, say) names it in errors."""
        try:
            parsed = parse_schema(raw, named_schemas={})
            plain = parse_schema(_logical.strip_timestamp_types(raw), named_schemas={})
        except (SchemaParseException, ValueError, TypeError, KeyError) as error:
            raise SerializationError(
                f"{origin} is not a valid Avro schema: {error}; fix it to follow the Avro spec"
            ) from None
        if (
            not isinstance(parsed, dict)
            or not isinstance(plain, dict)
            or parsed["type"] != "record"
        ):
            raise SerializationError(
                f"{origin} must define an Avro record, not {str(raw)[:60]}; wrap the fields in "
                '{"type": "record", "name": ..., "fields": [...]}'
            )
        canonical = to_parsing_canonical_form(parsed)
        digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        return cls(parsed["name"], digest, raw, parsed, plain, origin)


def _read_schema_file(path: Path) -> StoredSchema:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SerializationError(f"cannot read Avro schema {path}: {error}; fix the file") from None
    return StoredSchema.from_json(raw, str(path))


class SchemaStore:
    """Schemas known by full name (current versions) and by fingerprint (every version)."""

    def __init__(self, current: Iterable[StoredSchema], previous: Iterable[StoredSchema] = ()):
        self._by_name: dict[str, StoredSchema] = {}
        self._by_fingerprint: dict[bytes, StoredSchema] = {}
        self._by_file: dict[str, StoredSchema] = {}
        self._encoders: dict[str, tuple[_logical.Converter | None, _typecheck.Check | None]] = {}
        for schema in current:
            if schema.name in self._by_name:
                raise SerializationError(
                    f"schema name {schema.name!r} is defined twice, in "
                    f"{self._by_name[schema.name].origin} and {schema.origin}; keep one and move "
                    f"past versions to a {PREVIOUS_DIR!r} sub-folder"
                )
            self._by_name[schema.name] = schema
            self._by_file[Path(schema.origin).name] = schema
            self._by_fingerprint[schema.fingerprint] = schema
        for schema in previous:
            self._by_fingerprint.setdefault(schema.fingerprint, schema)

    @classmethod
    def from_dir(cls, path: str | Path) -> SchemaStore:
        """Load every ``*.avsc`` of a folder, and past versions from its ``previous/`` folder."""
        folder = Path(path)
        if not folder.is_dir():
            raise SerializationError(
                f"schemas folder {folder} does not exist; create it or point to the folder "
                "that holds the .avsc files"
            )
        current = [_read_schema_file(p) for p in sorted(folder.glob("*.avsc"))]
        previous = [_read_schema_file(p) for p in sorted((folder / PREVIOUS_DIR).glob("*.avsc"))]
        logger.debug(
            "schema_store_loaded folder=%s schemas=%d previous=%d",
            folder,
            len(current),
            len(previous),
        )
        return cls(current, previous)

    @property
    def names(self) -> tuple[str, ...]:
        """Full names of the current schemas, sorted."""
        return tuple(sorted(self._by_name))

    def schema(self, name: str) -> StoredSchema:
        """Return the current schema with this full name, such as ``streamfeat.Flight``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SerializationError(
                f"schema {name!r} is not in the store; known schemas: {', '.join(self.names)}"
            ) from None

    def for_file(self, file_name: str) -> StoredSchema:
        """Return the current schema loaded from a file of this name, such as ``flight.avsc``."""
        try:
            return self._by_file[Path(file_name).name]
        except KeyError:
            raise SerializationError(
                f"no schema was loaded from a file named {file_name!r}; known files: "
                f"{', '.join(sorted(self._by_file))}"
            ) from None

    def by_fingerprint(self, digest: bytes) -> StoredSchema | None:
        """Return the schema, current or past, with this 8-byte fingerprint."""
        return self._by_fingerprint.get(digest)

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Encode a record with the current schema ``name`` in the single-object encoding.

        Timestamp fields take int epoch milliseconds or an aware datetime; a ``local-timestamp-*``
        field takes a naive datetime (its wall clock). Raises SerializationError naming the field
        when a value does not fit the schema.
        """
        schema = self.schema(name)
        if name not in self._encoders:
            self._encoders[name] = (
                _logical.build_converter(
                    schema.parsed, schema.parsed["__named_schemas"], _encoding_leaf
                ),
                _typecheck.build_check(schema.plain),
            )
        converter, quick_check = self._encoders[name]
        datum = converter(record) if converter is not None else record
        if quick_check is None or not quick_check(datum):
            _validate(name, schema, datum)
        buffer = io.BytesIO()
        buffer.write(schema.header)
        try:
            schemaless_writer(buffer, schema.plain, datum, strict_allow_default=True)
        except (ValueError, TypeError, OverflowError) as error:
            raise SerializationError(f"cannot encode a {name} record: {error}") from None
        return buffer.getvalue()

    def decoder(self, reader_name: str) -> Decoder:
        """Return a decoder that reads every known writer version as the schema ``reader_name``."""
        return Decoder(self, self.schema(reader_name))


def _validate(name: str, schema: StoredSchema, datum: Any) -> None:
    try:
        validate(datum, schema.plain, raise_errors=True)
    except ValidationError as error:
        problems = "; ".join(
            f"field {e.field} is {e.datum!r}, expected {_type_name(e.schema)}" for e in error.errors
        )
        raise SerializationError(f"cannot encode a {name} record: {problems}") from None


def _type_name(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return schema if isinstance(schema, str) else json.dumps(schema)[:80]


def _encoding_leaf(logical: str, path: str) -> _logical.Converter:
    scale = 1_000 if logical in _logical.MICROS_TYPES else 1
    to_units = _logical.instant_us if scale == 1_000 else _logical.instant_ms

    def to_instant(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.utcoffset() is None:
                raise SerializationError(
                    f"field {path!r} ({logical}) got the naive datetime {value.isoformat()}; "
                    "give it a time zone, such as tzinfo=datetime.UTC"
                )
            return to_units(value)
        return value * scale if type(value) is int else value

    def to_wall_clock(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.utcoffset() is not None:
                raise SerializationError(
                    f"field {path!r} ({logical}) expects a wall-clock time, not the aware datetime "
                    f"{value.isoformat()}; pass a naive datetime or epoch milliseconds"
                )
            wall_us = _logical.wall_us(value)
            return wall_us if scale == 1_000 else wall_us // 1_000
        return value * scale if type(value) is int else value

    return to_instant if logical in _logical.INSTANT_TYPES else to_wall_clock


def _decoding_leaf(logical: str, path: str) -> _logical.Converter | None:
    if logical in _logical.MICROS_TYPES:
        return lambda micros: micros // 1_000
    return None


class Decoder:
    """Decode single-object messages into one reader schema, whatever version wrote them."""

    def __init__(self, store: SchemaStore, reader: StoredSchema) -> None:
        self._store = store
        self._reader = reader
        self._to_ms = _logical.build_converter(
            reader.parsed, reader.parsed["__named_schemas"], _decoding_leaf
        )
        self._writers: dict[bytes, tuple[dict[str, Any], dict[str, Any] | None, str | None]] = {}

    @property
    def reader(self) -> StoredSchema:
        return self._reader

    def decode(self, data: bytes | None) -> dict[str, Any]:
        """Decode one message; raise DecodeError, reason ``undecodable`` or ``unknown_schema``."""
        if data is None:
            raise DecodeError("undecodable", "the message has no value")
        if len(data) < HEADER_LENGTH or data[:2] != MAGIC:
            raise DecodeError(
                "undecodable",
                f"the message does not start with the single-object marker C3 01 and an 8-byte "
                f"fingerprint (first bytes: {bytes(data[:HEADER_LENGTH]).hex(' ')!r})",
            )

        digest = bytes(data[2:HEADER_LENGTH])
        writer, reader, incompatible = self._writers.get(digest) or self._resolve(digest)
        if incompatible is not None:
            raise DecodeError("unknown_schema", incompatible)
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_LENGTH)
        try:
            record = schemaless_reader(buffer, writer, reader)
        except SchemaResolutionError as error:
            raise DecodeError("unknown_schema", str(error)) from None
        except (EOFError, ValueError, IndexError, KeyError, TypeError, OverflowError) as error:
            # UnicodeDecodeError is a ValueError; garbage lengths surface as any of these.
            raise DecodeError(
                "undecodable", f"the Avro body is truncated or malformed ({type(error).__name__})"
            ) from None

        trailing = len(data) - buffer.tell()
        if trailing:
            raise DecodeError("undecodable", f"trailing bytes after the Avro body: {trailing}")
        if not isinstance(record, dict):
            raise DecodeError("undecodable", f"the body is {type(record).__name__}, not a record")
        return self._to_ms(record) if self._to_ms is not None else record

    def _resolve(self, digest: bytes) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        writer = self._store.by_fingerprint(digest)
        if writer is None:
            # Not cached: random headers would otherwise grow the cache without bound.
            return (
                self._reader.plain,
                None,
                f"fingerprint {digest.hex()} is not in the schema store; add the writer's schema "
                f"to the schemas folder (past versions go to {PREVIOUS_DIR}/)",
            )
        if writer.fingerprint == self._reader.fingerprint:
            return self._remember(digest, writer.plain, None, None)
        problems = check_compatible(writer.raw, self._reader.raw)
        if problems:
            return self._remember(
                digest,
                writer.plain,
                None,
                f"writer schema {writer.name} ({writer.origin}) cannot be read as "
                f"{self._reader.name}: {'; '.join(problems)}",
            )
        return self._remember(digest, writer.plain, self._reader.plain, None)

    def _remember(
        self,
        digest: bytes,
        writer: dict[str, Any],
        reader: dict[str, Any] | None,
        incompatible: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        plan = (writer, reader, incompatible)
        self._writers[digest] = plan
        return plan
