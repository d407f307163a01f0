"""Read a source's event time from a decoded event as UTC epoch milliseconds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from streamfeat.definitions.models import Source
from streamfeat.errors import SerializationError
from streamfeat.serialization._logical import INSTANT_TYPES, LOCAL_TYPES, timestamp_type
from streamfeat.serialization.store import StoredSchema
from streamfeat.serialization.times import local_ms_to_utc_ms, parse_iso_ms, zone_info

_LOCAL_CACHE = 65_536
_BLOCK_MS = 900_000


class EventTimeReader:
    """Converts a source's event-time field to UTC epoch milliseconds.

    Instants are taken as they are; naive local times (``local-timestamp-*`` or strings without
    an offset) are read in the source's declared zone with ``fold=0``.
    """

    def __init__(self, source: Source, schema: StoredSchema) -> None:
        self.field = source.event_time.field
        node = _field_type(schema, self.field)
        logical = timestamp_type(node)
        zone = source.event_time.zone
        self._convert: Callable[[Any], int]
        if logical in INSTANT_TYPES:
            self._convert = int
        elif logical in LOCAL_TYPES and zone is not None:
            self._convert = _local_converter(zone)
        elif node == "string" and zone is not None:
            tz = zone_info(zone)
            self._convert = lambda text: parse_iso_ms(text, tz)
        elif node == "string":
            self._convert = parse_iso_ms
        else:
            raise SerializationError(
                f"source {source.name!r}: event-time field {self.field!r} is not a timestamp "
                "or string field, or holds local times without a declared zone"
            )

    def read_ms(self, event: Mapping[str, Any]) -> int | None:
        """Event time of ``event``, or None when the field is null or cannot be read."""
        value = event.get(self.field)
        if value is None:
            return None
        try:
            return self._convert(value)
        except (SerializationError, ValueError, OverflowError):
            return None


def _local_converter(zone: str) -> Callable[[Any], int]:
    tz = zone_info(zone)

    @lru_cache(maxsize=_LOCAL_CACHE)
    def block_offset_ms(block_start_ms: int) -> int | None:
        """Return a 15-minute block's zone offset, or None when the offset changes inside it."""
        first = block_start_ms - local_ms_to_utc_ms(block_start_ms, tz)
        last_ms = block_start_ms + _BLOCK_MS - 1
        last = last_ms - local_ms_to_utc_ms(last_ms, tz)
        return first if first == last else None

    def convert(wall_ms: int) -> int:
        offset = block_offset_ms(wall_ms - wall_ms % _BLOCK_MS)
        if offset is None:
            return local_ms_to_utc_ms(wall_ms, tz)
        return wall_ms - offset

    return convert


def _field_type(schema: StoredSchema, name: str) -> Any:
    for field in schema.raw.get("fields", []):
        if field.get("name") == name:
            node = field["type"]
            if isinstance(node, list):
                branches = [b for b in node if b != "null"]
                node = branches[0] if len(branches) == 1 else node
            return node
    raise SerializationError(f"field {name!r} is not in schema {schema.name}")
