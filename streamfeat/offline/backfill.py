"""Backfill: compute a source's feature records from historical events, as the stream would.

The events file (CSV or Parquet) holds one row per event with the source schema's fields. Rows
are taken in file order as the delivery order of one partition, so lateness, duplicates
and the data-quality checks decide exactly as a worker reading them in that order would.
Time fields may hold int epoch milliseconds or timestamps. A timestamp gives its milliseconds
as stored: the UTC instant when it has a zone, the wall-clock reading when it is naive. The
field's logical type then decides, as in the worker: an instant type reads them as UTC, a local
type as wall-clock time in the source's declared zone.

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
from collections.abc import Callable, Sequence
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
from streamfeat.offline._archive_files import ArchiveFiles
from streamfeat.offline._events import read_events
from streamfeat.offline._judging import JudgedEvents, count_rejections, judge_events, log_rejections
from streamfeat.offline._record_tables import vectorized_table
from streamfeat.offline.vectorized import is_vectorized, view_records
from streamfeat.quality.vectorized import key_text
from streamfeat.serialization import SchemaStore
from streamfeat.serialization.times import wall_clock_ms
from streamfeat.sink.source_types import SourceTypes, load_source_types
from streamfeat.sink.table import records_table

logger = logging.getLogger(__name__)

Ints = npt.NDArray[np.int64]


@dataclass
class BackfillStats:
    """Counts of a backfill: events read, accepted and rejected, records and files written."""

    events: int = 0
    accepted: int = 0
    records: int = 0
    files: int = 0
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Inputs:
    """Inputs of every view's records: the judged events, the final clock and the record stamp."""

    source: Source
    judged: JudgedEvents
    emission_ms: int
    source_types: SourceTypes
    available_at_ms: int

    def column_types(self, view: FeatureView) -> dict[str, pa.DataType]:
        """Return the archive types of the view's min, max and last features by feature name."""
        return {f: kind for (v, f), kind in self.source_types.items() if v == view.name}


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
    available_at_ms = clock()
    events = read_events(events_file, schema)
    judged = judge_events(topology, source, schema, events, available_at_ms)
    stats = BackfillStats(
        events=judged.table.num_rows,
        accepted=int(np.count_nonzero(judged.accepted)),
        rejected=count_rejections(judged, views),
    )
    log_rejections(source, judged, views)
    if judged.emission_ms is not None:
        source_types = load_source_types(topology, schemas_dir)
        inputs = _Inputs(source, judged, judged.emission_ms, source_types, available_at_ms)
        name = f"backfill-{source.name}-{_content_digest(events_file)}.parquet"
        with ArchiveFiles(archive, name) as files:
            for view in views:
                join_keys = topology.entity(view.entity).join_keys
                table, event_ts_ms = _view_table(view, join_keys, inputs)
                files.write(view.name, join_keys, table, event_ts_ms)
                stats.records += table.num_rows
            stats.files = len(files.finish())
    logger.info(
        "backfill_done source=%s events=%d accepted=%d records=%d files=%d",
        source_name,
        stats.events,
        stats.accepted,
        stats.records,
        stats.files,
    )
    return stats


def _view_table(
    view: FeatureView, join_keys: Sequence[str], inputs: _Inputs
) -> tuple[pa.Table, Ints]:
    """Build the archive table of one view's final records; return it and their event times."""
    judged = inputs.judged
    columns = _used_columns(view, judged.table)
    types = {name: judged.table.schema.field(name).type for name in columns}
    if not is_vectorized(view, types):
        return _replayed_table(view, join_keys, inputs)
    rows = pa.array(np.flatnonzero(judged.accepted & judged.has_key[view.name]))
    entity, entity_keys = _entity_codes(
        [key_text(judged.table.column(key)).take(rows) for key in join_keys]
    )
    records = view_records(
        view,
        entity,
        judged.event_ms[rows.to_numpy()],
        {name: judged.table.column(name).take(rows).combine_chunks() for name in columns},
        inputs.emission_ms,
    )
    column_types = inputs.column_types(view)
    table = vectorized_table(
        view, join_keys, records, entity_keys, column_types, inputs.available_at_ms
    )
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
    view: FeatureView, join_keys: Sequence[str], inputs: _Inputs
) -> tuple[pa.Table, Ints]:
    """Build the records of a view without a vectorized form with the per-event core.

    Every accepted event is offered, with or without this view's key, so the replay's
    emission clock moves as the partition's does.
    """
    judged, source = inputs.judged, inputs.source
    rows = pa.array(np.flatnonzero(judged.accepted))
    events = judged.table.select(_used_columns(view, judged.table)).take(rows).to_pylist()
    times = judged.event_ms[rows.to_numpy()].tolist()
    key_lists = [key_text(judged.table.column(key)).take(rows).to_pylist() for key in join_keys]
    keyed = judged.has_key[view.name][rows.to_numpy()].tolist()
    replay = PartitionReplay([view], to_ms(source.allowed_lateness), to_ms(source.idle_timeout))
    names = [f.name for f in view.features]
    # One available_at stamps every record, so only the last version of each record is kept.
    final: dict[tuple[EntityKey, int], FeatureRecord] = {}
    for index, (event_ms, event) in enumerate(zip(times, events, strict=True)):
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
                inputs.available_at_ms,
            )
    records = list(final.values())
    event_ts_ms = np.array([r.event_ts_ms for r in records], dtype=np.int64)
    table = records_table(view, join_keys, records, inputs.column_types(view))
    return table, event_ts_ms


def _used_columns(view: FeatureView, table: pa.Table) -> list[str]:
    """Return the view's feature columns that the events file has; the others are all null."""
    names = {f.column for f in view.features if f.column is not None}
    return sorted(names & set(table.column_names))


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
