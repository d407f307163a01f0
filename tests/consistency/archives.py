"""Read both archives record by record, and compare feature values null-safely."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from streamfeat.definitions.models import FeatureView, Topology
from streamfeat.offline.archive import read_archive

REL_TOLERANCE = 1e-9

RecordKey = tuple[str, int]
"""(entity, event_ts in epoch milliseconds)."""
RecordContent = tuple[int, dict[str, Any]]
"""(latest event time in epoch milliseconds, feature values)."""


def is_null(value: Any) -> bool:
    """True for None, pandas' NA and NaN (training sets hold null floats as NaN)."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def same_value(a: Any, b: Any) -> bool:
    """Nulls equal nulls; numbers equal to a relative 1e-9; anything else exactly."""
    if is_null(a) or is_null(b):
        return is_null(a) and is_null(b)
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=REL_TOLERANCE, abs_tol=0.0)
    return bool(a == b)


def plain(value: Any) -> Any:
    """A pandas or numpy scalar as a plain Python value, nulls as None."""
    if is_null(value):
        return None
    return value.item() if hasattr(value, "item") else value


@dataclass
class ArchiveRecords:
    """One view's records in one archive, every version, sorted by entity and event time."""

    view: FeatureView
    frame: pd.DataFrame
    key: str

    @classmethod
    def read(cls, topology: Topology, archive: Path, view: FeatureView) -> ArchiveRecords:
        (key,) = topology.entity(view.entity).join_keys
        frame = read_archive(archive, view.name)
        frame = frame.assign(
            event_ms=_epoch_ms(frame["event_ts"]),
            latest_ms=_epoch_ms(frame["latest_event_ts"]),
            available_ms=_epoch_ms(frame["available_at"]),
        )
        return cls(view, frame, key)

    def final_records(self) -> dict[RecordKey, RecordContent]:
        """Per (entity, event_ts), the version with the latest ``available_at``."""
        names = [feature.name for feature in self.view.features]
        newest = self.frame.sort_values("available_ms", kind="stable").drop_duplicates(
            [self.key, "event_ms"], keep="last"
        )
        result: dict[RecordKey, RecordContent] = {}
        for row in newest[[self.key, "event_ms", "latest_ms", *names]].itertuples(index=False):
            entity, event_ms, latest_ms, *values = row
            content = {name: plain(value) for name, value in zip(names, values, strict=True)}
            result[(str(entity), int(event_ms))] = (int(latest_ms), content)
        return result

    def versions_at(self, entity: str, t_ms: int) -> list[str]:
        """Every version of the entity's latest record at or before ``t_ms``, for reports."""
        rows = self.frame[(self.frame[self.key] == entity) & (self.frame["event_ms"] <= t_ms)]
        if rows.empty:
            return ["no record at or before t"]
        chosen = rows[rows["event_ms"] == rows["event_ms"].max()]
        names = [feature.name for feature in self.view.features]
        return [
            f"event_ts={row.event_ms} latest={row.latest_ms} available_at={row.available_ms} "
            f"values={ {name: plain(getattr(row, name)) for name in names} }"
            for row in chosen.itertuples(index=False)
        ]


def _epoch_ms(column: pd.Series) -> pd.Series:
    return column.dt.as_unit("ms").astype("int64")
