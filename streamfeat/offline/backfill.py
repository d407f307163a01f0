"""Backfill: compute a source's feature records from historical events, as the stream would.

The events file (CSV or Parquet) holds one row per event with the source schema's fields. Rows
are taken in file order as the delivery order of one partition, so lateness, duplicates
and the data-quality checks decide exactly as a worker reading them in that order would.
Time fields may be int epoch milliseconds, timezone-aware timestamps (instants) or naive
timestamps (wall-clock times in the source's declared zone).

The work is columnar: the file is read as an Arrow table, every check runs on whole columns,
and a view whose functions allow it is computed for all its entities at once (see
``vectorized``). Other views replay the accepted events through the per-event core.

The records go to the archive in the sink's layout, one file per (view, event date), named
after the source and the events file's content, so re-running the same backfill rewrites the
same files.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from streamfeat.aggregation.replay import PartitionReplay
from streamfeat.definitions.durations import to_ms
from streamfeat.definitions.models import FeatureView, Source, Topology
from streamfeat.errors import ConfigurationError
from streamfeat.featurelog.record import EntityKey, FeatureRecord
from streamfeat.offline._acceptance import judge_order
from streamfeat.offline._archive_files import write_view_records
from streamfeat.offline._events import decode_time_fields, event_times_ms, read_events
from streamfeat.offline._record_tables import vectorized_table
from streamfeat.offline.vectorized import is_vectorized, view_records
from streamfeat.quality.reasons import Reason
from streamfeat.quality.vectorized import ACCEPTED, REASONS, ColumnChecker, key_text
from streamfeat.serialization import SchemaStore, StoredSchema
from streamfeat.serialization.times import wall_clock_ms
from streamfeat.sink.source_types import load_source_types
from streamfeat.sink.table import records_table

logger = logging.getLogger(__name__)

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


@dataclass
class BackfillStats:
    """Counts of a backfill: events read, accepted and rejected, records and files written."""

    events: int = 0
    accepted: int = 0
    records: int = 0
    files: int = 0
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Judged:
    """The decoded events and the verdict on each row."""

    table: pa.Table
    event_ms: Ints
    """Event time of each row in UTC epoch milliseconds; 0 where ``has_time`` is false."""
    has_time: Mask
    reasons: npt.NDArray[np.int8]
    """Reason code of each row, an index into ``REASONS``; duplicates and late included."""
    has_key: dict[str, Mask]
    accepted: Mask
    watermark_ms: Ints
    emission_ms: int | None
    checker: ColumnChecker
    processing_ms: int


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
    source_types = load_source_types(topology, schemas_dir)
    available_at_ms = clock()
    judged = _judge(topology, source, schema, read_events(events_file, schema), available_at_ms)
    stats = BackfillStats(
        events=judged.table.num_rows,
        accepted=int(judged.accepted.sum()),
        rejected=_rejections(judged, views),
    )
    _log_rejections(source, judged, views)
    name = f"backfill-{source.name}-{_content_digest(events_file)}.parquet"
    for view in views if judged.emission_ms is not None else ():
        join_keys = topology.entity(view.entity).join_keys
        types = {feature: kind for (v, feature), kind in source_types.items() if v == view.name}
        table, event_ts_ms = _view_table(source, view, join_keys, judged, types, available_at_ms)
        stats.files += len(write_view_records(archive, view.name, table, event_ts_ms, name))
        stats.records += table.num_rows
    logger.info(
        "backfill_done source=%s events=%d accepted=%d records=%d files=%d",
        source_name,
        stats.events,
        stats.accepted,
        stats.records,
        stats.files,
    )
    return stats


def _judge(
    topology: Topology, source: Source, schema: StoredSchema, raw: pa.Table, processing_ms: int
) -> _Judged:
    """Decode the events and judge every row as the router would, in file order."""
    _check_columns(raw, schema, source)
    table = decode_time_fields(raw, schema)
    views = topology.views_of(source.name)
    join_keys = {v.name: topology.entity(v.entity).join_keys for v in views}
    times = event_times_ms(table, source, schema)
    checker = ColumnChecker(source, join_keys)
    verdicts = checker.check(table, times, processing_ms)
    event_ms = np.asarray(times.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    acceptance = judge_order(
        event_ms,
        verdicts.reasons == ACCEPTED,
        _event_ids(table, source),
        to_ms(source.allowed_lateness),
        max(v.window.length_ms for v in views),
    )
    reasons = verdicts.reasons.copy()
    reasons[acceptance.duplicate] = REASONS.index(Reason.DUPLICATE)
    reasons[acceptance.late] = REASONS.index(Reason.LATE)
    return _Judged(
        table,
        event_ms,
        np.asarray(times.is_valid().to_numpy(zero_copy_only=False), dtype=bool),
        reasons,
        verdicts.has_key,
        acceptance.accepted,
        acceptance.watermark_ms,
        acceptance.emission_ms,
        checker,
        processing_ms,
    )


def _check_columns(table: pa.Table, schema: StoredSchema, source: Source) -> None:
    """Reject an events file that lacks the event-time field or a field without a default."""
    required = [source.event_time.field] + [
        field["name"] for field in schema.raw.get("fields", []) if "default" not in field
    ]
    missing = sorted({name for name in required if name not in table.column_names})
    if missing:
        raise ConfigurationError(
            f"the events file has no column {', '.join(missing)}, which source "
            f"{source.name!r} needs; give it every field of {schema.name} "
            "(streamfeat produce --out writes such a file)"
        )


def _event_ids(table: pa.Table, source: Source) -> pa.Array | None:
    """Each row's event id as text (null when absent), or None when no id field applies."""
    if source.event_id is None or source.event_id not in table.column_names:
        return None
    ids = key_text(table.column(source.event_id))
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


