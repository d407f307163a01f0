"""Replacing a consumer after a fatal error: which errors count, and a few per window."""

from __future__ import annotations

from confluent_kafka import KafkaError

from streamfeat.stream.fencing import RejoinBudget, leaves_consumer_unusable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_replacements_stop_after_the_budget_within_a_window() -> None:
    budget = RejoinBudget(max_rejoins=3, window_s=600.0, clock=Clock())

    assert [budget.take() for _ in range(4)] == [True, True, True, False]


def test_replacements_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    budget = RejoinBudget(max_rejoins=2, window_s=600.0, clock=clock)
    budget.take()
    clock.now = 100.0
    budget.take()
    clock.now = 600.0

    assert budget.take()
    assert not budget.take()


def test_fencing_and_fatal_codes_leave_the_consumer_unusable() -> None:
    assert leaves_consumer_unusable(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced"))
    assert leaves_consumer_unusable(KafkaError(KafkaError._FATAL, "fatal error: fenced"))
    assert leaves_consumer_unusable(KafkaError(KafkaError.UNKNOWN, "x", fatal=True))


def test_transport_errors_leave_the_consumer_usable() -> None:
    assert not leaves_consumer_unusable(KafkaError(KafkaError._TRANSPORT, "connection refused"))
    assert not leaves_consumer_unusable(KafkaError(KafkaError._ALL_BROKERS_DOWN, "down"))
