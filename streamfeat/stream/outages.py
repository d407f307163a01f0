"""Outages of the services a worker writes to: log each change of state once, retry with back-off.

A worker that cannot reach Redis or the broker keeps its batch, so nothing is dropped and no
offset moves, and tries again after a pause that doubles up to a ceiling. Its log gets one line
when a service becomes unreachable and one when it is back, not one per attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

LIBRDKAFKA_LOG_LEVEL = 2
"""syslog level of librdkafka's own log: critical lines only. Errors go to the error callback."""


def client_logging(error_cb: Callable[[Any], None]) -> dict[str, Any]:
    """Return Kafka client settings that route connection errors to ``error_cb`` only.

    librdkafka otherwise logs every reconnection attempt, many a second while a broker is away.
    """
    return {"error_cb": error_cb, "log_level": LIBRDKAFKA_LOG_LEVEL, "log.connection.close": False}


@dataclass
class Backoff:
    """Pauses between attempts: ``first_s``, doubled after each failure, at most ``max_s``."""

    first_s: float = 0.1
    max_s: float = 5.0

    def pauses(self) -> Callable[[], float]:
        """Return a function that gives the next pause each time it is called."""
        current = [self.first_s]

        def next_pause() -> float:
            pause = current[0]
            current[0] = min(pause * 2, self.max_s)
            return pause

        return next_pause


@dataclass
class ServiceHealth:
    """Whether one service responds, as the worker last saw it. Each change is logged once."""

    service: str
    down_since: float | None = None
    failures: int = 0
    outages: int = 0

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: object) -> None:
        """Record a failed call; log when the service was up until now."""
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outages += 1
            logger.warning(
                "service_unavailable service=%s error=%s action=hold_batch_and_retry",
                self.service,
                error,
            )

    def answered(self) -> None:
        """Record a successful call; log when the service was down until now."""
        if self.down_since is None:
            return
        logger.warning(
            "service_recovered service=%s down_s=%.1f failed_attempts=%d",
            self.service,
            time.monotonic() - self.down_since,
            self.failures,
        )
        self.down_since = None
        self.failures = 0


def call_until_available(
    call: Callable[[], T],
    unavailable: tuple[type[Exception], ...],
    health: ServiceHealth,
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Return ``call()``, calling it again after each ``unavailable`` error, without a limit."""
    next_pause = backoff.pauses()
    while True:
        try:
            result = call()
        except unavailable as error:
            health.failed(error)
            sleep(next_pause())
            continue
        health.answered()
        return result
