"""The feature record: one view's values for one entity as of one event time.

The same record goes to the online store, the compacted feature-log topic and the archive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

FeatureValue: TypeAlias = int | float | str | bool | None
"""A feature's value; timestamps are int epoch milliseconds, null is None."""

EntityKey: TypeAlias = tuple[str, ...]
"""Join-key values of an entity, in the order its definition lists the join keys."""


@dataclass(frozen=True, slots=True)
class FeatureRecord:
    """Values of ``view`` for ``entity`` as of ``event_ts_ms``.

    ``latest_event_ts_ms`` is the entity's latest accepted event time at or before
    ``event_ts_ms``; readers apply the TTL with it. ``available_at_ms`` is when the worker
    produced the record (its processing clock).
    """

    view: str
    version: int
    entity: EntityKey
    event_ts_ms: int
    latest_event_ts_ms: int
    values: dict[str, FeatureValue]
    available_at_ms: int


@lru_cache(maxsize=100_000)
def encode_entity_key(entity: EntityKey) -> str:
    """Encode join-key values as one string (a compact JSON array), unambiguous for any values."""
    return json.dumps(list(entity), separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=100_000)
def decode_entity_key(text: str) -> EntityKey:
    """Inverse of encode_entity_key."""
    return tuple(json.loads(text))


def log_key(view: str, entity: EntityKey, event_ts_ms: int) -> bytes:
    """Kafka key of a feature-log record; compaction keeps one per (view, entity, event_ts).

    The compact JSON array ``[view, [join-key values], event_ts]``.
    """
    return f"[{_json_string(view)},{encode_entity_key(entity)},{event_ts_ms}]".encode()


@lru_cache(maxsize=1_024)
def _json_string(text: str) -> str:
    return json.dumps(text)