def _rejections(judged: _Judged, views: Sequence[FeatureView]) -> Counter[tuple[str, str]]:
    """Rejected events per (view, reason), counted as the router counts its dead letters.

    An event no view can use counts for every view under its reason. An accepted event without
    the key of some views counts as ``missing_key`` for those views only.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for code, reason in enumerate(REASONS):
        total = int(np.count_nonzero(judged.reasons == code))
        for view in views:
            events = total
            if reason is Reason.MISSING_KEY:
                events += int(np.count_nonzero(judged.accepted & ~judged.has_key[view.name]))
            if events:
                counts[(view.name, reason.value)] = events
    return counts


def _log_rejections(source: Source, judged: _Judged, views: Sequence[FeatureView]) -> None:
    """Log each reason once, with its count and the first rejected row (counted from 0)."""
    names = ",".join(view.name for view in views)
    for code, reason in enumerate(REASONS):
        rows = np.flatnonzero(judged.reasons == code)
        if len(rows) == 0:
            continue
        logger.warning(
            "backfill_rejected source=%s reason=%s events=%d views=%s first_row=%d",
            source.name,
            reason.value,
            len(rows),
            names,
            rows[0],
        )
        logger.debug(
            "backfill_rejected_detail source=%s row=%d detail=%s",
            source.name,
            rows[0],
            _detail(judged, int(rows[0]), reason),
        )


def _detail(judged: _Judged, row: int, reason: Reason) -> str:
    """Why one row was rejected, in the words of the worker's dead-letter header."""
    event = judged.table.slice(row, 1).to_pylist()[0]
    event_ms = int(judged.event_ms[row])
    if reason is Reason.LATE:
        late_by_ms = int(judged.watermark_ms[row]) - event_ms
        return f"event time {event_ms} ms is {late_by_ms} ms below the watermark"
    checker = judged.checker.scalar
    if reason is Reason.DUPLICATE:
        return f"event id {event.get(checker.source.event_id or '')!r} was already accepted"
    read_ms = event_ms if judged.has_time[row] else None
    return checker.check(event, read_ms, judged.processing_ms).detail


