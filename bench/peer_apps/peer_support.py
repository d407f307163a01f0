"""Code both peer apps share: the run's spec, flight decoding, event time and progress.

The peer apps run in interpreters without streamfeat (Quix Streams pins older confluent-kafka
and pydantic releases), so this module needs only fastavro and the standard library.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
"""Marker bytes that start an Avro single-object encoded message, before the fingerprint."""

_HEADER_LENGTH = len(SINGLE_OBJECT_MAGIC) + 8
_EPOCH = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Feature:
    name: str
    function: str
    column: str | None


@dataclass(frozen=True)
class View:
    """One feature view: its entity's join key, window and features."""

    name: str
    key: str
    length_ms: int
    hop_ms: int
    features: tuple[Feature, ...]
    expected_events: int
    """Events with a key for this view that the app applies before it stops."""


@dataclass(frozen=True)
class PeerSpec:
    """The run a peer app performs, as the parent benchmark writes it to a JSON file."""

    bootstrap: str
    topic: str
    partitions: int
    name_prefix: str
    """Prefix of the app's consumer group and of every topic it creates."""
    state_dir: Path
    schema_file: Path
    event_time_field: str
    zone: str
    grace_ms: int
    """How late an event may be for its windows and still count, for a peer that drops late ones."""
    views: tuple[View, ...]
    result_file: Path

    @classmethod
    def read(cls, path: Path) -> PeerSpec:
        raw = json.loads(path.read_text())
        views = tuple(
            View(**{**view, "features": tuple(Feature(**f) for f in view["features"])})
            for view in raw.pop("views")
        )
        paths = {k: Path(raw.pop(k)) for k in ("state_dir", "schema_file", "result_file")}
        return cls(**raw, **paths, views=views)


class FlightDecoder:
    """Decode single-object Avro flights written with one schema file, times as int ms."""

    def __init__(self, schema_file: Path) -> None:
        raw = json.loads(schema_file.read_text())
        canonical = to_parsing_canonical_form(parse_schema(raw, named_schemas={}))
        self._header = SINGLE_OBJECT_MAGIC + bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        # Without its logical type a local-timestamp field reads as the int wall-clock ms.
        for field in raw["fields"]:
            if isinstance(field["type"], dict) and "logicalType" in field["type"]:
                field["type"] = field["type"]["type"]
        self._schema = parse_schema(raw, named_schemas={})

    def decode(self, message: bytes) -> dict[str, Any]:
        if message[:_HEADER_LENGTH] != self._header:
            raise ValueError(
                f"message header {message[:_HEADER_LENGTH].hex()} is not the flight schema's "
                f"{self._header.hex()}; feed the topic with the same schemas folder"
            )
        record: dict[str, Any] = schemaless_reader(
            io.BytesIO(message[_HEADER_LENGTH:]), self._schema, None
        )
        return record


def event_time_ms(wall_ms: int, zone: ZoneInfo) -> int:
    """Convert a wall-clock reading in ``zone`` to UTC epoch ms, taking the first fold (fold=0)."""
    wall = _EPOCH + timedelta(milliseconds=wall_ms)
    offset = zone.utcoffset(wall)
    return wall_ms if offset is None else wall_ms - offset // _ONE_MS


class Progress:
    """Count the events each view applied, and call ``on_done`` once every view has seen its share.

    ``on_done`` runs inside the app's processing step, so it has to stop the app asynchronously.
    """

    def __init__(self, views: tuple[View, ...], on_done: Callable[[], None]) -> None:
        self.started = 0.0
        self.finished: float | None = None
        self.applied = {view.name: 0 for view in views}
        self._expected = {view.name: view.expected_events for view in views}
        self._views_left = len(views)
        self._on_done = on_done

    def start(self) -> None:
        self.started = time.monotonic()

    def count(self, view: str) -> None:
        applied = self.applied[view] + 1
        self.applied[view] = applied
        if applied != self._expected[view]:
            return
        self._views_left -= 1
        if self._views_left == 0:
            self.finished = time.monotonic()
            self._on_done()

    def write(self, path: Path, version: str, extra: dict[str, Any]) -> None:
        """Write the result the parent reads: events applied per view and the seconds it took."""
        seconds = None if self.finished is None else self.finished - self.started
        result = {"version": version, "seconds": seconds, "applied": self.applied, **extra}
        path.write_text(json.dumps(result))
