"""The flights data set: every row once, in event-time order, valid for the flight schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamfeat.definitions.loader import load_topology
from streamfeat.errors import ConfigurationError
from streamfeat.producer import FLIGHTS_ROWS, dataset_events, event_time_reader, flight_events
from streamfeat.producer.flights import load_flights
from streamfeat.serialization import SchemaStore
from streamfeat.serialization.times import parse_iso_ms

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(flight_events())


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.from_dir(REPO / "schemas")


@pytest.fixture(scope="module")
def read_time(store: SchemaStore) -> Any:
    topology = load_topology(REPO / "topologies" / "flights.yml")
    source = topology.source("flights")
    return event_time_reader(source, store.for_file(source.schema_file))


def test_every_row_is_one_event(events: list[dict[str, Any]]) -> None:
    assert len(events) == FLIGHTS_ROWS
    assert len({e["flight_id"] for e in events}) == FLIGHTS_ROWS


def test_first_event_is_first_scheduled(events: list[dict[str, Any]]) -> None:
    assert events[0] == {
        "flight_id": "2013-01-01/UA/1545/EWR",
        "carrier": "UA",
        "flight": 1545,
        "tailnum": "N14228",
        "origin": "EWR",
        "dest": "IAH",
        "sched_dep_local": parse_iso_ms("2013-01-01T05:15:00Z"),
        "dep_delay": 2.0,
        "arr_delay": 11.0,
        "cancelled": False,
        "cancelled_flag": 0,
        "distance": 1400.0,
    }


def test_order_is_event_time_then_row(events: list[dict[str, Any]], read_time: Any) -> None:
    frame = load_flights()
    row_of = {
        f"{y:04d}-{m:02d}-{d:02d}/{c}/{f}/{o}": row
        for row, (y, m, d, c, f, o) in enumerate(
            zip(
                frame["year"],
                frame["month"],
                frame["day"],
                frame["carrier"],
                frame["flight"],
                frame["origin"],
                strict=True,
            )
        )
    }
    keys = [(read_time(e), row_of[e["flight_id"]]) for e in events]

    assert keys == sorted(keys)


def test_missing_tailnums_are_null(events: list[dict[str, Any]]) -> None:
    assert sum(e["tailnum"] is None for e in events) == 2_512


def test_cancelled_matches_flag(events: list[dict[str, Any]]) -> None:
    cancelled = [e for e in events if e["cancelled"]]

    assert len(cancelled) == 8_255
    assert all(e["cancelled_flag"] == 1 and e["dep_delay"] is None for e in cancelled)
    assert sum(e["cancelled_flag"] for e in events) == 8_255


def test_event_time_uses_new_york_daylight_saving(
    events: list[dict[str, Any]], read_time: Any
) -> None:
    by_id = {e["flight_id"]: e for e in events}
    winter = by_id["2013-01-01/UA/1545/EWR"]
    summer = next(e for e in events if e["flight_id"].startswith("2013-07-01/"))

    assert read_time(winter) == parse_iso_ms("2013-01-01T10:15:00Z")
    assert read_time(summer) == summer["sched_dep_local"] + 4 * 3_600_000


def test_every_event_fits_flight_schema(events: list[dict[str, Any]], store: SchemaStore) -> None:
    decoder = store.decoder("streamfeat.flights.Flight")

    for event in events:
        assert decoder.decode(store.encode("streamfeat.flights.Flight", event)) == event


def test_limit_takes_earliest_events(events: list[dict[str, Any]]) -> None:
    assert list(flight_events(limit=5)) == events[:5]


def test_unknown_data_set_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="no data set is known for source 'ships'"):
        dataset_events("ships")