def _view_table(
    source: Source,
    view: FeatureView,
    join_keys: Sequence[str],
    judged: _Judged,
    column_types: Mapping[str, pa.DataType],
    available_at_ms: int,
) -> tuple[pa.Table, Ints]:
    """The archive table of one view's final records and their event times."""
    columns = _used_columns(view, judged.table)
    types = {name: judged.table.schema.field(name).type for name in columns}
    if not is_vectorized(view, types):
        return _replayed_table(source, view, join_keys, judged, column_types, available_at_ms)
    rows = pa.array(np.flatnonzero(judged.accepted & judged.has_key[view.name]))
    entity, entity_keys = _entity_codes(
        [key_text(judged.table.column(k)).take(rows) for k in join_keys]
    )
    records = view_records(
        view,
        entity,
        judged.event_ms[rows.to_numpy()],
        {name: judged.table.column(name).take(rows).combine_chunks() for name in columns},
        _emission(judged),
    )
    table = vectorized_table(view, join_keys, records, entity_keys, column_types, available_at_ms)
    return table, records.event_ts_ms


def _entity_codes(keys: Sequence[pa.Array | pa.ChunkedArray]) -> tuple[Ints, list[pa.Array]]:
    """Number the distinct entities; return each row's code and each join key's text per code."""
    encoded = [pc.dictionary_encode(_combined(column)) for column in keys]
    codes = [np.asarray(e.indices.to_numpy(zero_copy_only=False), dtype=np.int64) for e in encoded]
    if len(codes) == 1:
        return codes[0], [encoded[0].dictionary]
    distinct, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    texts = [e.dictionary.take(pa.array(distinct[:, k])) for k, e in enumerate(encoded)]
    return inverse.reshape(-1).astype(np.int64), texts


def _replayed_table(
    source: Source,
    view: FeatureView,
    join_keys: Sequence[str],
    judged: _Judged,
    column_types: Mapping[str, pa.DataType],
    available_at_ms: int,
) -> tuple[pa.Table, Ints]:
    """Records of a view without a vectorized form, from the per-event core.

    Every accepted event is offered, with or without this view's key, so the replay's
    emission clock moves as the partition's does.
    """
    table = judged.table
    rows = pa.array(np.flatnonzero(judged.accepted))
    columns = _used_columns(view, table)
    events = table.select(columns).take(rows).to_pylist()
    key_lists = [key_text(table.column(k)).take(rows).to_pylist() for k in join_keys]
    keyed = judged.has_key[view.name][rows.to_numpy()].tolist()
    replay = PartitionReplay([view], to_ms(source.allowed_lateness), to_ms(source.idle_timeout))
    names = [f.name for f in view.features]
    # One available_at stamps every record, so only the last version of each record is kept.
    final: dict[tuple[EntityKey, int], FeatureRecord] = {}
    for index, (event_ms, event) in enumerate(
        zip(judged.event_ms[rows.to_numpy()].tolist(), events, strict=True)
    ):
        keys = {view.name: tuple(k[index] for k in key_lists)} if keyed[index] else {}
        for item in replay.offer(event_ms, event, keys) or []:
            emission = item.emission
            final[(item.entity, emission.event_ts_ms)] = FeatureRecord(
                view.name,
                view.version,
                item.entity,
                emission.event_ts_ms,
                emission.latest_event_ts_ms,
                dict(zip(names, emission.values, strict=True)),
                available_at_ms,
            )
    records = list(final.values())
    event_ts_ms = np.array([r.event_ts_ms for r in records], dtype=np.int64)
    return records_table(view, join_keys, records, column_types), event_ts_ms


def _used_columns(view: FeatureView, table: pa.Table) -> list[str]:
    """The view's feature columns that the events file has; the others are null throughout."""
    names = {f.column for f in view.features if f.column is not None}
    return sorted(names & set(table.column_names))


def _emission(judged: _Judged) -> int:
    if judged.emission_ms is None:
        raise ValueError("no event was accepted, so no emission clock exists")
    return judged.emission_ms


def _combined(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    return column


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
