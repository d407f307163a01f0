"""Event times of the flights data on the 2013 daylight-saving switch days, and R12 rules."""

import pandas as pd
import pytest

from streamfeat.definitions.loader import load_topology
from streamfeat.producer.flights import load_flights
from streamfeat.serialization import SchemaStore
from streamfeat.serialization.event_time import EventTimeReader
from streamfeat.serialization.times import local_ms_to_utc_ms

NEW_YORK = "America/New_York"


@pytest.fixture(scope="module")
def reader():
    topology = load_topology("topologies/flights.yml")
    source = topology.source("flights")
    schema = SchemaStore.from_dir("schemas").for_file(source.schema_file)
    return EventTimeReader(source, schema)


@pytest.mark.parametrize("day", ["2013-03-10", "2013-11-03"])
def test_flights_on_switch_days_convert_like_pandas(reader, day):
    flights = load_flights()
    year, month, date = (int(part) for part in day.split("-"))
    chosen = flights[(flights.year == year) & (flights.month == month) & (flights.day == date)]
    assert len(chosen) > 500
    wall = pd.to_datetime(
        {
            "year": chosen.year,
            "month": chosen.month,
            "day": chosen.day,
            "hour": chosen.sched_dep_time // 100,
            "minute": chosen.sched_dep_time % 100,
        }
    )
    expected = wall.dt.tz_localize(NEW_YORK, ambiguous=True, nonexistent=pd.Timedelta(hours=1))
    expected_ms = expected.dt.as_unit("ms").astype("int64")
    wall_ms = wall.dt.as_unit("ms").astype("int64")
    got = [reader.read_ms({"sched_dep_local": int(value)}) for value in wall_ms]
    assert got == list(expected_ms)


def test_offset_changes_at_the_switch():
    before = local_ms_to_utc_ms(int(pd.Timestamp("2013-03-10 01:59").value // 10**6), NEW_YORK)
    after = local_ms_to_utc_ms(int(pd.Timestamp("2013-03-10 03:00").value // 10**6), NEW_YORK)
    assert after - before == 60_000
    autumn_first = local_ms_to_utc_ms(
        int(pd.Timestamp("2013-11-03 01:30").value // 10**6), NEW_YORK
    )
    assert autumn_first == int(pd.Timestamp("2013-11-03 05:30", tz="UTC").value // 10**6)


def test_spring_gap_takes_offset_before_change():
    gap = local_ms_to_utc_ms(int(pd.Timestamp("2013-03-10 02:30").value // 10**6), NEW_YORK)
    assert gap == int(pd.Timestamp("2013-03-10 07:30", tz="UTC").value // 10**6)


def test_unreadable_event_time_reads_as_none(reader):
    assert reader.read_ms({"sched_dep_local": None}) is None
    assert reader.read_ms({}) is None
