"""The rejoin budget of a fenced static member: a few rejoins per window, fencing only."""

from __future__ import annotations

from confluent_kafka import KafkaError

from streamfeat.stream.fencing import RejoinBudget

FENCED = KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rejoins_stop_after_the_budget_within_a_window() -> None:
    budget = RejoinBudget(max_rejoins=3, window_s=600.0, clock=Clock())

    assert [budget.allows(FENCED) for _ in range(4)] == [True, True, True, False]


def test_rejoins_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    budget = RejoinBudget(max_rejoins=2, window_s=600.0, clock=clock)
    budget.allows(FENCED)
    clock.now = 100.0
    budget.allows(FENCED)
    clock.now = 600.0

    assert budget.allows(FENCED)
    assert not budget.allows(FENCED)


def test_other_fatal_errors_never_rejoin() -> None:
    budget = RejoinBudget(clock=Clock())

    assert not budget.allows(KafkaError(KafkaError._FATAL, "fatal", fatal=True))
