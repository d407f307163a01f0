"""One server process of the local stack: start it, wait until it responds, stop it."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from streamfeat.devstack._process import (
    process_exited,
    process_matches,
    read_pid,
    spawn_detached,
    stop_process,
    write_pid,
)
from streamfeat.errors import StackError

logger = logging.getLogger(__name__)

_READY_POLL_INTERVAL_S = 0.2
_MAX_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PortClaim:
    """A loopback port a service listens on, and the variable that moves it."""

    port: int
    role: str
    env_var: str


@dataclass(frozen=True)
class ServiceStatus:
    """Snapshot of one service: its process, if any, and whether it responds."""

    name: str
    address: str
    log_path: Path
    pid: int | None
    ready: bool

    @property
    def running(self) -> bool:
        """Whether the service's process is alive (it may still be starting)."""
        return self.pid is not None

    def to_json(self) -> dict[str, object]:
        """Return the status as JSON-ready values."""
        return {
            "name": self.name,
            "address": self.address,
            "log_path": str(self.log_path),
            "pid": self.pid,
            "running": self.running,
            "ready": self.ready,
        }


class LocalService(ABC):
    """A server of the local stack that runs detached, tracked by a pid file in ``directory``.

    Subclasses define which programs the service needs, how to prepare and run it, how to
    recognise its process and how to check that it responds.
    """

    name: str
    """Human-readable name used in messages, such as ``Kafka broker``."""

    def __init__(self, directory: Path, file_stem: str) -> None:
        self.directory = directory
        self.pid_file = directory / f"{file_stem}.pid"
        # The address the running process was started with, which differs from ``address``
        # when the port variables changed since.
        self.address_file = directory / f"{file_stem}.address"
        self.log_path = directory / f"{file_stem}.log"

    @property
    @abstractmethod
    def address(self) -> str:
        """Address that clients connect to, in the form they expect."""

    @property
    @abstractmethod
    def ports(self) -> tuple[PortClaim, ...]:
        """Every loopback port the service listens on."""

    @abstractmethod
    def check_tools(self) -> None:
        """Raise StackError when a program the service needs is missing or too old."""

    @abstractmethod
    def probe(self, timeout_s: float) -> bool:
        """Return whether the service responds to a request within ``timeout_s``."""

    @abstractmethod
    def _prepare(self) -> list[str]:
        """Write the files the service needs and return the command that runs it."""

    @abstractmethod
    def _markers(self) -> tuple[str, ...]:
        """Strings in the command line that identify this service's process and home."""

    def running_pid(self) -> int | None:
        """Return the pid of the running service, or None when it is not running."""
        pid = read_pid(self.pid_file)
        if pid is not None and process_matches(pid, self._markers()):
            return pid
        return None

    def start(self) -> int:
        """Start the service in the background and return its pid without waiting for it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = self._prepare()
        pid = spawn_detached(argv, self.log_path)
        write_pid(self.pid_file, pid)
        self.address_file.write_text(self.address, encoding="utf-8")
        logger.info(
            "service_started service=%s pid=%d address=%s log=%s",
            self.name,
            pid,
            self.address,
            self.log_path,
        )
        return pid

    def check_running_address(self) -> None:
        """Raise StackError when the running service listens elsewhere than the settings say."""
        try:
            running_address = self.address_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        if running_address != self.address:
            raise StackError(
                f"The {self.name} in {self.directory} is already running at {running_address}, "
                f"not at {self.address}; stop it first (`streamfeat stack down`) "
                "or use another STREAMFEAT_HOME for a second stack."
            )

    def wait_ready(self, pid: int, deadline: float, timeout_s: float) -> None:
        """Wait until the service responds, up to the ``time.monotonic()`` value ``deadline``.

        ``timeout_s`` is the whole wait the caller allowed; it only appears in the message.
        """
        while True:
            # A process that is starting can show an empty or other command line for a moment
            # (a broker under load once did), so only an exited process ends the wait.
            if not process_matches(pid, self._markers()) and process_exited(pid):
                raise StackError(
                    f"The {self.name} (pid {pid}) exited while starting; "
                    f"see {self.log_path} for the reason."
                )
            remaining_s = deadline - time.monotonic()
            if self.probe(max(0.1, min(remaining_s, _MAX_PROBE_TIMEOUT_S))):
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"The {self.name} (pid {pid}) did not respond on {self.address} within "
                    f"{timeout_s:g} s; see {self.log_path}, or allow a longer timeout."
                )
            time.sleep(_READY_POLL_INTERVAL_S)

    def stop(self, timeout_s: float) -> int | None:
        """Stop the service and return the pid it had, or None when it was not running."""
        pid = self.running_pid()
        if pid is not None:
            stop_process(pid, self._markers(), timeout_s)
            logger.info("service_stopped service=%s pid=%d", self.name, pid)
        self.pid_file.unlink(missing_ok=True)
        self.address_file.unlink(missing_ok=True)
        return pid

    def status(self, probe_timeout_s: float) -> ServiceStatus:
        """Return whether the service is running and responds within ``probe_timeout_s``."""
        pid = self.running_pid()
        ready = pid is not None and self.probe(probe_timeout_s)
        return ServiceStatus(self.name, self.address, self.log_path, pid, ready)
