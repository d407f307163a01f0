"""The archive's rows exactly as the files have them, every copy and every version included.

The fault tests judge the archive by its files, not through ``read_archive``, which merges
versions with equal content (keeping the earliest ``available_at``). A rebuilt worker can write
a record A, then a passing version B, then A again, and that merge would leave B as the newest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from streamfeat.definitions.models import FeatureView, Topology
from streamfeat.sink.layout import AVAILABLE_AT, EVENT_TS, LATEST_EVENT_TS
from tests.consistency.archives import RecordContent, RecordKey, plain

Version = tuple[int, RecordContent]
"""(available_at in epoch milliseconds, content) of one archived row."""


def view_rows(archive: Path, view: FeatureView, join_key: str) -> pa.Table:
    """Every row of the view's files, times as epoch milliseconds (int64)."""
    files = sorted(str(path) for path in (archive / view.name).glob("*/*.parquet"))
    columns = [join_key, EVENT_TS, LATEST_EVENT_TS, AVAILABLE_AT, *_features(view)]
    if not files:
        return pa.table({name: [] for name in columns})
    table = ds.dataset(files, format="parquet").to_table(columns=columns)
    for name in (EVENT_TS, LATEST_EVENT_TS, AVAILABLE_AT):
        position = table.schema.get_field_index(name)
        table = table.set_column(position, name, pc.cast(table.column(name), pa.int64()))
    return table


@dataclass
class ArchivedVersions:
    """Per (entity, event_ts), every archived version of one view's records."""

    view: FeatureView
    versions: dict[RecordKey, list[Version]]

    @classmethod
    def read(cls, topology: Topology, archive: Path, view: FeatureView) -> ArchivedVersions:
        (join_key,) = topology.entity(view.entity).join_keys
        rows = view_rows(archive, view, join_key).to_pylist()
        versions: dict[RecordKey, list[Version]] = defaultdict(list)
        for row in rows:
            key = (str(row[join_key]), int(row[EVENT_TS]))
            content = (int(row[LATEST_EVENT_TS]), _values(row, view))
            versions[key].append((int(row[AVAILABLE_AT]), content))
        for found in versions.values():
            found.sort(key=lambda version: version[0])
        return cls(view, dict(versions))

    def final_records(self) -> dict[RecordKey, RecordContent]:
        """Per (entity, event_ts), the version with the latest ``available_at``."""
        return {key: found[-1][1] for key, found in self.versions.items()}

    def describe(self, key: RecordKey) -> list[str]:
        """Every version of one record, oldest first, for failure messages."""
        return [
            f"available_at={available_ms} latest={latest_ms} values={values}"
            for available_ms, (latest_ms, values) in self.versions.get(key, [])
        ]


def _features(view: FeatureView) -> list[str]:
    return [feature.name for feature in view.features]


def _values(row: dict[str, Any], view: FeatureView) -> dict[str, Any]:
    return {name: plain(row[name]) for name in _features(view)}
