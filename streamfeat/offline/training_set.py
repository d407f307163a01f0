"""Point-in-time correct training sets: feature values joined to label rows.

For each label row (entity keys, label time ``t``, any other columns) and each requested feature
view, the join takes the view's latest record with ``event_ts <= t``; among versions of that
record, the one with the latest ``available_at``. It then applies the view's TTL with the
latest event time the record carries: past the TTL the values are null. A record from
after ``t`` is never used. With ``as_known_then`` only the record versions available at ``t``
take part, so the answer is what the online store could have served then.

The output has exactly one row per label row, in the labels' order, duplicates included, with
every label column unchanged and one column per feature named ``<view>__<feature>``.

The join is an as-of search per view, in numpy: entity keys become integer codes, each record
gets one sortable int64 of (entity code, time), and each label row finds its record by binary
search in the sorted records. Labels are searched in sorted order, which keeps the search
cache-friendly, and the results are put back in the labels' order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from streamfeat.definitions.models import FeatureView, Topology
from streamfeat.errors import ConfigurationError
from streamfeat.offline.archive import read_records
from streamfeat.serialization.times import datetime_to_ms
from streamfeat.sink.layout import AVAILABLE_AT, EVENT_TS, LATEST_EVENT_TS, TIMESTAMP_TYPE

_NULLABLE_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
"""Integer and boolean features keep their type where a value is null."""

_NONE = -1
"""Position of "no record" in arrays of record positions."""
_MAX_PACKED_BITS = 62
"""Bits that a packed (entity code, time) may use, so that it stays a positive int64."""


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
    label_ms = label_times_ms(labels, timestamp_column).to_numpy(dtype=np.int64)
    keys = sorted({key for view, _ in requested for key in _join_keys(topology, view)})
    label_keys = {key: pa.array(labels[key].astype("string"), pa.string()) for key in keys}

    def join(item: tuple[FeatureView, list[str]]) -> pd.DataFrame:
        view, names = item
        view_keys = [label_keys[key] for key in _join_keys(topology, view)]
        return _join_view(archive, topology, view, names, view_keys, label_ms, as_known_then)

    # Views are independent and numpy and Arrow release the GIL, so views join in parallel.
    with ThreadPoolExecutor(max_workers=min(len(requested), os.cpu_count() or 1)) as pool:
        joined = list(pool.map(join, requested))
    result = labels.copy(deep=False)
    for (view, names), frame in zip(requested, joined, strict=True):
        for name in names:
            result[feature_column(view.name, name)] = frame[name].array
    return result


def _join_view(
    archive: Path,
    topology: Topology,
    view: FeatureView,
    names: list[str],
    label_keys: list[pa.Array],
    label_ms: np.ndarray,
    as_known_then: bool,
) -> pd.DataFrame:
    """Return the values of ``names`` per label row for one view, in the labels' order."""
    keys = _join_keys(topology, view)
    columns = [*keys, EVENT_TS, LATEST_EVENT_TS, AVAILABLE_AT, *names]
    records = read_records(archive, view.name, columns)
    if records is None or records.num_rows == 0:
        raise ConfigurationError(
            f"the archive {archive} contains no records of view {view.name!r}; run the "
            "sink or a backfill into that folder, or leave the view out"
        )
    chosen = _chosen_records(records, keys, label_keys, label_ms, view, as_known_then)
    # A null take index gives a null row: the label row has no record.
    indices = pa.array(chosen, pa.int64(), mask=chosen == _NONE)
    values = records.select(names).combine_chunks().take(indices)
    return values.to_pandas(types_mapper=_NULLABLE_TYPES.get)


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


def _chosen_records(
    records: pa.Table,
    keys: Sequence[str],
    label_keys: list[pa.Array],
    label_ms: np.ndarray,
    view: FeatureView,
    as_known_then: bool,
) -> np.ndarray:
    """Return, per label row, the position of its record in ``records``, or ``_NONE``.

    Records without an event time never qualify, nor, as known then, records without an
    ``available_at``. Past the TTL, counted from the record's latest event time, the label
    row gets no record, and neither does a record without a latest event time.
    """
    event_ms, event_valid = _epoch_ms(records.column(EVENT_TS))
    available_ms, available_valid = _epoch_ms(records.column(AVAILABLE_AT))
    record_codes, label_codes = _entity_codes([records.column(k) for k in keys], label_keys)
    usable = (record_codes != _NONE) & event_valid
    if as_known_then:
        usable &= available_valid
    positions = np.flatnonzero(usable)
    if positions.shape[0] == 0:
        return np.full(label_ms.shape[0], _NONE, np.int64)
    search = _as_known_then if as_known_then else _by_event_time
    found = search(
        record_codes[positions], event_ms[positions], available_ms[positions], label_codes, label_ms
    )
    chosen = np.where(found == _NONE, _NONE, positions[np.maximum(found, 0)])
    return _within_ttl(chosen, records.column(LATEST_EVENT_TS), label_ms, view.ttl_ms)


