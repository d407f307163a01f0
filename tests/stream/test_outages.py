"""Outage handling: calls are retried with growing pauses and each change of state logs once."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from streamfeat.stream.outages import Backoff, ServiceHealth, call_until_available


class Unreachable(Exception):
    pass


def flaky(failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise Unreachable("connection refused")
        return "written"

    return calls, call


def test_call_is_retried_until_it_succeeds() -> None:
    pauses: list[float] = []
    calls, call = flaky(failures=5)
    health = ServiceHealth("online_store")

    result = call_until_available(
        call, (Unreachable,), health, Backoff(first_s=0.1, max_s=0.5), sleep=pauses.append
    )

    assert result == "written"
    assert len(calls) == 6
    assert pauses == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert not health.is_down


def test_other_errors_are_not_retried() -> None:
    health = ServiceHealth("online_store")

    def call() -> str:
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        call_until_available(call, (Unreachable,), health, Backoff(), sleep=lambda _: None)
    assert not health.is_down


def test_outage_logs_one_line_down_and_one_up(caplog: pytest.LogCaptureFixture) -> None:
    health = ServiceHealth("online_store")
    _, call = flaky(failures=20)

    with caplog.at_level(logging.INFO, logger="streamfeat.stream.outages"):
        call_until_available(call, (Unreachable,), health, Backoff(), sleep=lambda _: None)

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("service_unavailable service=online_store")
    assert lines[1].startswith("service_recovered service=online_store")
    assert "failed_attempts=20" in lines[1]
    assert health.outages == 1
