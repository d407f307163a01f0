"""When a consumer that hit a fatal error may be replaced by a new one instead of stopping.

A fatal consumer error leaves the client unusable. The usual one is ``FENCED_INSTANCE_ID``:
another consumer registered the same ``group.instance.id``. That is either a second process
started with the same id, or, after a broker restart or a session that timed out during a
rejoin, librdkafka's own earlier membership. The second case heals with a new consumer that
joins again. The first would make the two processes fence each other in turn, so replacements
are limited, and a process that needs more than that stops.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError

_CONSUMER_FATAL_CODES = frozenset({KafkaError._FATAL, KafkaError.FENCED_INSTANCE_ID})


def leaves_consumer_unusable(error: KafkaError) -> bool:
    """Return whether an error that a consumer reported means it can consume no more.

    A consumed message can carry librdkafka's generic ``_FATAL`` code without the fatal flag,
    so the code counts as well as the flag.
    """
    return bool(error.fatal()) or error.code() in _CONSUMER_FATAL_CODES


@dataclass
class RejoinBudget:
    """At most ``max_rejoins`` consumer replacements within any ``window_s`` seconds."""

    max_rejoins: int = 3
    window_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _times: deque[float] = field(default_factory=deque)

    def take(self) -> bool:
        """Use one replacement and return True, or return False when none is left."""
        now = self.clock()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.max_rejoins:
            return False
        self._times.append(now)
        return True
