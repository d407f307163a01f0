"""Time conversions: zone rules with fold=0, exact arithmetic, ISO parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat.errors import ConfigurationError, SerializationError
from streamfeat.serialization.times import (
    datetime_from_ms,
    datetime_to_ms,
    local_ms_to_utc_ms,
    parse_iso_ms,
)

NEW_YORK = "America/New_York"


def _wall_ms(*parts: int) -> int:
    return datetime_to_ms(datetime(*parts, tzinfo=UTC))  # type: ignore[misc]


def _utc_ms(text: str) -> int:
    return datetime_to_ms(datetime.fromisoformat(text))


def test_winter_time_uses_standard_offset() -> None:
    assert local_ms_to_utc_ms(_wall_ms(2013, 1, 1, 5, 15), NEW_YORK) == _utc_ms("2013-01-01T10:15Z")


def test_summer_time_uses_daylight_offset() -> None:
    assert local_ms_to_utc_ms(_wall_ms(2013, 7, 1, 5, 15), NEW_YORK) == _utc_ms("2013-07-01T09:15Z")


def test_spring_gap_takes_offset_before_change() -> None:
    wall = _wall_ms(2013, 3, 10, 2, 30)

    assert local_ms_to_utc_ms(wall, NEW_YORK) == _utc_ms("2013-03-10T07:30Z")


def test_autumn_repeat_is_first_occurrence() -> None:
    wall = _wall_ms(2013, 11, 3, 1, 30)

    assert local_ms_to_utc_ms(wall, NEW_YORK) == _utc_ms("2013-11-03T05:30Z")


def test_milliseconds_are_kept() -> None:
    wall = _wall_ms(2013, 1, 1, 5, 15) + 999

    assert local_ms_to_utc_ms(wall, "Europe/Budapest") == _utc_ms("2013-01-01T04:15:00.999Z")


def test_first_and_last_wall_clock_years_convert() -> None:
    first = _wall_ms(1, 1, 1)
    last = _wall_ms(9999, 12, 31, 23, 59, 59) + 999

    assert local_ms_to_utc_ms(first, "UTC") == first
    assert local_ms_to_utc_ms(last, "Asia/Tokyo") == last - 9 * 3_600_000


def test_wall_clock_outside_supported_years_raises() -> None:
    with pytest.raises(SerializationError, match="outside the years 0001 to 9999"):
        local_ms_to_utc_ms(_wall_ms(9999, 12, 31) + 86_400_000, "UTC")


def test_unknown_zone_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'Mars/Olympus'"):
        local_ms_to_utc_ms(0, "Mars/Olympus")


def test_zoneinfo_object_is_accepted() -> None:
    assert local_ms_to_utc_ms(0, ZoneInfo("Europe/Budapest")) == -3_600_000


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.sampled_from([NEW_YORK, "Europe/Budapest", "Australia/Lord_Howe", "Asia/Kathmandu"]),
)
def test_utc_round_trips_through_first_occurrence(moment: datetime, zone: str) -> None:
    instant = moment.replace(tzinfo=UTC)
    local = instant.astimezone(ZoneInfo(zone))
    wall_ms = datetime_to_ms(local.replace(tzinfo=UTC))

    converted = local_ms_to_utc_ms(wall_ms, zone)

    if local.fold == 0:
        assert converted == datetime_to_ms(instant)
    else:
        assert converted < datetime_to_ms(instant)


def test_datetime_to_ms_is_exact() -> None:
    moment = datetime(2107, 4, 1, 0, 0, 0, 445_000, tzinfo=UTC)

    assert datetime_to_ms(moment) == 4_331_059_200_445


def test_datetime_to_ms_floors_micros() -> None:
    assert datetime_to_ms(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1


def test_datetime_to_ms_rejects_naive() -> None:
    with pytest.raises(SerializationError, match="naive datetime"):
        datetime_to_ms(datetime(2013, 1, 1))


def test_datetime_from_ms_inverts_datetime_to_ms() -> None:
    assert datetime_from_ms(4_331_059_200_445) == datetime(2107, 4, 1, 0, 0, 0, 445_000, tzinfo=UTC)
    assert datetime_from_ms(-1) == datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-01-01T10:15:00Z", "2013-01-01T10:15:00+00:00"),
        ("2013-01-01T05:15:00-05:00", "2013-01-01T10:15:00+00:00"),
        ("2013-01-01T10:15:00.1239Z", "2013-01-01T10:15:00.123+00:00"),
        ("2013-01-01T10:15:00.123456789Z", "2013-01-01T10:15:00.123+00:00"),
    ],
)
def test_iso_with_offset_is_instant(text: str, expected: str) -> None:
    assert parse_iso_ms(text) == _utc_ms(expected)


def test_iso_before_epoch_floors() -> None:
    assert parse_iso_ms("1969-12-31T23:59:59.9999Z") == -1


def test_naive_iso_uses_zone() -> None:
    assert parse_iso_ms("2013-03-10 02:30", NEW_YORK) == _utc_ms("2013-03-10T07:30Z")


def test_offset_wins_over_zone() -> None:
    assert parse_iso_ms("2013-01-01T10:15:00Z", NEW_YORK) == _utc_ms("2013-01-01T10:15Z")


def test_naive_iso_without_zone_raises() -> None:
    with pytest.raises(SerializationError, match="'2013-01-01T05:15' has no UTC offset"):
        parse_iso_ms("2013-01-01T05:15")


def test_invalid_iso_raises() -> None:
    with pytest.raises(SerializationError, match="invalid ISO 8601 time 'yesterday'"):
        parse_iso_ms("yesterday")


def test_offset_arithmetic_does_not_overflow_at_year_one() -> None:
    assert parse_iso_ms("0001-01-01T00:00:00+05:00") == _wall_ms(1, 1, 1) - 5 * 3_600_000