def _by_event_time(
    codes: np.ndarray,
    event_ms: np.ndarray,
    available_ms: np.ndarray,
    label_codes: np.ndarray,
    label_ms: np.ndarray,
) -> np.ndarray:
    """Find each label's latest record by event time and, of its versions, the newest."""
    packed, label_packed = _packed(codes, event_ms, label_codes, label_ms)
    order = _sorted_order(packed, codes, event_ms, available_ms)
    return _as_of(packed[order], codes[order], order, label_packed, label_codes)


def _as_known_then(
    codes: np.ndarray,
    event_ms: np.ndarray,
    available_ms: np.ndarray,
    label_codes: np.ndarray,
    label_ms: np.ndarray,
) -> np.ndarray:
    """Find each label's record as above, among the versions available at the label time.

    A version takes part from ``max(event_ts, available_at)`` on. Sorted by that time, the
    best version so far (latest event time, then latest ``available_at``) is a running
    maximum of the versions' ranks in event-time order. Ranks grow with the entity code, so
    the running maximum never carries over from one entity to the next.
    """
    packed, _ = _packed(codes, event_ms, label_codes, label_ms)
    by_event = _sorted_order(packed, codes, event_ms, available_ms)
    rank = np.empty_like(by_event)
    rank[by_event] = np.arange(by_event.shape[0])
    visible_ms = np.maximum(event_ms, available_ms)
    visible, label_visible = _packed(codes, visible_ms, label_codes, label_ms)
    by_visible = _code_time_order(visible, codes, visible_ms)
    best_rank = np.maximum.accumulate(rank[by_visible])
    found = _as_of(visible[by_visible], codes[by_visible], best_rank, label_visible, label_codes)
    return np.where(found == _NONE, _NONE, by_event[np.maximum(found, 0)])


def _as_of(
    sorted_packed: np.ndarray,
    sorted_codes: np.ndarray,
    result_at: np.ndarray,
    label_packed: np.ndarray,
    label_codes: np.ndarray,
) -> np.ndarray:
    """Return ``result_at`` of each label's last sorted record at or before it, else _NONE.

    The entity must match: a label before its entity's first record lands on the entity
    before it, which does not count.
    """
    label_order = np.argsort(label_packed, kind="stable")
    found_sorted = np.searchsorted(sorted_packed, label_packed[label_order], side="right") - 1
    found = np.empty_like(found_sorted)
    found[label_order] = found_sorted
    at = np.maximum(found, 0)
    matched = (found >= 0) & (label_codes != _NONE) & (sorted_codes[at] == label_codes)
    return np.where(matched, result_at[at], _NONE)


