"""Fixtures for the local stack tests: stacks of their own, apart from the shared one.

``make test`` starts the shared stack (ports 19092, 19093, 16379, home ``.local/``) before
pytest runs, so these tests use free ports picked at run time and homes under pytest's
temporary folder, and never touch the shared stack.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamfeat.devstack import LocalStack, StackSettings


def pick_free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback ports that are free right now."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


@pytest.fixture(scope="session")
def kafka_jars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Resolve the Kafka jars once (through Maven) into a home of their own; return ``lib/``."""
    home = tmp_path_factory.mktemp("jars-home")
    stack = LocalStack(StackSettings(home=home))
    stack.kafka.check_tools()
    stack.kafka.resolve_jars()
    return stack.kafka.lib_dir


StackFactory = Callable[..., LocalStack]


@pytest.fixture
def make_stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_jars: Path
) -> Iterator[StackFactory]:
    """Build stacks on free ports, each in a new home that starts with the cached jars.

    Keyword arguments replace fields of the stack's ``StackSettings``. Every stack built
    here is stopped when the test ends, whatever the test did.
    """
    stacks: list[LocalStack] = []

    def make(**overrides: int) -> LocalStack:
        home = tmp_path_factory.mktemp("stack-home")
        shutil.copytree(kafka_jars, home / "kafka" / "lib")
        kafka_port, controller_port, redis_port = pick_free_ports(3)
        settings = StackSettings(
            home=home,
            kafka_port=kafka_port,
            kafka_controller_port=controller_port,
            redis_port=redis_port,
        )
        stack = LocalStack(dataclasses.replace(settings, **overrides))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.down()
