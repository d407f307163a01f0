"""The worker and sink processes that the demo starts, each writing to its own log file."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from streamfeat.errors import ConfigurationError

logger = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = timedelta(seconds=30)
"""How long a child may take to finish after SIGTERM before it gets SIGKILL."""


def streamfeat_executable() -> Path:
    """Return the ``streamfeat`` script installed beside the running Python interpreter."""
    path = Path(sys.executable).with_name("streamfeat")
    if not path.is_file():
        raise ConfigurationError(
            f"the streamfeat command is not installed at {path}; install the package into this "
            "environment with 'pip install -e .' (make install does it)"
        )
    return path


class ChildProcess:
    """One ``streamfeat`` sub-command running in its own session, output going to ``log_path``.

    Its own session keeps Ctrl-C in the terminal from reaching it directly, so the demo decides
    when and how it stops.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        logger.info("child_started name=%s pid=%d log=%s", name, self.pid, log_path)

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_code(self) -> int | None:
        """Return the exit code once the process has ended, else None."""
        return self._process.poll()

    def terminate(self) -> None:
        """Send SIGTERM unless the process has already ended."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline_s: float) -> int:
        """Wait until ``time.monotonic()`` reaches ``deadline_s``, then send SIGKILL.

        Returns the exit code.
        """
        try:
            return self._process.wait(timeout=max(0.0, deadline_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("child_killed name=%s pid=%d", self.name, self.pid)
            self._process.kill()
            return self._process.wait()


def stop_children(
    children: Sequence[ChildProcess], timeout: timedelta = DEFAULT_STOP_TIMEOUT
) -> dict[str, int]:
    """Send SIGTERM to every child, then SIGKILL to those still running after ``timeout``.

    Returns each child's exit code by name.
    """
    for child in children:
        child.terminate()
    deadline_s = time.monotonic() + timeout.total_seconds()
    codes = {child.name: child.wait_or_kill(deadline_s) for child in children}
    for name, code in codes.items():
        logger.info("child_stopped name=%s exit_code=%d", name, code)
    return codes
