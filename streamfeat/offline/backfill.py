"""Backfill: compute a source's feature records from historical events with the stream's core.

The events file (CSV or Parquet) holds one row per event with the source schema's fields. Rows
are taken in file order as the delivery order of one partition, so lateness (R7), duplicates
(R11) and the data-quality checks decide exactly as a worker reading them in that order would.
Time fields may be int epoch milliseconds, timezone-aware datetimes (instants) or naive
datetimes (wall-clock times in the source's declared zone).

The records go to the archive in the sink's layout, in files named after the source and the
events file's content, so re-running the same backfill rewrites the same files.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from streamfeat.aggregation.replay import PartitionReplay
from streamfeat.definitions.durations import to_ms
from streamfeat.definitions.models import Source, Topology
from streamfeat.errors import ConfigurationError
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.quality.checks import EventChecker
from streamfeat.quality.reasons import Reason
from streamfeat.serialization import SchemaStore
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
    """What a backfill read, rejected and wrote."""

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
    schemas = SchemaStore.from_dir(schemas_dir)
    schema = schemas.for_file(source.schema_file)
    checker = EventChecker(source, {v.name: topology.entity(v.entity).join_keys for v in views})
    time_reader = EventTimeReader(source, schema)
    replay = PartitionReplay(views, to_ms(source.allowed_lateness), to_ms(source.idle_timeout))
    frame = read_events(events_file)
    writer = ArchiveWriter(topology, archive, load_source_types(topology, schemas_dir))
    versions = {v.name: v.version for v in views}
    names = {v.name: [f.name for f in v.features] for v in views}
    stats = BackfillStats()
    available_at_ms = clock()
    digest = _content_digest(events_file)
    seen_ids: dict[str, int] = {}
    memory_ms = max(v.window.length_ms for v in views)
    # One available_at stamps every record of a backfill, so only the final version of each
    # (view, entity, event_ts) may be written; records below the watermark can no longer change.
    pending: dict[tuple[str, tuple[str, ...], int], FeatureRecord] = {}
    for event in _rows(frame, schema.raw):
        stats.events += 1
        event_ms = time_reader.read_ms(event)
        verdict = checker.check(event, event_ms, available_at_ms)
        if verdict.reason is not None or event_ms is None:
            reason = verdict.reason or Reason.OUT_OF_RANGE
            _count(
                stats,
                reason,
                verdict.missing_key_views if reason is Reason.MISSING_KEY else tuple(versions),
            )
            continue
        if _is_duplicate(source, event, event_ms, replay, seen_ids, memory_ms):
            _count(stats, Reason.DUPLICATE, tuple(versions))
            continue
        emitted = replay.offer(event_ms, event, verdict.keys)
        if emitted is None:
            _count(stats, Reason.LATE, tuple(versions))
            continue
        _count(stats, Reason.MISSING_KEY, verdict.missing_key_views)
        stats.accepted += 1
        for item in emitted:
            values = dict(zip(names[item.view], item.emission.values, strict=True))
            pending[(item.view, item.entity, item.emission.event_ts_ms)] = FeatureRecord(
                item.view,
                versions[item.view],
                item.entity,
                item.emission.event_ts_ms,
                item.emission.latest_event_ts_ms,
                values,
                available_at_ms,
            )
        if len(pending) >= FILE_ROWS:
            _flush(writer, pending, source, digest, stats, before_ms=replay.clock.watermark_ms)
    _flush(writer, pending, source, digest, stats, before_ms=None)
    logger.info(
        "backfill_done source=%s events=%d accepted=%d records=%d",
        source_name,
        stats.events,
        stats.accepted,
        stats.records,
    )
    return stats


def _flush(
    writer: ArchiveWriter,
    pending: dict[tuple[str, tuple[str, ...], int], FeatureRecord],
    source: Source,
    digest: str,
    stats: BackfillStats,
    before_ms: int | None,
) -> None:
    """Write the pending records with event_ts below ``before_ms`` (all when None)."""
    final = [k for k in pending if before_ms is None or k[2] < before_ms]
    if not final:
        return
    name = f"backfill-{source.name}-{digest}-{stats.records:012d}.parquet"
    stats.files += len(writer.write_named(name, [pending.pop(k) for k in final]))
    stats.records += len(final)


def _count(stats: BackfillStats, reason: Reason, views: tuple[str, ...]) -> None:
    for view in views:
        stats.rejected[(view, reason.value)] += 1


def _is_duplicate(
    source: Source,
    event: dict[str, Any],
    event_ms: int,
    replay: PartitionReplay,
    seen: dict[str, int],
    memory_ms: int,
) -> bool:
    """R11: an id already accepted on this partition, remembered while it can still matter."""
    if source.event_id is None or event.get(source.event_id) is None:
        return False
    event_id = str(event[source.event_id])
    watermark = replay.clock.watermark_ms
    remembered = seen.get(event_id)
    if remembered is not None and (watermark is None or watermark < remembered + memory_ms):
        return True
    if not replay.clock.is_late(event_ms):
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
    """A pandas cell as a plain Python value; missing cells are None (NaN in Parquet stays NaN)."""
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
