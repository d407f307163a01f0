"""Rate-limited warnings: one line per key per interval, reporting how many were suppressed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logger wrapper that writes one line per key at most every ``interval_s``."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        """Log ``message`` at WARNING unless ``key`` was logged less than an interval ago."""
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        self._logger.warning(message + " suppressed_since_last=%d", *args, suppressed)
