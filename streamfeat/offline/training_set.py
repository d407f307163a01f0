"""Point-in-time correct training sets: feature values joined to label rows.

For each label row (entity keys, label time ``t``, any other columns) and each requested feature
view, the join takes the view's latest record with ``event_ts <= t``; among versions of that
record, the one with the latest ``available_at``. It then applies the view's TTL with the
latest event time the record carries: past the TTL the values are null. A record from
after ``t`` is never used. With ``as_known_then`` only the record versions available at ``t``
take part, so the answer is what the online store could have served then.

The output has exactly one row per label row, in the labels' order, duplicates included, with
every label column unchanged and one column per feature named ``<view>__<feature>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from streamfeat.definitions.models import FeatureView, Topology
from streamfeat.errors import ConfigurationError
from streamfeat.serialization.times import datetime_to_ms

_NULLABLE_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
"""Integer and boolean features keep their type where a value is null."""

ROW = "__streamfeat_row"
LABEL_MS = "__streamfeat_t_ms"


def feature_column(view: str, feature: str) -> str:
    """Name of a feature's column in a training set."""
    return f"{view}__{feature}"


def training_set(
    labels: pd.DataFrame,
    topology: Topology,
    archive: str | Path,
    *,
    features: Sequence[str] | None = None,
    timestamp_column: str = "event_timestamp",
    as_known_then: bool = False,
) -> pd.DataFrame:
    """Join the archive's feature values to ``labels`` as of each label's time.

    ``features`` names views (``plane_7d``) or single features (``plane_7d:flights``); by
    default every feature of every view whose join keys are columns of ``labels``.
    """
    archive = Path(archive)
    if not archive.is_dir():
        raise ConfigurationError(
            f"archive folder {archive} does not exist; point to the folder that "
            "streamfeat sink or streamfeat backfill wrote"
        )
    requested = _resolve_features(topology, labels, features)
    frame = labels.copy(deep=False)
    frame[LABEL_MS] = label_times_ms(labels, timestamp_column)
    frame[ROW] = range(len(frame))
    connection = duckdb.connect()
    try:
        keys = sorted({key for view, _ in requested for key in _join_keys(topology, view)})
        label_table = frame[[ROW, LABEL_MS, *keys]].copy()
        for key in keys:
            label_table[key] = label_table[key].astype("string")
        connection.register("labels", label_table)
        result = frame.drop(columns=[LABEL_MS])
        for view, names in requested:
            joined = _join_view(connection, topology, view, names, Path(archive), as_known_then)
            for name in names:
                result[feature_column(view.name, name)] = joined[name].array
    finally:
        connection.close()
    return result.drop(columns=[ROW])


def label_times_ms(labels: pd.DataFrame, column: str) -> pd.Series:
    """Label times as UTC epoch milliseconds; naive times are rejected, not guessed."""
    if column not in labels.columns:
        raise ConfigurationError(
            f"label column {column!r} is missing; name the label-time column "
            "(timestamp_column in Python, --timestamp-column on the command line; "
            f"columns: {', '.join(map(str, labels.columns))})"
        )
    series = labels[column]
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.as_unit("ms").astype("int64")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        raise ConfigurationError(
            f"label column {column!r} contains times without a time zone; localize them first, "
            f"such as labels[{column!r}].dt.tz_localize('UTC')"
        )
    values = []
    for value in series:
        if not isinstance(value, datetime):
            raise ConfigurationError(
                f"label column {column!r} contains {value!r}, not a datetime; convert it with "
                "pandas.to_datetime(..., utc=True)"
            )
        values.append(datetime_to_ms(value))
    return pd.Series(values, index=labels.index, dtype="int64")


