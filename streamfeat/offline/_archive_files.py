"""Write one view's records into the archive: a Parquet file per event date, written atomically.

The layout is the sink's: ``<archive>/<view>/event_date=YYYY-MM-DD/<name>``, with the UTC date of
each record's event time. Each file is written under a hidden temporary name, synced, and
renamed into place, so readers never see half a file; then the date folders are synced so the
renames survive a power loss. Files are written on a thread pool: Parquet encoding and fsync
both release the GIL, and concurrent fsyncs share the file system's journal commits.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from streamfeat.sink.layout import date_folder, event_date

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000


def write_view_records(
    archive_dir: Path, view: str, table: pa.Table, event_ts_ms: npt.NDArray[np.int64], name: str
) -> list[Path]:
    """Write ``table`` (one row per record, event times ``event_ts_ms``) as files called ``name``.

    Returns the paths written, one per event date, in date order.
    """
    if table.num_rows == 0:
        return []
    days = event_ts_ms // DAY_MS
    order = np.argsort(days, kind="stable")
    days = days[order]
    table = table.take(pa.array(order))
    cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
    starts = [0, *cuts.tolist()]
    stops = [*cuts.tolist(), len(days)]
    parts = [
        (date_folder(archive_dir, view, event_date(int(days[a]) * DAY_MS)), table.slice(a, b - a))
        for a, b in zip(starts, stops, strict=True)
    ]
    for folder, _ in parts:
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor() as pool:
        paths = list(pool.map(lambda part: _write_atomically(part[1], part[0], name), parts))
        list(pool.map(_sync_folder, [folder for folder, _ in parts] + [archive_dir / view]))
    logger.debug("backfill_files_written feature_view=%s files=%d", view, len(paths))
    return paths


def _write_atomically(table: pa.Table, folder: Path, name: str) -> Path:
    final = folder / name
    temporary = folder / f".{name}.tmp"
    with open(temporary, "wb") as handle:
        pq.write_table(table, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final


def _sync_folder(folder: Path) -> None:
    """Persist the renames in ``folder``."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
