"""Committed consumer-group offsets, read through a group coordinator that may be moving.

A broker returns ``NOT_COORDINATOR`` or ``COORDINATOR_LOAD_IN_PROGRESS`` while the partition of
``__consumer_offsets`` that contains a group is still loading, right after a start or a restart.
Those errors, and any librdkafka marks retriable, make the read try again until the deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

logger = logging.getLogger(__name__)

T = TypeVar("T")

_COORDINATOR_ERRORS = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)
_FIRST_PAUSE_S = 0.05
_MAX_PAUSE_S = 1.0


def retry_while_coordinator_moves(read: Callable[[float], T], timeout_s: float) -> T:
    """Return ``read(seconds_left)``, calling it again after a retriable broker error.

    Raises the last ``KafkaException`` when its error is not retriable or ``timeout_s`` has
    passed.
    """
    deadline = time.monotonic() + timeout_s
    pause_s = _FIRST_PAUSE_S
    while True:
        try:
            return read(max(deadline - time.monotonic(), 0.001))
        except KafkaException as failure:
            error = failure.args[0] if failure.args else None
            if not isinstance(error, KafkaError) or not is_retriable(error):
                raise
            if time.monotonic() + pause_s >= deadline:
                raise
            logger.info("committed_offsets_retry error=%s pause_s=%.2f", error.name(), pause_s)
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, _MAX_PAUSE_S)


def is_retriable(error: KafkaError) -> bool:
    """Whether ``error`` is one a broker returns while its group coordinator loads or moves."""
    return bool(error.retriable()) or error.code() in _COORDINATOR_ERRORS


def committed_offsets(
    consumer: Consumer, partitions: Sequence[TopicPartition], timeout_s: float
) -> list[TopicPartition]:
    """Return the consumer group's committed offset of each partition, within ``timeout_s``."""
    requested = list(partitions)
    return retry_while_coordinator_moves(
        lambda left_s: list(consumer.committed(requested, timeout=left_s)), timeout_s
    )
