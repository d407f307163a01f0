"""Avro serialization: schema store, single-object encoding, compatibility checks, times.

Registry-free: each message carries its writer schema's fingerprint, and the schemas come from
the ``schemas/`` folder. Times are int epoch milliseconds throughout.
"""

from streamfeat.serialization.compatibility import check_compatible, require_compatible
from streamfeat.serialization.store import (
    HEADER_LENGTH,
    MAGIC,
    DecodeError,
    Decoder,
    DecodeReason,
    SchemaStore,
    StoredSchema,
)

__all__ = [
    "HEADER_LENGTH",
    "MAGIC",
    "DecodeError",
    "DecodeReason",
    "Decoder",
    "SchemaStore",
    "StoredSchema",
    "check_compatible",
    "require_compatible",
]
