"""Operating-system helpers of the local stack: executables, ports, pid files, processes."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from streamfeat.devstack._settings import LOOPBACK
from streamfeat.errors import StackError

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.1
_REAP_POLL_INTERVAL_S = 0.02
_REAP_TIMEOUT_S = 5.0


def require_executable(name: str, install_hint: str) -> str:
    """Return the path of the executable ``name`` on ``PATH``, or raise with how to install it."""
    path = shutil.which(name)
    if path is None:
        raise StackError(
            f"`{name}` was not found on PATH; install it (for example `{install_hint}`) "
            "or add its folder to PATH, then run the command again."
        )
    return path


def check_port_free(port: int, role: str, env_var: str) -> None:
    """Raise StackError when another process already listens on the loopback ``port``.

    The probe socket sets ``SO_REUSEADDR`` like Kafka and Redis do, so connections of a
    stopped server that linger in TIME_WAIT do not count as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            raise StackError(
                f"Port {port} ({role}) on {LOOPBACK} is already in use by another process; "
                f"stop that process (`ss -ltnp 'sport = :{port}'` shows it) "
                f"or choose another port with {env_var}."
            ) from error


def port_accepts(port: int, timeout_s: float) -> bool:
    """Return whether a TCP connection to the loopback ``port`` succeeds."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def read_pid(pid_file: Path) -> int | None:
    """Return the pid stored in ``pid_file``, or None when the file is missing or invalid."""
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    """Store ``pid`` in ``pid_file`` atomically, so a reader never sees a partial number."""
    partial = pid_file.with_name(pid_file.name + ".partial")
    partial.write_text(f"{pid}\n", encoding="ascii")
    partial.replace(pid_file)


def process_matches(pid: int, markers: tuple[str, ...]) -> bool:
    """Return whether ``pid`` is a live process with every marker among its arguments.

    The markers keep a stale pid file from naming an unrelated process that reused the pid.
    A child of this process that has exited is reaped here, so it does not linger as a
    zombie that still looks alive.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    arguments = _arguments(pid)
    return bool(arguments) and all(marker in arguments for marker in markers)


def process_exited(pid: int) -> bool:
    """Return whether ``pid`` is gone or a zombie; an exited child of this process is reaped."""
    with contextlib.suppress(ChildProcessError):
        reaped_pid, _ = os.waitpid(pid, os.WNOHANG)
        if reaped_pid == pid:
            return True
    if not _pid_exists(pid):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        # Gone since the check above, or no /proc (macOS), where only the kill check counts.
        return Path("/proc/self").exists()
    # The state letter follows the command name, which is in parentheses.
    return stat.rpartition(")")[2].split()[0] == "Z"


def _arguments(pid: int) -> list[str]:
    if Path("/proc/self").exists():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            return []
        # A zombie has an empty command line, which is right: it no longer runs.
        return raw.decode(errors="replace").split("\0")[:-1]
    # Without /proc (macOS), ps prints the command line, or nothing for a missing pid.
    # NOTE: ps joins the arguments with spaces, so a marker path containing a space never
    # matches there and a running stack reads as stopped.
    completed = subprocess.run(
        ["ps", "-p", str(pid), "-o", "args="], capture_output=True, text=True, check=False
    )
    return completed.stdout.split() if completed.returncode == 0 else []


def spawn_detached(argv: list[str], log_path: Path) -> int:
    """Start ``argv`` in a new session with its output in ``log_path``, and return its pid.

    The new session keeps the server running after the command that started it exits and
    keeps a Ctrl-C in that terminal from reaching it. ``posix_spawn`` leaves no
    ``subprocess.Popen`` object behind to warn that its process still runs.
    """
    output_flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), output_flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=file_actions, setsid=True)
    logger.debug("process_spawned pid=%d command=%s log=%s", pid, argv[0], log_path)
    return pid


def stop_process(pid: int, markers: tuple[str, ...], timeout_s: float) -> None:
    """Stop ``pid`` with SIGTERM, then SIGKILL when it is still running after ``timeout_s``."""
    _send_signal(pid, signal.SIGTERM)
    if _wait_for_exit(pid, markers, timeout_s):
        return
    logger.warning("process_kill pid=%d reason=sigterm_timeout timeout_s=%s", pid, timeout_s)
    _send_signal(pid, signal.SIGKILL)
    if not _wait_for_exit(pid, markers, timeout_s):
        raise StackError(
            f"Process {pid} is still running {timeout_s:g} s after SIGKILL; "
            f"check it with `ps -p {pid}` and end it by hand."
        )


def _send_signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return
    except PermissionError as error:
        raise StackError(
            f"Not allowed to send {signum.name} to process {pid}; "
            "stop the stack as the user who started it."
        ) from error


def _wait_for_exit(pid: int, markers: tuple[str, ...], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_matches(pid, markers):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL_S)
    _wait_until_reaped(pid)
    return True


def _wait_until_reaped(pid: int) -> None:
    """Wait, up to a few seconds, until the exited ``pid`` has left the process table.

    An exited process stays a zombie until its parent collects its status. This function
    collects the exit status of this process's own children. Other processes are left to
    init, which in some containers does so only every second or two, and until then tools
    such as ``pgrep`` still list the zombie.
    """
    deadline = time.monotonic() + _REAP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            reaped_pid, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            if not _pid_exists(pid):
                return
        else:
            if reaped_pid == pid:
                return
        time.sleep(_REAP_POLL_INTERVAL_S)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
