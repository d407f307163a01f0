"""``streamfeat stack up/down/status`` on stacks of their own, configured by environment."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from streamfeat.cli import stack as stack_cli
from streamfeat.devstack import LocalStack
from tests.devstack.conftest import StackFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _environment(stack: LocalStack) -> dict[str, str]:
    settings = stack.settings
    return {
        "STREAMFEAT_HOME": str(settings.home),
        "STREAMFEAT_KAFKA_PORT": str(settings.kafka_port),
        "STREAMFEAT_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "STREAMFEAT_REDIS_PORT": str(settings.redis_port),
    }


def test_up_status_down_print_where_services_listen(make_stack: StackFactory) -> None:
    stack = make_stack()
    runner = CliRunner()
    env = _environment(stack)

    up = runner.invoke(stack_cli.app, ["up"], env=env)
    up_again = runner.invoke(stack_cli.app, ["up"], env=env)
    status = runner.invoke(stack_cli.app, ["status"], env=env)
    down = runner.invoke(stack_cli.app, ["down"], env=env)
    status_after = runner.invoke(stack_cli.app, ["status"], env=env)

    assert up.exit_code == 0, up.output
    assert f"Kafka broker started at {stack.bootstrap_servers}" in up.stdout
    assert f"Redis server started at {stack.redis_url}" in up.stdout
    assert up_again.exit_code == 0, up_again.output
    assert f"Kafka broker already running at {stack.bootstrap_servers}" in up_again.stdout
    assert f"Redis server already running at {stack.redis_url}" in up_again.stdout
    assert status.exit_code == 0, status.output
    assert f"Kafka broker: running at {stack.bootstrap_servers}" in status.stdout
    assert down.exit_code == 0, down.output
    assert "Kafka broker stopped (pid " in down.stdout
    assert "Redis server stopped (pid " in down.stdout
    assert status_after.exit_code == stack_cli.NOT_RUNNING_EXIT_CODE
    assert "Kafka broker: stopped" in status_after.stdout


def test_status_json_lists_both_services(make_stack: StackFactory) -> None:
    stack = make_stack()

    result = CliRunner().invoke(stack_cli.app, ["status", "--json"], env=_environment(stack))

    assert result.exit_code == stack_cli.NOT_RUNNING_EXIT_CODE
    assert '"name": "Kafka broker"' in result.stdout
    assert '"name": "Redis server"' in result.stdout
    assert '"running": false' in result.stdout


def test_up_with_taken_port_prints_one_line_error(make_stack: StackFactory) -> None:
    stack = make_stack()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", stack.settings.redis_port))
        server.listen()

        result = CliRunner().invoke(stack_cli.app, ["up"], env=_environment(stack))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: Port {stack.settings.redis_port} (Redis)")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_invalid_port_variable_prints_one_line_error() -> None:
    result = CliRunner().invoke(stack_cli.app, ["status"], env={"STREAMFEAT_KAFKA_PORT": "kafka"})

    assert result.exit_code == 1
    assert result.stderr == (
        "error: STREAMFEAT_KAFKA_PORT='kafka' is not a valid port; "
        "set it to a number from 1 to 65535.\n"
    )
