"""Write views' records into the archive: a Parquet file per (view, event date), atomically.

The layout is the sink's: ``<archive>/<view>/event_date=YYYY-MM-DD/<name>``, with the UTC date of
each record's event time. Each file is written under a hidden temporary name that no reader
matches (``.<name>.tmp``), synced, and renamed into place, so readers never see half a file.
Then the folders are synced, so the renames survive a power loss.

Files are encoded in memory on one thread per core while the caller computes the next view,
because Parquet encoding releases the GIL. Each file then goes to disk in one write call, on a
larger pool of threads that mostly wait: concurrent fsyncs share the file system's journal
commits, where one fsync per file in turn waits for a commit each.
Dictionary encoding and statistics are kept for the columns where they pay: join keys and
constant columns compress to almost nothing, and readers filter on join keys and record times.
The other columns skip them, which cuts encoding time by about a third.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from streamfeat.sink.files import sync_folder, write_atomically
from streamfeat.sink.layout import (
    AVAILABLE_AT,
    EVENT_TS,
    LATEST_EVENT_TS,
    VERSION,
    date_folder,
    event_date,
)

DAY_MS = 86_400_000
_DISK_THREADS = 32
"""Files written and synced at once; fsync waits for the disk, so more threads than cores help."""


class ArchiveFiles:
    """Writes record tables as archive files called ``name``; use it as a context manager."""

    def __init__(self, archive_dir: Path, name: str) -> None:
        self.archive_dir = archive_dir
        self.name = name
        self._encoders = ThreadPoolExecutor(
            os.cpu_count() or 1, thread_name_prefix="backfill-encode"
        )
        self._disk = ThreadPoolExecutor(_DISK_THREADS, thread_name_prefix="backfill-disk")
        self._encoding: list[Future[Future[Path]]] = []
        self._folders: set[Path] = set()

    def __enter__(self) -> ArchiveFiles:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._encoders.shutdown(wait=True, cancel_futures=error is not None)
        self._disk.shutdown(wait=True, cancel_futures=error is not None)

    def write(
        self,
        view: str,
        join_keys: Sequence[str],
        table: pa.Table,
        event_ts_ms: npt.NDArray[np.int64],
    ) -> None:
        """Start writing ``table`` (one row per record, event times ``event_ts_ms``) by date."""
        if table.num_rows == 0:
            return
        days = event_ts_ms // DAY_MS
        order = pa.array(np.argsort(days, kind="stable"))
        days = days[order.to_numpy()]
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        starts = [0, *cuts.tolist()]
        stops = [*cuts.tolist(), len(days)]
        self._folders.add(self.archive_dir / view)
        for start, stop in zip(starts, stops, strict=True):
            folder = date_folder(self.archive_dir, view, event_date(int(days[start]) * DAY_MS))
            self._folders.add(folder)
            rows = order.slice(start, stop - start)
            self._encoding.append(
                self._encoders.submit(self._encode, table, rows, folder, join_keys)
            )

    def finish(self) -> list[Path]:
        """Wait for every file to be in place, sync the folders and return the paths."""
        paths = [future.result().result() for future in self._encoding]
        list(self._disk.map(sync_folder, sorted(self._folders)))
        return paths

    def _encode(
        self, table: pa.Table, rows: pa.Array, folder: Path, join_keys: Sequence[str]
    ) -> Future[Path]:
        """Encode the ``rows`` of ``table`` as Parquet and hand the bytes to a disk thread."""
        buffer = pa.BufferOutputStream()
        pq.write_table(
            table.take(rows),
            buffer,
            use_dictionary=[*join_keys, VERSION, AVAILABLE_AT],
            write_statistics=[*join_keys, EVENT_TS, LATEST_EVENT_TS],
        )
        return self._disk.submit(write_atomically, memoryview(buffer.getvalue()), folder, self.name)
