"""Backfill: compute a source's feature records from historical events with the stream's core.

The events file (CSV or Parquet) holds one row per event with the source schema's fields. Rows
are taken in file order as the delivery order of one partition, so lateness, duplicates
and the data-quality checks decide exactly as a worker reading them in that order would.
Time fields may be int epoch milliseconds, timezone-aware datetimes (instants) or naive
datetimes (wall-clock times in the source's declared zone).

The records go to the archive in the sink's layout, in files named after the source and the
events file's content, so re-running the same backfill rewrites the same files.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from streamfeat.aggregation.clock import PartitionClock
from streamfeat.aggregation.replay import PartitionReplay
from streamfeat.definitions.durations import to_ms
from streamfeat.definitions.models import FeatureView, Source, Topology
from streamfeat.errors import ConfigurationError
from streamfeat.featurelog.record import EntityKey, FeatureRecord
from streamfeat.offline.vectorized import entity_records, is_vectorized, sort_events
from streamfeat.quality.checks import EventChecker
from streamfeat.quality.reasons import Reason
from streamfeat.serialization import SchemaStore, StoredSchema
from streamfeat.serialization.event_time import EventTimeReader
from streamfeat.serialization.times import wall_clock_ms
from streamfeat.sink.source_types import load_source_types
from streamfeat.sink.writer import ArchiveWriter

logger = logging.getLogger(__name__)

FILE_ROWS = 500_000
"""Records per output file group, so a year of records is written in several passes."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class BackfillStats:
    """Counts of a backfill: events read, accepted and rejected, records and files written."""

    events: int = 0
    accepted: int = 0
    records: int = 0
    files: int = 0
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)


def read_events(path: Path) -> pd.DataFrame:
    """Read an events file; CSV empty cells are nulls, Parquet keeps its types."""
    if path.suffix == ".parquet":
        # Nullable pandas types keep Parquet nulls apart from NaN values.
        return pq.read_table(path).to_pandas(types_mapper=pd.ArrowDtype)
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    raise ConfigurationError(f"events file {path} is neither .csv nor .parquet; convert it to one")


def backfill(
    topology: Topology,
    source_name: str,
    events_file: Path,
    archive: Path,
    schemas_dir: Path,
    *,
    clock: Callable[[], int] = wall_clock_ms,
) -> BackfillStats:
    """Compute the records of every view of ``source_name`` from ``events_file``."""
    source = topology.source(source_name)
    views = topology.views_of(source_name)
    if not views:
        raise ConfigurationError(
            f"source {source_name!r} has no feature views; nothing to backfill"
        )
    schema = SchemaStore.from_dir(schemas_dir).for_file(source.schema_file)
    writer = ArchiveWriter(topology, archive, load_source_types(topology, schemas_dir))
    stats = BackfillStats()
    available_at_ms = clock()
    accepted, partition_clock = _accept_events(
        topology, source, read_events(events_file), schema, available_at_ms, stats
    )
    until_ms = partition_clock.emission_ms
    digest = _content_digest(events_file)
    chunk: list[FeatureRecord] = []
    records = _records(topology, source, accepted, until_ms, available_at_ms)
    for record in records:
        chunk.append(record)
        if len(chunk) >= FILE_ROWS:
            _flush(writer, chunk, source, digest, stats)
    _flush(writer, chunk, source, digest, stats)
    logger.info(
        "backfill_done source=%s events=%d accepted=%d records=%d",
        source_name,
        stats.events,
        stats.accepted,
        stats.records,
    )
    return stats


Accepted = list[tuple[int, dict[str, Any], dict[str, EntityKey]]]
"""Accepted events in delivery order: event time, fields, entity key per view."""


def _accept_events(
    topology: Topology,
    source: Source,
    frame: pd.DataFrame,
    schema: StoredSchema,
    processing_ms: int,
    stats: BackfillStats,
) -> tuple[Accepted, PartitionClock]:
    """Judge every row as the router would; return the accepted ones."""
    _check_columns(frame, schema, source)
    views = topology.views_of(source.name)
    all_views = tuple(v.name for v in views)
    checker = EventChecker(source, {v.name: topology.entity(v.entity).join_keys for v in views})
    time_reader = EventTimeReader(source, schema)
    partition_clock = PartitionClock(to_ms(source.allowed_lateness), to_ms(source.idle_timeout))
    seen_ids: dict[str, int] = {}
    memory_ms = max(v.window.length_ms for v in views)
    accepted: Accepted = []
    for event in _rows(frame, schema.raw):
        stats.events += 1
        event_ms = time_reader.read_ms(event)
        verdict = checker.check(event, event_ms, processing_ms)
        if verdict.reason is not None or event_ms is None:
            reason = verdict.reason or Reason.OUT_OF_RANGE
            rejected = verdict.missing_key_views if reason is Reason.MISSING_KEY else all_views
            _count(stats, reason, rejected)
            continue
        if _is_duplicate(source, event, event_ms, partition_clock, seen_ids, memory_ms):
            _count(stats, Reason.DUPLICATE, all_views)
            continue
        if partition_clock.is_late(event_ms):
            _count(stats, Reason.LATE, all_views)
            continue
        partition_clock.accept(event_ms)
        _count(stats, Reason.MISSING_KEY, verdict.missing_key_views)
        stats.accepted += 1
        accepted.append((event_ms, event, verdict.keys))
    return accepted, partition_clock


def _check_columns(frame: pd.DataFrame, schema: StoredSchema, source: Source) -> None:
    """Reject an events file that lacks the event-time field or a field without a default."""
    required = [source.event_time.field] + [
        field["name"] for field in schema.raw.get("fields", []) if "default" not in field
    ]
    missing = sorted({name for name in required if name not in frame.columns})
    if missing:
        raise ConfigurationError(
            f"the events file has no column {', '.join(missing)}, which source "
            f"{source.name!r} needs; give it every field of {schema.name} "
            "(streamfeat produce --out writes such a file)"
        )


