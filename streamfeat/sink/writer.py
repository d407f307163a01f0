"""Atomic Parquet files of the archive, one per (batch, feature view, event date).

A file is written under a hidden temporary name, synced, then renamed into place, so readers
never see half a file. Its name comes from the feature-log partition and the batch's offset
range, so writing the same batch again replaces the file instead of adding rows.

The files of one batch are written by a few threads at once: pyarrow's encoder and the syncs
release the GIL, and a batch of records spread over many dates makes many small files.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamfeat.definitions.models import Topology
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.sink.columns import ViewRows
from streamfeat.sink.files import sync_folder, write_atomically
from streamfeat.sink.layout import (
    AVAILABLE_AT,
    EVENT_TS,
    date_folder,
    event_date,
    file_name,
    parse_file_name,
)
from streamfeat.sink.source_types import SourceTypes
from streamfeat.sink.table import records_table, rows_tables

logger = logging.getLogger(__name__)


WRITE_THREADS = 4
"""Files written at once."""


class PendingFiles:
    """The files of one batch while the writer's threads write them."""

    def __init__(self, futures: list[Future[Path]]) -> None:
        self._futures = futures

    def done(self) -> bool:
        return all(future.done() for future in self._futures)

    def wait(self) -> None:
        """Wait for every file, whether its write succeeds or fails."""
        wait(self._futures)

    def result(self) -> list[Path]:
        """Wait for every file, so that none is left half done, and return their paths.

        Raises the first error a write raised.
        """
        errors = [future.exception() for future in self._futures]
        for error in errors:
            if error is not None:
                raise error
        return [future.result() for future in self._futures]


class ArchiveWriter:
    """Writes batches of feature records into the archive folder of a topology."""

    def __init__(
        self, topology: Topology, archive_dir: Path, source_types: SourceTypes | None = None
    ) -> None:
        self._topology = topology
        self._archive_dir = archive_dir
        self._column_types: dict[str, dict[str, pa.DataType]] = defaultdict(dict)
        for (view, feature), data_type in (source_types or {}).items():
            self._column_types[view][feature] = data_type
        self._threads: ThreadPoolExecutor | None = None

    def write_batch(
        self, partition: int, first_offset: int, last_offset: int, records: Sequence[FeatureRecord]
    ) -> list[Path]:
        """Write the records of one batch, one file per (view, event date); return the paths.

        Every view in ``records`` must be defined in the topology.
        """
        return self.write_named(file_name(partition, first_offset, last_offset), records)

    def write_named(self, name: str, records: Sequence[FeatureRecord]) -> list[Path]:
        """Write ``records`` as files called ``name``, one per (view, event date)."""
        return self.write_decoded(name, [], records)

    def write_decoded(
        self, name: str, views: Sequence[ViewRows], records: Sequence[FeatureRecord]
    ) -> list[Path]:
        """Write decoded rows and records as files called ``name``, one per (view, event date).

        ``views`` and ``records`` contain different views, each defined in the topology.
        """
        return self.start_decoded(name, views, records).result()

    def start_decoded(
        self, name: str, views: Sequence[ViewRows], records: Sequence[FeatureRecord]
    ) -> PendingFiles:
        """Start writing what ``write_decoded`` writes; the files are done when the result is."""
        tables = self._records_tables(records)
        for rows in views:
            view = self._topology.view(rows.view)
            join_keys = self._topology.entity(view.entity).join_keys
            for date, table in rows_tables(view, join_keys, rows, self._column_types[view.name]):
                tables[(view.name, date)] = table
        if self._threads is None:
            self._threads = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="archive-write")
        futures = [
            self._threads.submit(
                _write_atomically, table, date_folder(self._archive_dir, *key), name
            )
            for key, table in sorted(tables.items())
        ]
        return PendingFiles(futures)

    def _records_tables(self, records: Sequence[FeatureRecord]) -> dict[tuple[str, str], pa.Table]:
        groups: dict[tuple[str, str], list[FeatureRecord]] = defaultdict(list)
        for record in records:
            groups[(record.view, event_date(record.event_ts_ms))].append(record)
        tables = {}
        for (view_name, date), group in groups.items():
            view = self._topology.view(view_name)
            join_keys = self._topology.entity(view.entity).join_keys
            column_types = self._column_types[view_name]
            tables[(view_name, date)] = records_table(view, join_keys, group, column_types)
        return tables

    def existing_ranges(self, partitions: Sequence[int]) -> dict[int, dict[int, int]]:
        """Find the offset ranges already in the archive: partition -> first offset -> last.

        A crash between writing a batch and committing its offsets leaves such files behind.
        The sink cuts its next batches at the same offsets, so it rewrites the same files.
        """
        requested = set(partitions)
        ranges: dict[int, dict[int, int]] = {partition: {} for partition in requested}
        for path in self._archive_dir.glob("*/event_date=*/p*-o*-o*.parquet"):
            parsed = parse_file_name(path.name)
            if parsed is None or parsed[0] not in requested:
                continue
            partition, first_offset, last_offset = parsed
            known = ranges[partition].get(first_offset)
            ranges[partition][first_offset] = max(last_offset, known or last_offset)
        return ranges


def _write_atomically(table: pa.Table, folder: Path, name: str) -> Path:
    final = write_atomically(_encode(table), folder, name)
    sync_folder(folder)
    logger.debug("sink_file_written path=%s rows=%d", final, table.num_rows)
    return final


def _encode(table: pa.Table) -> memoryview:
    """Encode a table as Parquet in memory, which runs without the GIL."""
    strings = [field.name for field in table.schema if pa.types.is_string(field.type)]
    encoded = pa.BufferOutputStream()
    # Dictionaries pay off for the few distinct entity keys, not for times and measures.
    # Statistics serve the filters readers use. Both cost encoding time per column.
    pq.write_table(
        table,
        encoded,
        use_dictionary=strings,
        write_statistics=[*strings, EVENT_TS, AVAILABLE_AT],
    )
    return memoryview(encoded.getvalue())
