"""The local stack as a whole: a Kafka broker and a Redis server started and stopped together."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from streamfeat.devstack._kafka import KafkaBroker
from streamfeat.devstack._process import check_port_free
from streamfeat.devstack._redis import RedisServer
from streamfeat.devstack._service import LocalService, ServiceStatus
from streamfeat.devstack._settings import StackSettings

logger = logging.getLogger(__name__)

DEFAULT_UP_TIMEOUT = timedelta(seconds=90)
"""How long ``up`` waits for both services to respond after starting them."""

DEFAULT_DOWN_TIMEOUT = timedelta(seconds=30)
"""How long ``down`` waits after SIGTERM before it sends SIGKILL, per service."""

_STATUS_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ServiceChange:
    """Outcome of ``up`` or ``down`` for one service."""

    status: ServiceStatus
    pid: int | None
    """The process that was started, found running or stopped; None when none was running."""
    changed: bool
    """Whether this call started (``up``) or stopped (``down``) the process."""


def _ignore_progress(message: str) -> None:
    del message


class LocalStack:
    """The Kafka broker and Redis server on loopback ports that tests and the demo use.

    Both run detached from the calling process, so they outlive it until ``down()``. The
    files of one stack (jars, data, logs, pid files) live in ``settings.home``; two stacks
    with different homes and ports can run side by side. ``report`` receives progress
    messages about the slow first-start steps (downloading jars, formatting storage).
    """

    def __init__(
        self,
        settings: StackSettings | None = None,
        *,
        report: Callable[[str], None] = _ignore_progress,
    ) -> None:
        self.settings = StackSettings.from_env() if settings is None else settings
        self.kafka = KafkaBroker(self.settings, report)
        self.redis = RedisServer(self.settings)
        self._report = report

    @property
    def bootstrap_servers(self) -> str:
        """Kafka ``bootstrap.servers`` value for clients of this stack."""
        return self.settings.bootstrap_servers

    @property
    def redis_url(self) -> str:
        """URL of database 0 on this stack's Redis server."""
        return self.settings.redis_url

    @property
    def services(self) -> tuple[LocalService, ...]:
        """The services of the stack, in the order messages list them."""
        return (self.kafka, self.redis)

    def up(self, *, timeout: timedelta = DEFAULT_UP_TIMEOUT) -> list[ServiceChange]:
        """Start whichever service is not running and wait until both respond.

        Everything that can be checked up front (programs installed, ports free) is checked
        before anything starts. When a service fails to come up, the services this call
        started are stopped again, so a failed ``up`` leaves no half-started stack behind.

        Raises:
            StackError: a program is missing, a port is taken, or a service exited or did not
                respond within ``timeout`` (then the message names its log file).
        """
        with self._lock():
            running = {service: service.running_pid() for service in self.services}
            to_start = [service for service in self.services if running[service] is None]
            for service in self.services:
                if running[service] is not None:
                    service.check_running_address()
            self._check_can_start(to_start)
            started: dict[LocalService, int] = {}
            try:
                for service in to_start:
                    started[service] = service.start()
                self._wait_ready({**running, **started}, timeout)
            except BaseException:
                self._stop_quietly(started)
                raise
        return [
            ServiceChange(
                status=ServiceStatus(
                    service.name, service.address, service.log_path, pid, ready=True
                ),
                pid=pid,
                changed=service in started,
            )
            for service, pid in {**running, **started}.items()
            if pid is not None
        ]

    def down(self, *, timeout: timedelta = DEFAULT_DOWN_TIMEOUT) -> list[ServiceChange]:
        """Stop both services: SIGTERM, then SIGKILL when one still runs after ``timeout``."""
        changes = []
        with self._lock():
            for service in self.services:
                pid = service.stop(timeout.total_seconds())
                status = ServiceStatus(
                    service.name, service.address, service.log_path, pid=None, ready=False
                )
                changes.append(ServiceChange(status=status, pid=pid, changed=pid is not None))
        return changes

    def status(self) -> list[ServiceStatus]:
        """Return whether each service is running and responds to a request."""
        return [service.status(_STATUS_PROBE_TIMEOUT_S) for service in self.services]

    def _check_can_start(self, services: list[LocalService]) -> None:
        for service in services:
            service.check_tools()
        for service in services:
            for claim in service.ports:
                check_port_free(claim.port, claim.role, claim.env_var)

    def _wait_ready(self, pids: dict[LocalService, int | None], timeout: timedelta) -> None:
        # The deadline starts once every process is spawned, so a first start that spends
        # a minute downloading jars still gives the broker the whole timeout to come up.
        timeout_s = timeout.total_seconds()
        deadline = time.monotonic() + timeout_s
        for service, pid in pids.items():
            if pid is not None:
                service.wait_ready(pid, deadline, timeout_s)

    def _stop_quietly(self, started: dict[LocalService, int]) -> None:
        for service in started:
            try:
                service.stop(DEFAULT_DOWN_TIMEOUT.total_seconds())
            except Exception:
                logger.exception("service_rollback_failed service=%s", service.name)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the home folder, so concurrent ups and downs take turns."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        lock_path = self.settings.home / "stack.lock"
        with lock_path.open("w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._report(f"Waiting for another stack command using {self.settings.home}")
                fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield
