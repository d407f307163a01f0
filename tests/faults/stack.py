"""A Kafka broker and a Redis server for one fault test, apart from the shared stack.

Fault tests stop and restart services, so each runs its own stack on free loopback ports in a
home of its own. The Kafka jars are copied from the shared stack's home when it has them, which
spares a Maven run. ``LocalStack.up`` resolves them with Maven only when that copy is missing or
stale.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import redis

from streamfeat.devstack import LocalStack, StackSettings
from streamfeat.errors import StackError
from tests.devstack.conftest import pick_free_ports

_STOP_TIMEOUT_S = 30.0
REDIS_SNAPSHOT_RULE = "3600 1"
"""``save`` rule that makes Redis write its snapshot when it shuts down on SIGTERM."""


def shared_kafka_jars() -> Path:
    """Folder of the Kafka jars of the shared stack (``STREAMFEAT_HOME`` or ``.local``)."""
    return LocalStack(StackSettings.from_env()).kafka.lib_dir


def start_stack(home: Path) -> LocalStack:
    """Start a stack in ``home`` on free loopback ports and wait until both services respond.

    A failed start is tried once more on other ports, after its leftovers are killed.
    """
    jars = shared_kafka_jars()
    if jars.is_dir():
        shutil.copytree(jars, home / "kafka" / "lib")
    try:
        return _started(_stack_on_free_ports(home))
    except StackError:
        return _started(_stack_on_free_ports(home))


def _started(stack: LocalStack) -> LocalStack:
    try:
        stack.up()
    except BaseException:
        stop_stack(stack)
        raise
    return stack


def stop_stack(stack: LocalStack) -> None:
    """Stop the stack, then kill any process still started from its home.

    ``LocalStack.down`` stops a service only when the command line of the pid in its pid file
    matches, so a service whose start was reported as failed can be left running.
    """
    try:
        stack.down()
    finally:
        for pid in _processes_using(stack.settings.home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _stack_on_free_ports(home: Path) -> LocalStack:
    kafka_port, controller_port, redis_port = pick_free_ports(3)
    return LocalStack(
        StackSettings(
            home=home,
            kafka_port=kafka_port,
            kafka_controller_port=controller_port,
            redis_port=redis_port,
        )
    )


def _processes_using(home: Path) -> list[int]:
    """Pids of the processes whose command line names ``home`` (this process excluded)."""
    marker = str(home).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def keep_redis_data_across_restarts(stack: LocalStack) -> None:
    """Make the stack's Redis save a snapshot when stopped, which it loads again when started.

    The local stack runs Redis without persistence, so a restart would empty the online store.
    An online store in production keeps its data across a restart, and that is the outage the
    tests model.
    """
    client = redis.Redis.from_url(stack.redis_url)
    try:
        client.config_set("save", REDIS_SNAPSHOT_RULE)
    finally:
        client.close()


def stop_redis(stack: LocalStack) -> float:
    """Stop Redis (SIGTERM, so it saves its snapshot); return the wall-clock time it stopped."""
    stack.redis.stop(_STOP_TIMEOUT_S)
    return time.time()


def stop_broker(stack: LocalStack) -> float:
    """Stop the Kafka broker (SIGTERM, a controlled shutdown); return when it had stopped."""
    stack.kafka.stop(_STOP_TIMEOUT_S)
    return time.time()


def start_stopped_services(stack: LocalStack) -> float:
    """Start whichever service is stopped and wait until it responds; return the seconds taken."""
    started = time.monotonic()
    stack.up()
    return time.monotonic() - started
