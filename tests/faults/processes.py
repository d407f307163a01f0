"""Real ``streamfeat`` processes for fault tests: started, killed, paused, and their logs kept.

Every process writes its standard output and error to files of its own, so a failing test can
show what each one printed. ``ProcessRegistry.close`` kills whatever is still running; tests
call it from a ``finally`` block (the fixtures do), so no process outlives its test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

STREAMFEAT = Path(sys.executable).with_name("streamfeat")
"""The CLI of the virtual environment that runs the tests."""
TAIL_LINES = 40
"""Lines of each log file that a failure report shows."""
_EXIT_WAIT_S = 30.0
_LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"
"""``asctime`` of the worker's log lines (local time, milliseconds after the comma)."""


@dataclass
class ManagedProcess:
    """One started process with its log files; ``run`` counts restarts of the same role."""

    name: str
    run: int
    argv: list[str]
    stdout_path: Path
    stderr_path: Path
    popen: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.time)
    """Wall-clock start, seconds since the epoch (log lines carry wall-clock times)."""
    paused: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def label(self) -> str:
        return f"{self.name}#{self.run}"

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> float:
        """SIGKILL the process, wait until it is gone and return the wall-clock kill time."""
        killed_at = time.time()
        if self.is_running():
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(_EXIT_WAIT_S)
        self.paused = False
        return killed_at

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but responds to nothing until ``resume``."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout_s: float = _EXIT_WAIT_S) -> int:
        """SIGTERM (the CLI then finishes its batch and commits); SIGKILL after ``timeout_s``.

        Returns the exit code.
        """
        if self.paused:
            self.resume()
        if self.is_running():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.wait(_EXIT_WAIT_S)

    def log_lines(self) -> list[str]:
        """Lines written to standard error so far (the CLI logs there)."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def lines_containing(self, text: str) -> list[str]:
        return [line for line in self.log_lines() if text in line]

    def tail(self, lines: int = TAIL_LINES) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            content = path.read_text(encoding="utf-8", errors="replace").splitlines()
            shown = "\n".join(content[-lines:]) if content else "(empty)"
            parts.append(f"--- {path.name} (last {min(lines, len(content))} lines)\n{shown}")
        state = "running" if self.is_running() else f"exited with {self.popen.returncode}"
        return f"=== {self.label} pid {self.pid} ({state}): {' '.join(self.argv)}\n" + "\n".join(
            parts
        )


class ProcessRegistry:
    """Starts processes with their logs under ``log_dir`` and kills the survivors on ``close``."""

    def __init__(self, log_dir: Path, env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.env = dict(env)
        self.processes: list[ManagedProcess] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str]) -> ManagedProcess:
        """Start ``argv`` in a session of its own, so that only the signals sent here reach it."""
        run = sum(1 for process in self.processes if process.name == name) + 1
        stem = self.log_dir / f"{name}-{run}"
        stdout_path, stderr_path = stem.with_suffix(".out"), stem.with_suffix(".err")
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            popen = subprocess.Popen(
                list(argv),
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        process = ManagedProcess(name, run, list(argv), stdout_path, stderr_path, popen)
        self.processes.append(process)
        return process

    def start_streamfeat(self, name: str, arguments: Sequence[str]) -> ManagedProcess:
        return self.start(name, [str(STREAMFEAT), *arguments])

    def runs_of(self, name: str) -> list[ManagedProcess]:
        return [process for process in self.processes if process.name == name]

    def tails(self) -> str:
        return "\n\n".join(process.tail() for process in self.processes)

    def close(self) -> None:
        """Kill every process that still runs, paused ones included."""
        for process in self.processes:
            if process.is_running():
                if process.paused:
                    process.resume()
                process.kill()


def log_time(line: str) -> float | None:
    """Wall-clock time of a worker log line, seconds since the epoch; None without a stamp."""
    try:
        stamp = datetime.strptime(line[:23], _LOG_TIME_FORMAT)
    except ValueError:
        return None
    return stamp.timestamp()


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.1
) -> float:
    """Poll ``condition()`` until it is true; return the seconds waited.

    Raises TimeoutError naming ``what`` when ``timeout_s`` passes first.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(every_s)
    return time.monotonic() - started
