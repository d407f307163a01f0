"""Lines the demo prints for sample values read from the online store."""

from __future__ import annotations

from streamfeat.demo.samples import Sample
from streamfeat.online.store import OnlineStatus, OnlineValue

AS_OF_MS = 1_388_542_140_000
"""2014-01-01T02:09:00Z"""


def test_sample_line_shows_values_and_as_of() -> None:
    value = OnlineValue(
        ("UA",), OnlineStatus.OK, {"mean_arr_delay": 3.36090, "cancelled": 10}, AS_OF_MS,
        AS_OF_MS, 1,
    )  # fmt: skip

    line = Sample("carrier_24h", value).describe()

    assert line == (
        "carrier_24h UA as of 2014-01-01T02:09:00+00:00: mean_arr_delay=3.36, cancelled=10"
    )


def test_sample_line_shows_nulls() -> None:
    value = OnlineValue(
        ("LGA",), OnlineStatus.OK, {"departures": 0, "mean_dep_delay": None}, AS_OF_MS,
        AS_OF_MS, 1,
    )  # fmt: skip

    line = Sample("airport_1h", value).describe()

    assert line.endswith(": departures=0, mean_dep_delay=null")


def test_sample_line_names_missing_entity() -> None:
    value = OnlineValue(("XXX",), OnlineStatus.NOT_FOUND, None, None, None, None)

    assert Sample("airport_1h", value).describe() == "airport_1h XXX: not_found"


def test_sample_line_names_status_without_values() -> None:
    value = OnlineValue(("JFK",), OnlineStatus.EXPIRED, None, AS_OF_MS, AS_OF_MS, 1)

    line = Sample("airport_1h", value).describe()

    assert line == "airport_1h JFK as of 2014-01-01T02:09:00+00:00: expired"
