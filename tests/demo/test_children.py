"""Child processes of the demo: early exits are reported, stops escalate to SIGKILL."""

from __future__ import annotations

import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from streamfeat.definitions.loader import load_topology
from streamfeat.demo.children import ChildProcess, stop_children
from streamfeat.demo.config import DemoConfig
from streamfeat.demo.namespace import DemoNamespace
from streamfeat.demo.offsets import OffsetReader
from streamfeat.demo.processing import wait_until_processed
from streamfeat.errors import DemoError
from streamfeat.settings import Settings

pytestmark = pytest.mark.timeout(60)

FLIGHTS = Path(__file__).resolve().parents[2] / "topologies" / "flights.yml"
IGNORE_SIGTERM = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def python_child(name: str, code: str, log_path: Path) -> ChildProcess:
    return ChildProcess(name, [sys.executable, "-c", code], log_path)


def wait_for_line(path: Path, text: str) -> None:
    """Wait until the child has written ``text`` to its log, so its signal handler is set."""
    for _ in range(200):
        if text in path.read_text(encoding="utf-8"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never contained {text!r}")


def test_child_output_goes_to_log(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "echo.log"
    child = python_child("echo", "print('hello from the child')", log_path)

    code = child.wait_or_kill(time.monotonic() + 10)

    assert code == 0
    assert child.exit_code() == 0
    assert "hello from the child" in log_path.read_text(encoding="utf-8")


def test_stop_sends_sigterm_first(tmp_path: Path) -> None:
    child = python_child("sleeper", "import time; time.sleep(60)", tmp_path / "sleeper.log")

    codes = stop_children([child], timedelta(seconds=10))

    assert codes == {"sleeper": -signal.SIGTERM}


def test_stop_kills_child_ignoring_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "stubborn.log"
    child = python_child("stubborn", IGNORE_SIGTERM, log_path)
    wait_for_line(log_path, "ready")

    codes = stop_children([child], timedelta(seconds=1))

    assert codes == {"stubborn": -signal.SIGKILL}


@pytest.mark.integration
def test_wait_fails_when_child_exits_early(tmp_path: Path) -> None:
    topology = load_topology(FLIGHTS)
    config = DemoConfig(topology_path=FLIGHTS, output_dir=tmp_path)
    log_path = tmp_path / "logs" / "worker.log"
    child = python_child("worker", "raise SystemExit(3)", log_path)
    child.wait_or_kill(time.monotonic() + 10)
    reader = OffsetReader(Settings.from_env().kafka_bootstrap)

    with pytest.raises(DemoError, match=r"the worker exited with code 3 .*worker\.log"):
        wait_until_processed(config, DemoNamespace(topology), reader, [child], lambda _: None)
