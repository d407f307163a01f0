"""LocalStack against real Kafka and Redis processes: up, down, status and their errors."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from streamfeat.devstack import LocalStack
from streamfeat.errors import StackError
from tests.devstack.conftest import StackFactory, pick_free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _kafka_topics(stack: LocalStack) -> set[str]:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    return set(admin.list_topics(timeout=10).topics)


def _redis_ping(stack: LocalStack) -> bool:
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket listening on a free loopback port, standing for another program's server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server


def test_up_starts_responding_services(make_stack: StackFactory) -> None:
    stack = make_stack()

    changes = stack.up()

    assert [change.status.name for change in changes] == ["Kafka broker", "Redis server"]
    assert all(change.changed for change in changes)
    assert all(change.pid is not None for change in changes)
    assert isinstance(_kafka_topics(stack), set)
    assert _redis_ping(stack)
    assert all(status.ready for status in stack.status())


def test_up_twice_reports_already_running(make_stack: StackFactory) -> None:
    stack = make_stack()
    first = stack.up()

    second = stack.up()

    assert not any(change.changed for change in second)
    assert [change.pid for change in second] == [change.pid for change in first]


def test_down_leaves_no_process_and_frees_ports(make_stack: StackFactory) -> None:
    stack = make_stack()
    pids = [change.pid for change in stack.up()]
    settings = stack.settings

    changes = stack.down()

    assert [change.pid for change in changes] == pids
    assert all(change.changed for change in changes)
    for pid in pids:
        assert pid is not None
        assert not _process_exists(pid)
    for port in (settings.kafka_port, settings.kafka_controller_port, settings.redis_port):
        assert _port_is_free(port)
    assert not stack.kafka.pid_file.exists()
    assert not stack.redis.pid_file.exists()


def test_up_with_other_ports_on_running_home_fails(make_stack: StackFactory) -> None:
    stack = make_stack()
    stack.up()
    new_kafka_port, new_controller_port = pick_free_ports(2)
    moved = LocalStack(
        dataclasses.replace(
            stack.settings,
            kafka_port=new_kafka_port,
            kafka_controller_port=new_controller_port,
        )
    )

    with pytest.raises(
        StackError,
        match=rf"already running at {stack.bootstrap_servers}, not at 127.0.0.1:{new_kafka_port}",
    ):
        moved.up()

    assert all(status.ready for status in stack.status())


def test_down_of_stopped_stack_changes_nothing(make_stack: StackFactory) -> None:
    stack = make_stack()

    changes = stack.down()

    assert not any(change.changed for change in changes)
    assert all(change.pid is None for change in changes)


def test_status_of_stopped_stack_is_not_running(make_stack: StackFactory) -> None:
    stack = make_stack()

    statuses = stack.status()

    assert not any(status.running for status in statuses)
    assert not any(status.ready for status in statuses)


def test_up_after_kafka_was_killed_starts_it_again(make_stack: StackFactory) -> None:
    stack = make_stack()
    old_kafka_pid = stack.up()[0].pid
    assert old_kafka_pid is not None
    os.kill(old_kafka_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while stack.kafka.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)

    changes = stack.up()

    assert changes[0].changed
    assert changes[0].pid != old_kafka_pid
    assert not changes[1].changed
    assert isinstance(_kafka_topics(stack), set)


def test_broker_does_not_create_topics_on_first_use(make_stack: StackFactory) -> None:
    stack = make_stack()
    stack.up()
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})

    metadata = admin.list_topics(topic="streamfeat-never-created", timeout=10)

    assert metadata.topics["streamfeat-never-created"].error is not None
    assert "streamfeat-never-created" not in _kafka_topics(stack)


@pytest.mark.parametrize(
    ("settings_field", "role", "env_var"),
    [
        ("kafka_port", "Kafka broker", "STREAMFEAT_KAFKA_PORT"),
        ("kafka_controller_port", "Kafka controller", "STREAMFEAT_KAFKA_CONTROLLER_PORT"),
        ("redis_port", "Redis", "STREAMFEAT_REDIS_PORT"),
    ],
)
def test_taken_port_fails_naming_the_port(
    make_stack: StackFactory,
    listener: socket.socket,
    settings_field: str,
    role: str,
    env_var: str,
) -> None:
    taken_port = listener.getsockname()[1]
    stack = make_stack(**{settings_field: taken_port})

    with pytest.raises(StackError, match=rf"Port {taken_port} \({role}\).*{env_var}"):
        stack.up()

    assert not any(status.running for status in stack.status())


def test_missing_redis_server_fails_with_install_hint(
    make_stack: StackFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PATH that has java but not redis-server.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = shutil.which("java")
    assert java is not None
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    stack = make_stack()

    with pytest.raises(StackError, match=r"`redis-server` was not found on PATH.*apt-get install"):
        stack.up()

    assert not any(status.running for status in stack.status())


def test_kafka_start_failure_names_log(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()
    stack.up()
    stack.down()
    # A node id in the storage that differs from the configured one makes the broker exit.
    meta_properties = stack.kafka.data_dir / "meta.properties"
    text = meta_properties.read_text(encoding="utf-8")
    lines = ["node.id=2" if line.startswith("node.id=") else line for line in text.splitlines()]
    meta_properties.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(StackError, match=rf"exited while starting; see {stack.kafka.log_path}"):
        stack.up()

    assert not any(status.running for status in stack.status())
