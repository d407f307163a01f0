"""Durations as people write them in topology files: ``700ms``, ``30s``, ``5m``, ``1h``, ``7d``."""

import re
from datetime import timedelta

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``1h30m`` or ``700ms``; raise ValueError naming the text."""
    compact = text.strip().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(
            f"invalid duration {text!r}: write whole numbers with units ms, s, m, h, d or w, "
            "such as '700ms', '30s', '5m', '1h30m' or '7d'"
        )
    total_ms = sum(int(number) * _UNIT_MS[unit] for number, unit in parts)
    return timedelta(milliseconds=total_ms)


def to_ms(duration: timedelta) -> int:
    """Return a timedelta as whole milliseconds (sub-millisecond parts are floored)."""
    return (
        (duration.days * 86_400_000) + (duration.seconds * 1_000) + duration.microseconds // 1_000
    )


def format_duration(duration: timedelta) -> str:
    """Format a timedelta in the largest unit that divides it, such as ``5m`` or ``2500ms``."""
    total_ms = to_ms(duration)
    for unit in ("w", "d", "h", "m", "s"):
        if total_ms % _UNIT_MS[unit] == 0 and total_ms != 0:
            return f"{total_ms // _UNIT_MS[unit]}{unit}"
    return f"{total_ms}ms"