def _records(
    topology: Topology,
    source: Source,
    accepted: Accepted,
    until_ms: int | None,
    available_at_ms: int,
) -> Iterator[FeatureRecord]:
    """Final records of every view: vectorized where the view allows, else through the core."""
    views = topology.views_of(source.name)
    if until_ms is None:
        return
    for view in views:
        if is_vectorized(view):
            yield from _vectorized_view(view, accepted, until_ms, available_at_ms)
    replayed = [v for v in views if not is_vectorized(v)]
    if replayed:
        yield from _replayed_views(source, replayed, accepted, available_at_ms)


def _vectorized_view(
    view: FeatureView, accepted: Accepted, until_ms: int, available_at_ms: int
) -> Iterator[FeatureRecord]:
    rows = [(keys[view.name], ms, event) for ms, event, keys in accepted if view.name in keys]
    if not rows:
        return
    columns_used = sorted({f.column for f in view.features if f.column is not None})
    by_entity: dict[EntityKey, list[int]] = {}
    for index, (entity, _, _) in enumerate(rows):
        by_entity.setdefault(entity, []).append(index)
    ts_all = np.fromiter((ms for _, ms, _ in rows), dtype=np.int64, count=len(rows))
    values_all = {
        column: np.array([_as_float(event.get(column)) for _, _, event in rows], dtype=np.float64)
        for column in columns_used
    }
    names = [f.name for f in view.features]
    for entity, indexes in by_entity.items():
        picked = np.asarray(indexes, dtype=np.int64)
        order = picked[sort_events(ts_all[picked])]
        result = entity_records(
            view, ts_all[order], {c: v[order] for c, v in values_all.items()}, until_ms
        )
        for i, event_ts in enumerate(result.event_ts_ms.tolist()):
            yield FeatureRecord(
                view.name,
                view.version,
                entity,
                event_ts,
                int(result.latest_event_ts_ms[i]),
                {name: result.values[j][i] for j, name in enumerate(names)},
                available_at_ms,
            )


def _replayed_views(
    source: Source, views: list[FeatureView], accepted: Accepted, available_at_ms: int
) -> Iterator[FeatureRecord]:
    """Records of views without a vectorized form, from the per-event core."""
    replay = PartitionReplay(views, to_ms(source.allowed_lateness), to_ms(source.idle_timeout))
    names = {v.name: [f.name for f in v.features] for v in views}
    versions = {v.name: v.version for v in views}
    # One available_at stamps every record, so only the last version of each record is kept.
    final: dict[tuple[str, EntityKey, int], FeatureRecord] = {}
    for event_ms, event, keys in accepted:
        emitted = replay.offer(event_ms, event, {v: k for v, k in keys.items() if v in names})
        for item in emitted or []:
            values = dict(zip(names[item.view], item.emission.values, strict=True))
            final[(item.view, item.entity, item.emission.event_ts_ms)] = FeatureRecord(
                item.view,
                versions[item.view],
                item.entity,
                item.emission.event_ts_ms,
                item.emission.latest_event_ts_ms,
                values,
                available_at_ms,
            )
    yield from final.values()


def _as_float(value: Any) -> float:
    """Convert a column value to float64, null to NaN (not-finite values were rejected before)."""
    if value is None:
        return math.nan
    return float(value)


def _flush(
    writer: ArchiveWriter,
    chunk: list[FeatureRecord],
    source: Source,
    digest: str,
    stats: BackfillStats,
) -> None:
    if not chunk:
        return
    name = f"backfill-{source.name}-{digest}-{stats.records:012d}.parquet"
    stats.files += len(writer.write_named(name, chunk))
    stats.records += len(chunk)
    chunk.clear()


def _count(stats: BackfillStats, reason: Reason, views: tuple[str, ...]) -> None:
    for view in views:
        stats.rejected[(view, reason.value)] += 1


def _is_duplicate(
    source: Source,
    event: dict[str, Any],
    event_ms: int,
    partition_clock: PartitionClock,
    seen: dict[str, int],
    memory_ms: int,
) -> bool:
    """R11: an id already accepted on this partition, remembered while it can still matter."""
    if source.event_id is None or event.get(source.event_id) is None:
        return False
    event_id = str(event[source.event_id])
    watermark = partition_clock.watermark_ms
    remembered = seen.get(event_id)
    if remembered is not None and (watermark is None or watermark < remembered + memory_ms):
        return True
    if not partition_clock.is_late(event_ms):
        seen[event_id] = event_ms
    return False


def _rows(frame: pd.DataFrame, schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Rows as the decoder would give them: time fields as int ms, nulls as None."""
    time_fields = {f["name"] for f in schema.get("fields", []) if _is_time_field(f["type"])}
    columns = list(frame.columns)
    for values in frame.itertuples(index=False, name=None):
        event = {}
        for name, value in zip(columns, values, strict=True):
            event[name] = _time_ms(value) if name in time_fields else _plain(value)
        yield event


def _is_time_field(node: Any) -> bool:
    if isinstance(node, list):
        return any(_is_time_field(branch) for branch in node)
    return isinstance(node, dict) and str(node.get("logicalType", "")).endswith(
        ("timestamp-millis", "timestamp-micros")
    )


def _time_ms(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, datetime):
        delta = value - (_EPOCH if value.tzinfo is not None else _EPOCH.replace(tzinfo=None))
        return delta.days * 86_400_000 + delta.seconds * 1_000 + delta.microseconds // 1_000
    return value


def _plain(value: Any) -> Any:
    """Convert a pandas cell to a plain Python value; a missing cell becomes None."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
