"""When a fenced static group member may join again instead of stopping.

A broker returns ``FENCED_INSTANCE_ID`` when another consumer registered the same
``group.instance.id``. That is a second worker started with the same id, or, after a broker
restart or a session that timed out during a rejoin, librdkafka's own earlier membership. The
second case heals by joining again; the first would make the two processes fence each other in
turn, so rejoins are limited, and a worker fenced more often than that stops.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError


@dataclass
class RejoinBudget:
    """At most ``max_rejoins`` rejoins within any ``window_s`` seconds."""

    max_rejoins: int = 3
    window_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _times: deque[float] = field(default_factory=deque)

    def allows(self, error: KafkaError) -> bool:
        """Whether the worker may join again, now, after ``error``: only a fencing within budget."""
        if error.code() != KafkaError.FENCED_INSTANCE_ID:
            return False
        now = self.clock()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.max_rejoins:
            return False
        self._times.append(now)
        return True
