"""Avro codec of feature records for the compacted feature-log topic.

Records use the single-object encoding with ``schemas/feature_record.avsc``. Each feature value is
written with an explicit union branch chosen from its Python type, so a bool comes back as a bool,
an int as an int and a float as a float (2.0 stays a float).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from streamfeat.errors import ConfigurationError
from streamfeat.featurelog.avro_body import record_body
from streamfeat.featurelog.record import FeatureRecord, log_key
from streamfeat.serialization import Decoder, SchemaStore

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
"""The repository's ``schemas/`` folder, the one place the feature-record schema lives."""

FEATURE_RECORD_SCHEMA = "streamfeat.FeatureRecord"


@lru_cache(maxsize=1)
def schema_store() -> SchemaStore:
    """Return the store loaded from the repository's ``schemas/`` folder (loaded once)."""
    # NOTE: the folder is found next to the package, which holds for a source checkout and an
    # editable install; a wheel would need the schemas shipped as package data.
    if not SCHEMAS_DIR.is_dir():
        raise ConfigurationError(
            f"schemas folder {SCHEMAS_DIR} not found; install streamfeat from its source tree "
            "(pip install -e .) so that the Avro schemas sit next to the package"
        )
    return SchemaStore.from_dir(SCHEMAS_DIR)


@lru_cache(maxsize=1)
def _decoder() -> Decoder:
    return schema_store().decoder(FEATURE_RECORD_SCHEMA)


def encode_record(record: FeatureRecord) -> bytes:
    """Encode a feature record as a single-object Avro message."""
    return _header() + record_body(record)


@lru_cache(maxsize=1)
def _header() -> bytes:
    return schema_store().schema(FEATURE_RECORD_SCHEMA).header


def decode_record(data: bytes | None) -> FeatureRecord:
    """Decode a feature-log message; raise DecodeError when the bytes are not a feature record."""
    datum = _decoder().decode(data)
    return FeatureRecord(
        view=datum["view"],
        version=datum["version"],
        entity=tuple(datum["entity"]),
        event_ts_ms=datum["event_ts"],
        latest_event_ts_ms=datum["latest_event_ts"],
        values=datum["values"],
        available_at_ms=datum["available_at"],
    )


def record_key(record: FeatureRecord) -> bytes:
    """Return the Kafka key of a record, so compaction keeps one per (view, entity, event_ts)."""
    return log_key(record.view, record.entity, record.event_ts_ms)