def _resolve_features(
    topology: Topology, labels: pd.DataFrame, features: Sequence[str] | None
) -> list[tuple[FeatureView, list[str]]]:
    if features is None:
        views = [
            v
            for v in topology.feature_views
            if all(k in labels.columns for k in _join_keys(topology, v))
        ]
        if not views:
            raise ConfigurationError(
                "no feature view's join keys are all columns of the labels; add the join-key "
                "columns or name the features"
            )
        return [(v, [f.name for f in v.features]) for v in views]
    requested: dict[str, list[str]] = {}
    for item in features:
        view_name, _, feature = item.partition(":")
        try:
            view = topology.view(view_name)
        except KeyError as error:
            raise ConfigurationError(str(error.args[0])) from None
        names = [f.name for f in view.features]
        if feature and feature not in names:
            raise ConfigurationError(
                f"feature {feature!r} is not in view {view_name!r}; "
                f"its features: {', '.join(names)}"
            )
        chosen = requested.setdefault(view_name, [])
        chosen.extend(n for n in ([feature] if feature else names) if n not in chosen)
    for view_name in requested:
        missing = [
            k for k in _join_keys(topology, topology.view(view_name)) if k not in labels.columns
        ]
        if missing:
            raise ConfigurationError(
                f"view {view_name!r} needs join-key columns {', '.join(missing)} in the labels"
            )
    return [(topology.view(name), names) for name, names in requested.items()]


def _join_keys(topology: Topology, view: FeatureView) -> tuple[str, ...]:
    return topology.entity(view.entity).join_keys


def _join_view(
    connection: duckdb.DuckDBPyConnection,
    topology: Topology,
    view: FeatureView,
    names: list[str],
    archive: Path,
    as_known_then: bool,
) -> pd.DataFrame:
    """Values of ``names`` per label row for one view, ordered by label row."""
    keys = _join_keys(topology, view)
    files = sorted((archive / view.name).glob("*/*.parquet"))
    if not files:
        raise ConfigurationError(
            f"the archive {archive} contains no records of view {view.name!r}; run the sink or a "
            "backfill into that folder, or leave the view out"
        )
    connection.register(
        "archive_files",
        connection.read_parquet(
            [str(f) for f in files], hive_partitioning=True, union_by_name=True
        ),
    )
    connection.execute(
        "CREATE OR REPLACE TEMP VIEW records AS SELECT "
        + ", ".join(f'CAST("{k}" AS VARCHAR) AS "{k}"' for k in keys)
        + ", epoch_ms(event_ts) AS event_ms, epoch_ms(latest_event_ts) AS latest_ms, "
        "epoch_ms(available_at) AS available_ms, "
        + ", ".join(f'"{n}"' for n in names)
        + " FROM archive_files"
    )
    key_match = " AND ".join(f'l."{k}" = r."{k}"' for k in keys)
    chosen = _as_known_then_sql(key_match) if as_known_then else _by_event_time_sql(keys, key_match)
    ttl = "NULL" if view.ttl_ms is None else str(view.ttl_ms)
    # R3: past the TTL, counted from the latest event the record carries, values are null.
    expired = f"(latest_ms IS NULL OR ({ttl} IS NOT NULL AND {LABEL_MS} - latest_ms > {ttl}))"
    columns = ", ".join(f'CASE WHEN {expired} THEN NULL ELSE "{n}" END AS "{n}"' for n in names)
    table = connection.sql(f"SELECT {columns} FROM ({chosen}) ORDER BY {ROW}").to_arrow_table()
    return table.to_pandas(types_mapper=_NULLABLE_TYPES.get)


def _by_event_time_sql(keys: Sequence[str], key_match: str) -> str:
    """Select the latest record at or before each label time, and of its versions the newest."""
    partition = ", ".join(f'"{k}"' for k in keys)
    newest = (
        "SELECT * FROM records QUALIFY row_number() OVER "
        f"(PARTITION BY {partition}, event_ms ORDER BY available_ms DESC) = 1"
    )
    return (
        f"SELECT l.{ROW}, l.{LABEL_MS}, r.* FROM labels l ASOF LEFT JOIN ({newest}) r "
        f"ON {key_match} AND l.{LABEL_MS} >= r.event_ms"
    )


def _as_known_then_sql(key_match: str) -> str:
    """Select as above, among only the versions already available at the label time."""
    return (
        f"SELECT l.{ROW}, l.{LABEL_MS}, r.* FROM labels l LEFT JOIN records r "
        f"ON {key_match} AND r.event_ms <= l.{LABEL_MS} AND r.available_ms <= l.{LABEL_MS} "
        f"QUALIFY row_number() OVER (PARTITION BY l.{ROW} "
        "ORDER BY r.event_ms DESC NULLS LAST, r.available_ms DESC NULLS LAST) = 1"
    )


def _label_count(connection: duckdb.DuckDBPyConnection) -> int:
    row = connection.execute("SELECT count(*) FROM labels").fetchone()
    return 0 if row is None else int(row[0])
