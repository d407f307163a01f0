"""Time conversions on int epoch milliseconds, exact for the years 0001 to 9999.

Naive wall-clock times convert with ``zoneinfo`` and ``fold=0``: a time in a spring-forward
gap takes the offset in force before the change, and a time that occurs twice in autumn is
its first occurrence. Finer than a millisecond is floored.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamfeat.errors import ConfigurationError, SerializationError
from streamfeat.serialization._logical import datetime_from_ms, instant_ms, wall_ms

__all__ = [
    "datetime_from_ms",
    "datetime_to_ms",
    "local_ms_to_utc_ms",
    "parse_iso_ms",
    "zone_info",
]

_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()
_MAX_ORDINAL = datetime.max.toordinal()


@lru_cache(maxsize=256)
def zone_info(zone: str) -> ZoneInfo:
    """Return the IANA zone ``zone``; raise ConfigurationError naming it when it does not exist."""
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"unknown time zone {zone!r}; use an IANA zone name such as 'America/New_York' or 'UTC'"
        ) from None


def local_ms_to_utc_ms(naive_wall_ms: int, zone: str | ZoneInfo) -> int:
    """Convert a wall-clock reading in ``zone`` (as epoch milliseconds) to UTC epoch milliseconds.

    The wall clock must lie in the years 0001 to 9999; the result may fall a few hours outside.
    """
    tz = zone_info(zone) if isinstance(zone, str) else zone
    days, rest_ms = divmod(naive_wall_ms, 86_400_000)
    ordinal = _EPOCH_ORDINAL + days
    if not 1 <= ordinal <= _MAX_ORDINAL:
        raise SerializationError(
            f"local time {naive_wall_ms} ms is outside the years 0001 to 9999; "
            "check the field's unit (milliseconds expected)"
        )
    seconds, millis = divmod(rest_ms, 1_000)
    wall = datetime.fromordinal(ordinal).replace(
        hour=seconds // 3_600,
        minute=seconds // 60 % 60,
        second=seconds % 60,
        microsecond=millis * 1_000,
        fold=0,
    )
    offset = tz.utcoffset(wall)
    if offset is None:
        return naive_wall_ms
    offset_ms = (offset.days * 86_400 + offset.seconds) * 1_000 + offset.microseconds // 1_000
    return naive_wall_ms - offset_ms


def datetime_to_ms(moment: datetime) -> int:
    """Convert an aware datetime to UTC epoch milliseconds exactly (sub-millisecond floored)."""
    if moment.utcoffset() is None:
        raise SerializationError(
            f"{moment.isoformat()} is a naive datetime; give it a time zone, such as tzinfo=UTC"
        )
    return instant_ms(moment)


def parse_iso_ms(text: str, zone: str | ZoneInfo | None = None) -> int:
    """Parse an ISO 8601 time to UTC epoch milliseconds.

    A text with an offset (``Z``, ``+05:30``) is an instant. A text without one is a wall-clock
    time in ``zone``, and raises SerializationError when no zone is given. Python 3.11's parser
    drops digits past microseconds and the result is floored to milliseconds.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SerializationError(
            f"invalid ISO 8601 time {text!r}; write it like '2013-01-01T05:15:00Z' "
            "or '2013-01-01T05:15:00-05:00'"
        ) from None
    if moment.utcoffset() is not None:
        return instant_ms(moment)
    if zone is None:
        raise SerializationError(
            f"time {text!r} has no UTC offset and no zone is declared; add an offset such as "
            "'Z' or declare the zone of its wall clock"
        )
    return local_ms_to_utc_ms(wall_ms(moment), zone)


def wall_clock_ms() -> int:
    """Return the processing clock: the current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
