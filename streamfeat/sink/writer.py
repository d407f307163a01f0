"""Atomic Parquet files of the archive, one per (batch, feature view, event date).

A file is written under a hidden temporary name, synced, then renamed into place, so readers
never see half a file. Its name comes from the feature-log partition and the batch's offset
range, so writing the same batch again replaces the file instead of adding rows.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamfeat.definitions.models import Topology
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.sink.layout import date_folder, event_date, file_name, parse_file_name
from streamfeat.sink.source_types import SourceTypes
from streamfeat.sink.table import records_table

logger = logging.getLogger(__name__)


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

    def write_batch(
        self, partition: int, first_offset: int, last_offset: int, records: Sequence[FeatureRecord]
    ) -> list[Path]:
        """Write the records of one batch, one file per (view, event date); return the paths.

        Every view in ``records`` must be defined in the topology.
        """
        return self.write_named(file_name(partition, first_offset, last_offset), records)

    def write_named(self, name: str, records: Sequence[FeatureRecord]) -> list[Path]:
        """Write ``records`` as files called ``name``, one per (view, event date)."""
        groups: dict[tuple[str, str], list[FeatureRecord]] = defaultdict(list)
        for record in records:
            groups[(record.view, event_date(record.event_ts_ms))].append(record)
        paths = []
        for (view_name, date), group in sorted(groups.items()):
            view = self._topology.view(view_name)
            join_keys = self._topology.entity(view.entity).join_keys
            table = records_table(view, join_keys, group, self._column_types[view_name])
            paths.append(
                _write_atomically(table, date_folder(self._archive_dir, view_name, date), name)
            )
        return paths

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
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    temporary = folder / f".{name}.tmp"
    with open(temporary, "wb") as handle:
        pq.write_table(table, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    _sync_folder(folder)
    logger.debug("sink_file_written path=%s rows=%d", final, table.num_rows)
    return final


def _sync_folder(folder: Path) -> None:
    """Persist the rename, so a file whose offsets get committed survives a power loss."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
