"""Read one feature view's records from the Parquet archive the sink writes.

The archive keeps every version of a record. Reading it applies one rule the files do not:
records that a recovering worker produced again, equal in entity, event time, latest event
time, version and values, count as one, with the earliest ``available_at``. Rows that differ
only in ``available_at`` are such repeats. A correction changes the values or the latest
event time, so it stays a version of its own.

The same files open in DuckDB as
``read_parquet('<archive>/<view>/*/*.parquet', hive_partitioning=true)``, without that rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from streamfeat.errors import ConfigurationError
from streamfeat.sink.layout import (
    AVAILABLE_AT,
    EVENT_DATE,
    EVENT_TS,
    JOIN_KEYS_METADATA,
    LATEST_EVENT_TS,
    RECORD_COLUMNS,
    TIMESTAMP_TYPE,
    VERSION,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_PARTITIONING = ds.partitioning(pa.schema([(EVENT_DATE, pa.string())]), flavor="hive")
_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def read_archive(
    archive_dir: str | Path,
    view: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Read the records of ``view`` with ``start <= event_ts < end`` (either bound optional).

    Returns one row per distinct record: the join-key columns, ``event_ts``,
    ``latest_event_ts`` and ``available_at`` (``datetime64[ms, UTC]``, so years 0001 to 9999
    fit), ``version``, then the features. Integer and boolean features use pandas' nullable
    dtypes, so ints stay exact next to nulls. Rows are sorted by entity, event time and
    ``available_at``. Only the event-date folders that can hold the range are opened.
    """
    folder = Path(archive_dir) / view
    if not folder.is_dir():
        present = sorted(path.name for path in Path(archive_dir).glob("*") if path.is_dir())
        raise ConfigurationError(
            f"archive {archive_dir} has no folder for feature view {view!r}; "
            f"views archived there: {', '.join(present) or 'none'}; check the view name, or run "
            "`streamfeat sink` until the view has records"
        )
    start_ms = None if start is None else _to_ms(start, "start")
    end_ms = None if end is None else _to_ms(end, "end")
    dataset = ds.dataset(folder, format="parquet", partitioning=_PARTITIONING)
    fragments = list(dataset.get_fragments(filter=_date_filter(start_ms, end_ms)))
    if not fragments:
        return _empty_frame(dataset.schema)
    join_keys = _join_keys(fragment.physical_schema for fragment in fragments)
    table = _unified(fragments).to_table(filter=_time_filter(start_ms, end_ms))
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get)
    features = [name for name in frame.columns if name not in {*join_keys, *RECORD_COLUMNS}]
    return _distinct_sorted(frame[[*join_keys, *RECORD_COLUMNS, *features]], join_keys, features)


def read_records(archive_dir: str | Path, view: str, columns: Sequence[str]) -> pa.Table | None:
    """Read ``columns`` of every stored version of every record of ``view``, as stored.

    Unlike ``read_archive``, repeats of a record are kept and rows come in file order. Files
    with other columns (written by another version of the view) are read together, with nulls
    where a file lacks a column. Returns None when the view has no files. Raises
    ConfigurationError when no file has one of ``columns``.
    """
    folder = Path(archive_dir) / view
    if not folder.is_dir():
        return None
    dataset = ds.dataset(folder, format="parquet")
    fragments = list(dataset.get_fragments())
    if not fragments:
        return None
    unified = _unified(fragments)
    missing = [name for name in columns if name not in unified.schema.names]
    if missing:
        raise ConfigurationError(
            f"the archive of feature view {view!r} in {archive_dir} has no column "
            f"{', '.join(map(repr, missing))}; its columns: {', '.join(unified.schema.names)}; "
            "leave those features out or write records that have them"
        )
    return unified.to_table(columns=list(columns))


def _unified(fragments: list[ds.Fragment]) -> ds.Dataset:
    """Return a dataset of ``fragments`` whose schema takes in every file's columns and types.

    A feature whose values were all null in one batch has the null type in that file. A max of
    whole numbers in one batch is int64 where another batch's is float64. So the schemas are
    unified permissively: the null type gives way, and int64 widens to float64.
    """
    schema = pa.unify_schemas(
        [fragment.physical_schema for fragment in fragments], promote_options="permissive"
    )
    return ds.dataset([f.path for f in fragments], schema=schema, format="parquet")


def _to_ms(moment: datetime, name: str) -> int:
    if moment.utcoffset() is None:
        raise ConfigurationError(
            f"{name} {moment.isoformat()} has no time zone; pass an aware datetime, "
            "such as datetime(2013, 1, 1, tzinfo=UTC)"
        )
    return (moment - _EPOCH) // _ONE_MS


def _date_filter(start_ms: int | None, end_ms: int | None) -> ds.Expression | None:
    """Keep the event-date folders that overlap [start, end); ISO dates sort as text."""
    conditions = []
    if start_ms is not None:
        conditions.append(ds.field(EVENT_DATE) >= _date(start_ms))
    if end_ms is not None:
        conditions.append(ds.field(EVENT_DATE) <= _date(end_ms - 1))
    return _all(conditions)


def _time_filter(start_ms: int | None, end_ms: int | None) -> ds.Expression | None:
    conditions = []
    if start_ms is not None:
        conditions.append(ds.field(EVENT_TS) >= pa.scalar(start_ms, TIMESTAMP_TYPE))
    if end_ms is not None:
        conditions.append(ds.field(EVENT_TS) < pa.scalar(end_ms, TIMESTAMP_TYPE))
    return _all(conditions)


def _all(conditions: list[ds.Expression]) -> ds.Expression | None:
    combined = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    return combined


def _date(epoch_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=epoch_ms)).date().isoformat()


def _join_keys(schemas: Iterable[pa.Schema]) -> list[str]:
    """Collect the join-key columns the sink named in each file's metadata, in order."""
    keys: list[str] = []
    for schema in schemas:
        for key in json.loads((schema.metadata or {}).get(JOIN_KEYS_METADATA, b"[]")):
            if key not in keys:
                keys.append(key)
    return keys


def _distinct_sorted(
    frame: pd.DataFrame, join_keys: list[str], features: list[str]
) -> pd.DataFrame:
    """Sort, and drop each version that repeats the one just before it of the same record.

    Only a direct repeat goes: after A, B, A the second A is kept, because it is the newest.
    """
    identity = [*join_keys, EVENT_TS, LATEST_EVENT_TS, VERSION, *features]
    ordered = frame.sort_values([*join_keys, EVENT_TS, AVAILABLE_AT], kind="stable")
    current = ordered[identity]
    previous = current.shift(1)
    equal = (current == previous).fillna(False).astype(bool)
    both_null = current.isna() & previous.isna()
    repeats = (equal | both_null).all(axis=1)
    return ordered[~repeats.to_numpy()].reset_index(drop=True)


def _empty_frame(schema: pa.Schema) -> pd.DataFrame:
    """Return a frame with no rows and the columns of ``schema`` (or the record columns)."""
    fields = [field for field in schema if field.name != EVENT_DATE]
    if not fields:
        fields = [pa.field(name, TIMESTAMP_TYPE) for name in RECORD_COLUMNS[:3]]
        fields.append(pa.field(VERSION, pa.int32()))
    return pa.schema(fields).empty_table().to_pandas(types_mapper=_PANDAS_TYPES.get)
