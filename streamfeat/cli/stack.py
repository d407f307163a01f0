"""``streamfeat stack``: start, stop and inspect the local Kafka broker and Redis server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from streamfeat.cli import _output
from streamfeat.devstack import (
    DEFAULT_DOWN_TIMEOUT,
    DEFAULT_UP_TIMEOUT,
    LocalStack,
    ServiceChange,
    ServiceStatus,
)
from streamfeat.errors import ConfigurationError, StackError

NOT_RUNNING_EXIT_CODE = 3
"""Exit code of ``status`` when a service is stopped or not responding, as in LSB init scripts."""

_HELP = (
    "Start, stop and inspect the local Kafka broker and Redis server.\n\n"
    "Tests and the demo use this stack: a single-node Kafka (KRaft) from the Apache Kafka "
    "jars that Maven resolves, run on the machine's Java 17+, and Debian's redis-server "
    "without persistence. Both listen on 127.0.0.1 only.\n\n"
    "\b\n"
    "Environment variables:\n"
    "  STREAMFEAT_HOME: folder for jars, data, logs and pid files\n"
    "    (default: .local/ in the source checkout)\n"
    "  STREAMFEAT_KAFKA_PORT: Kafka broker port (default: 19092)\n"
    "  STREAMFEAT_KAFKA_CONTROLLER_PORT: controller port (default: broker port + 1)\n"
    "  STREAMFEAT_REDIS_PORT: Redis port (default: 16379)\n"
)

app = typer.Typer(help=_HELP, no_args_is_help=True)


@app.command()
def up(
    timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait for both services to respond once started.", min=1),
    ] = DEFAULT_UP_TIMEOUT.total_seconds(),
) -> None:
    """Start Kafka and Redis unless they already run, and wait until both respond."""
    with _stack_errors_as_exit():
        stack = LocalStack(report=_output.info)
        changes = stack.up(timeout=_seconds(timeout))
    for change in changes:
        verb = "started" if change.changed else "already running"
        _output.info(
            f"{change.status.name} {verb} at {change.status.address} "
            f"(pid {change.pid}, log {_display(change.status.log_path)})"
        )


@app.command()
def down(
    timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait after SIGTERM before SIGKILL, per service.", min=1),
    ] = DEFAULT_DOWN_TIMEOUT.total_seconds(),
) -> None:
    """Stop Kafka and Redis; a service that is not running is left as is."""
    with _stack_errors_as_exit():
        changes = LocalStack().down(timeout=_seconds(timeout))
    for change in changes:
        _output.info(_describe_stop(change))


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the status as JSON instead of text.")
    ] = False,
) -> None:
    """Show whether Kafka and Redis are running and responding (exit code 3 when not)."""
    with _stack_errors_as_exit():
        statuses = LocalStack().status()
    if as_json:
        _output.summary_json({"services": [service.to_json() for service in statuses]})
    else:
        for service in statuses:
            _output.info(_describe_status(service))
    if not all(service.ready for service in statuses):
        raise typer.Exit(NOT_RUNNING_EXIT_CODE)


@contextlib.contextmanager
def _stack_errors_as_exit() -> Iterator[None]:
    """Turn a stack or configuration error into its message on stderr and exit code 1."""
    try:
        yield
    except (StackError, ConfigurationError) as error:
        _output.error(str(error))
        raise typer.Exit(1) from error


def _describe_stop(change: ServiceChange) -> str:
    if change.changed:
        return f"{change.status.name} stopped (pid {change.pid})"
    return f"{change.status.name} was not running"


def _describe_status(service: ServiceStatus) -> str:
    if not service.running:
        return f"{service.name}: stopped"
    state = "running" if service.ready else "running but not responding"
    return (
        f"{service.name}: {state} at {service.address} "
        f"(pid {service.pid}, log {_display(service.log_path)})"
    )


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _display(path: Path) -> str:
    """Show ``path`` relative to the working directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
