"""RocksDB state of one input partition, written atomically once per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
from rocksdict import Options, Rdict, WriteBatch

from streamfeat.serialization.times import wall_clock_ms

OFFSET_KEY = b"offset"
"""Key of the last input offset whose effects the state holds."""
COMMITTED_AT_KEY = b"committed_at"
"""Key of the wall-clock time, in epoch milliseconds, of the last commit with an offset."""
SCAN_PREFIX_LENGTH = 2
SCANNED_PREFIXES = frozenset({b"i:", b"x:"})
"""Key spaces that ``scan`` reads: the slot-boundary index and the event-id expiry index."""


_PACKER = msgpack.Packer(use_bin_type=True)
"""One packer for every call: ``msgpack.packb`` allocates a 256 KiB buffer each time."""


def pack(value: Any) -> bytes:
    packed: bytes = _PACKER.pack(value)
    return packed


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


MEMTABLE_BYTES = 8 << 20
"""Size of each RocksDB memtable (two per partition). With RocksDB's default of 64 MiB, the
memory benchmark found memtables, not entities, made most of a worker's memory."""


def _options() -> Options:
    options = Options(raw_mode=True)
    options.set_write_buffer_size(MEMTABLE_BYTES)
    options.set_max_write_buffer_number(2)
    return options


class PartitionState:
    """A RocksDB database whose changes are staged in memory and written in one batch.

    Reads see staged changes first, so a batch can read what it wrote. ``commit`` writes the
    staged changes together with the input offset they account for.
    """

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), _options())
        self._staged: dict[bytes, bytes | None] = {}
        self._staged_scannable: dict[bytes, set[bytes]] = {}
        stored = self._db.get(OFFSET_KEY)
        self.offset: int | None = None if stored is None else unpack(stored)
        committed_at = self._db.get(COMMITTED_AT_KEY)
        self.committed_at_ms: int | None = None if committed_at is None else unpack(committed_at)

    def get(self, key: bytes) -> Any:
        data = self._staged[key] if key in self._staged else self._db.get(key)
        return None if data is None else unpack(data)

    def put(self, key: bytes, value: Any) -> None:
        self._staged[key] = pack(value)
        self._note_scannable(key)

    def delete(self, key: bytes) -> None:
        self._staged[key] = None
        self._note_scannable(key)

    def _note_scannable(self, key: bytes) -> None:
        prefix = key[:SCAN_PREFIX_LENGTH]
        if prefix in SCANNED_PREFIXES:
            self._staged_scannable.setdefault(prefix, set()).add(key)

    def scan(self, start: bytes, stop: bytes) -> list[tuple[bytes, Any]]:
        """Entries with ``start <= key < stop`` in key order, staged changes included.

        ``start`` must begin with one of SCANNED_PREFIXES, the key spaces kept for scanning.
        """
        found: dict[bytes, bytes] = {}
        iterator = self._db.iter()
        iterator.seek(start)
        while iterator.valid():
            key = iterator.key()
            if key >= stop:
                break
            found[key] = iterator.value()
            iterator.next()
        for key in self._staged_scannable.get(start[:SCAN_PREFIX_LENGTH], ()):
            if start <= key < stop:
                data = self._staged[key]
                if data is None:
                    found.pop(key, None)
                else:
                    found[key] = data
        return [(key, unpack(found[key])) for key in sorted(found)]

    def first_key(self, start: bytes, stop: bytes) -> bytes | None:
        """The smallest key with ``start <= key < stop``, staged changes included."""
        iterator = self._db.iter()
        iterator.seek(start)
        committed = None
        while iterator.valid() and iterator.key() < stop:
            key = iterator.key()
            if self._staged.get(key, b"") is not None:
                committed = key
                break
            iterator.next()
        staged = [
            key
            for key in self._staged_scannable.get(start[:SCAN_PREFIX_LENGTH], ())
            if start <= key < stop and self._staged[key] is not None
        ]
        candidates = staged + ([committed] if committed is not None else [])
        return min(candidates) if candidates else None

    def commit(self, offset: int | None) -> None:
        """Write staged changes and the input offset they account for in one atomic batch.

        With an offset, the batch also records the wall-clock time of the commit.
        """
        batch = WriteBatch(raw_mode=True)
        for key, data in self._staged.items():
            if data is None:
                batch.delete(key)
            else:
                batch.put(key, data)
        if offset is not None:
            committed_at_ms = wall_clock_ms()
            batch.put(OFFSET_KEY, pack(offset))
            batch.put(COMMITTED_AT_KEY, pack(committed_at_ms))
            self.offset = offset
            self.committed_at_ms = committed_at_ms
        self._db.write(batch)
        self._staged.clear()
        self._staged_scannable.clear()

    def discard(self) -> None:
        """Drop staged changes (the batch that made them failed)."""
        self._staged.clear()
        self._staged_scannable.clear()

    def close(self) -> None:
        self._staged.clear()
        self._db.close()
