"""Offset reads retry while the group coordinator loads, and fail fast on other errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamfeat.admin.offsets import is_retriable, retry_while_coordinator_moves


def failing_then(errors: list[int], answer: str) -> tuple[list[float], Callable[[float], str]]:
    calls: list[float] = []

    def read(left_s: float) -> str:
        calls.append(left_s)
        if len(calls) <= len(errors):
            raise KafkaException(KafkaError(errors[len(calls) - 1]))
        return answer

    return calls, read


def test_coordinator_errors_are_retried() -> None:
    codes = [KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS]
    calls, read = failing_then(codes, "offsets")

    assert retry_while_coordinator_moves(read, timeout_s=5.0) == "offsets"
    assert len(calls) == 3
    assert all(0 < left_s <= 5.0 for left_s in calls)


def test_other_errors_raise_at_once() -> None:
    calls, read = failing_then([KafkaError.GROUP_AUTHORIZATION_FAILED], "offsets")

    with pytest.raises(KafkaException):
        retry_while_coordinator_moves(read, timeout_s=5.0)
    assert len(calls) == 1


def test_retries_stop_at_deadline() -> None:
    calls, read = failing_then([KafkaError.NOT_COORDINATOR] * 1000, "offsets")

    with pytest.raises(KafkaException):
        retry_while_coordinator_moves(read, timeout_s=0.3)
    assert 2 <= len(calls) < 10


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    ],
)
def test_is_retriable_for_moving_coordinator(code: int) -> None:
    assert is_retriable(KafkaError(code))


@pytest.mark.parametrize("code", [KafkaError.NON_EMPTY_GROUP, KafkaError.GROUP_ID_NOT_FOUND])
def test_is_retriable_not_for_group_state(code: int) -> None:
    assert not is_retriable(KafkaError(code))
