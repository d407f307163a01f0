"""Fixtures for the worker tests: a factory of StreamCase objects on the local Kafka and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from streamfeat.settings import Settings
from tests.stream.harness import ManualClock, StreamCase, build_topology

CaseFactory = Callable[..., StreamCase]


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(Settings.from_env().redis_url)
    yield client
    client.close()


@pytest.fixture
def stream_case(tmp_path: Path, redis_client: redis.Redis) -> Iterator[CaseFactory]:
    """Yield a factory: keyword arguments of ``build_topology`` (and ``clock``) to a StreamCase.

    Each case gets a unique topology name, so its topics, consumer group and Redis key prefix are
    its own. Everything is deleted when the test ends.
    """
    cases: list[StreamCase] = []

    def make(*, clock: ManualClock | None = None, **topology: Any) -> StreamCase:
        name = f"sftest_{uuid.uuid4().hex[:10]}"
        case = StreamCase(
            build_topology(name, **topology),
            bootstrap=Settings.from_env().kafka_bootstrap,
            redis_client=redis_client,
            state_dir=tmp_path / name,
            clock=clock,
        )
        cases.append(case)
        return case

    yield make
    for case in cases:
        case.close()
