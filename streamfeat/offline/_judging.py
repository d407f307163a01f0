"""Judge every row of an events table as a worker's router judges the same events, in order.

The event-level checks run on whole columns (``quality.vectorized``), then duplicates and
lateness against one partition's clock (``_acceptance``). Rejected rows are counted per view
and reason as the router counts its dead letters, and each reason is logged once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from streamfeat.definitions.durations import to_ms
from streamfeat.definitions.models import FeatureView, Source, Topology
from streamfeat.errors import ConfigurationError
from streamfeat.offline._acceptance import judge_order
from streamfeat.offline._events import decode_time_fields, event_times_ms
from streamfeat.quality.reasons import Reason
from streamfeat.quality.vectorized import ACCEPTED, REASONS, ColumnChecker, key_text
from streamfeat.serialization import StoredSchema

logger = logging.getLogger(__name__)

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class JudgedEvents:
    """Decoded events and the verdict on each row."""

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
    """The partition's emission clock after the last event; None when nothing was accepted."""
    checker: ColumnChecker
    processing_ms: int


def judge_events(
    topology: Topology, source: Source, schema: StoredSchema, raw: pa.Table, processing_ms: int
) -> JudgedEvents:
    """Decode the events of ``raw`` and judge every row, in row order as delivery order."""
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
    return JudgedEvents(
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


def count_rejections(
    judged: JudgedEvents, views: Sequence[FeatureView]
) -> Counter[tuple[str, str]]:
    """Count rejected events per (view, reason) as the router counts its dead letters.

    An event no view can use counts for every view under its reason. An accepted event without
    the key of some views counts as ``missing_key`` for those views only. Keys come in the
    order of the reasons, then of the views.
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


def log_rejections(source: Source, judged: JudgedEvents, views: Sequence[FeatureView]) -> None:
    """Log each reason once, with its count and the first rejected row (counted from 0).

    The warning names no field values; the first row's detail goes to DEBUG.
    """
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
    """Return each row's event id as text (null when absent), or None without an id field."""
    if source.event_id is None or source.event_id not in table.column_names:
        return None
    ids = key_text(table.column(source.event_id))
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


def _detail(judged: JudgedEvents, row: int, reason: Reason) -> str:
    """Explain why one row was rejected, in the words of the worker's dead-letter header."""
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