def _packed(
    codes: np.ndarray, times_ms: np.ndarray, label_codes: np.ndarray, label_ms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Combine entity code and time into one int64 that sorts as the (code, time) pair.

    Label times are clipped to the records' range first, which changes no comparison. When
    code and time together need more than ``_MAX_PACKED_BITS``, times are replaced by their
    rank among the records' distinct times.
    """
    low, high = int(times_ms.min()) - 1, int(times_ms.max())
    record_times = times_ms - low
    label_times = np.clip(label_ms, low, high) - low
    time_bits = (high - low).bit_length()
    code_bits = max(int(codes.max()).bit_length(), 1)
    if code_bits + time_bits > _MAX_PACKED_BITS:
        distinct = np.unique(times_ms)
        record_times = np.searchsorted(distinct, times_ms) + 1
        label_times = np.searchsorted(distinct, label_ms, side="right")
        time_bits = distinct.shape[0].bit_length()
    packed = (codes << time_bits) | record_times
    label_packed = (np.maximum(label_codes, 0) << time_bits) | label_times
    return packed, label_packed


def _sorted_order(
    packed: np.ndarray, codes: np.ndarray, times_ms: np.ndarray, available_ms: np.ndarray
) -> np.ndarray:
    """Return the order that sorts records by (code, time), then by ``available_at``.

    Versions of one record share a packed value and are rare, so only those runs are sorted
    again, by ``available_at``, in the places they already take.
    """
    order = _code_time_order(packed, codes, times_ms)
    sorted_packed = packed[order]
    tied = sorted_packed[1:] == sorted_packed[:-1]
    if tied.any():
        in_run = np.zeros(order.shape[0], bool)
        in_run[1:] |= tied
        in_run[:-1] |= tied
        places = np.flatnonzero(in_run)
        versions = order[places]
        order[places] = versions[np.lexsort((available_ms[versions], packed[versions]))]
    return order


def _code_time_order(packed: np.ndarray, codes: np.ndarray, times_ms: np.ndarray) -> np.ndarray:
    """Return a stable order that sorts records by (code, time), as ``packed`` sorts them.

    With fewer than 65,536 entities, this takes a stable sort by time, then a stable sort by
    16-bit code, which numpy does by radix. That is faster than one sort of the packed values,
    most of all on archives close to time order, as the sink writes them.
    """
    if int(codes.max()) >= 2**16:
        return np.argsort(packed, kind="stable")
    by_time = np.argsort(times_ms, kind="stable")
    return by_time[np.argsort(codes.astype(np.uint16)[by_time], kind="stable")]


def _entity_codes(
    record_keys: list[pa.ChunkedArray], label_keys: list[pa.Array]
) -> tuple[np.ndarray, np.ndarray]:
    """Return dense integer codes of each record's and each label's entity; _NONE for none.

    Keys compare as text, as labels may hold them as numbers. A label whose entity has no
    record, or with a null key, gets _NONE.
    """
    (first_records, first_labels), *others = zip(record_keys, label_keys, strict=True)
    record_codes, label_codes, _ = _key_codes(first_records, first_labels)
    for records_key, labels_key in others:
        record_part, label_part, size = _key_codes(records_key, labels_key)
        record_codes = _combined(record_codes, record_part, size)
        label_codes = _combined(label_codes, label_part, size)
        record_codes, label_codes = _dense(record_codes, label_codes)
    return record_codes, label_codes


def _key_codes(
    records_key: pa.ChunkedArray, labels_key: pa.Array
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return the codes of one join key's values in records and labels, and how many exist."""
    text = pc.cast(records_key, pa.string())
    distinct = pc.unique(text).drop_null()
    return _index_in(text, distinct), _index_in(labels_key, distinct), len(distinct)


def _index_in(values: pa.Array | pa.ChunkedArray, distinct: pa.Array) -> np.ndarray:
    positions = pc.fill_null(pc.index_in(values, value_set=distinct), _NONE)
    return np.asarray(positions.to_numpy(), np.int64)


def _combined(codes: np.ndarray, part: np.ndarray, size: int) -> np.ndarray:
    return np.where((codes != _NONE) & (part != _NONE), codes * size + part, _NONE)


def _dense(record_codes: np.ndarray, label_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber combined codes 0..n-1, so that combining one more key cannot overflow."""
    distinct = np.unique(record_codes[record_codes != _NONE])
    if distinct.shape[0] == 0:
        return record_codes, np.full_like(label_codes, _NONE)
    records = np.where(record_codes != _NONE, np.searchsorted(distinct, record_codes), _NONE)
    at = np.minimum(np.searchsorted(distinct, label_codes), distinct.shape[0] - 1)
    labels = np.where((label_codes != _NONE) & (distinct[at] == label_codes), at, _NONE)
    return records, labels


def _epoch_ms(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Return a timestamp column as epoch milliseconds (0 where null) and where it is valid."""
    milliseconds = column.cast(TIMESTAMP_TYPE).cast(pa.int64())
    if milliseconds.null_count == 0:
        return milliseconds.to_numpy(), np.ones(len(milliseconds), bool)
    valid = pc.is_valid(milliseconds).to_numpy()
    return pc.fill_null(milliseconds, 0).to_numpy(), valid


def _within_ttl(
    chosen: np.ndarray, latest_column: pa.ChunkedArray, label_ms: np.ndarray, ttl_ms: int | None
) -> np.ndarray:
    """Drop the records whose latest event is more than ``ttl_ms`` before the label time."""
    latest_ms, latest_valid = _epoch_ms(latest_column)
    at = np.maximum(chosen, 0)
    keep = (chosen != _NONE) & latest_valid[at]
    if ttl_ms is not None:
        keep &= label_ms - latest_ms[at] <= ttl_ms
    return np.where(keep, chosen, _NONE)
