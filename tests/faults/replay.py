"""Waiting on a replay: progress points, stalls, and a supervisor that restarts a worker.

A wait fails as soon as the workers stop committing for ``STALL_S`` while input is left, instead
of sitting out a long timeout. The faults themselves pause the workers for well under that:
Redis stays away for 20 s and a broker restart takes about half a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.faults.pipeline import FaultPipeline
from tests.faults.processes import ManagedProcess

STALL_S = 180.0
REPLAY_TIMEOUT_S = 1800.0
POLL_S = 0.05
_FATAL_MARK = "|FATAL|"
_REJOIN_MARK = "consumer_failed"
_REJOIN_GRACE_S = 30.0
"""How long a worker whose client logged a fatal error may take to log that it joins again."""
"""How librdkafka starts the log line of an error that leaves its client unusable."""

Poll = Callable[[], None]
"""Called on every poll of a wait: checks processes, restarts them, or raises."""


def require_running(*processes: ManagedProcess) -> Poll:
    """Return a poll that raises when one of ``processes`` exited."""

    def check() -> None:
        for process in processes:
            if not process.is_running():
                raise RuntimeError(
                    f"{process.label} exited by itself with {process.popen.returncode}"
                )

    return check


def wait_replay(
    pipeline: FaultPipeline, done: Callable[[], bool], what: str, on_poll: Poll
) -> float:
    """Poll until ``done()``; return the seconds waited.

    Raises TimeoutError when the worker group commits nothing for ``STALL_S`` or the wait
    exceeds ``REPLAY_TIMEOUT_S``.
    """
    started = last_change = time.monotonic()
    last_total = -1
    while True:
        on_poll()
        if done():
            return time.monotonic() - started
        total = sum(pipeline.worker_offsets.committed().values())
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change > STALL_S:
            raise TimeoutError(f"{what}: the workers committed nothing for {STALL_S:g} s")
        if now - started > REPLAY_TIMEOUT_S:
            raise TimeoutError(f"{what} did not happen within {REPLAY_TIMEOUT_S:g} s")
        time.sleep(POLL_S)


def wait_progress(pipeline: FaultPipeline, point: float, on_poll: Poll) -> float:
    """Wait until the replay passed ``point`` (a share from 0 to 1)."""
    return wait_replay(
        pipeline,
        lambda: pipeline.worker_progress() >= point,
        f"the replay passing {point:.0%}",
        on_poll,
    )


def wait_applied(pipeline: FaultPipeline, on_poll: Poll) -> float:
    return wait_replay(
        pipeline, pipeline.worker_applied_everything, "the workers applying every event", on_poll
    )


class WorkerSupervisor:
    """Keeps one worker running, as a process supervisor with a liveness check would.

    A worker that exited is started again with the same state folder and instance id. So is one
    whose Kafka client logged a fatal error that the worker did not follow by joining the group
    again (a fenced static member) within a grace period; it is killed first. Each such
    intervention is recorded, so a test can require that none was needed.
    """

    def __init__(self, pipeline: FaultPipeline, instance_id: str) -> None:
        self.pipeline = pipeline
        self.instance_id = instance_id
        self.worker = pipeline.start_worker(instance_id)
        self.interventions: list[str] = []
        self._unhandled_since: float | None = None

    def check(self) -> None:
        worker = self.worker
        if not worker.is_running():
            reason = f"{worker.label} exited with {worker.popen.returncode}"
        elif fatal := self._unhandled_fatal(worker):
            reason = f"{worker.label} kept running after a fatal Kafka error: {fatal}"
            worker.kill()
        else:
            return
        self._unhandled_since = None
        self.interventions.append(reason)
        self.worker = self.pipeline.start_worker(self.instance_id)

    def _unhandled_fatal(self, worker: ManagedProcess) -> str | None:
        """The first fatal error line, once more of them than rejoins stood for the grace."""
        fatal = worker.lines_containing(_FATAL_MARK)
        if len(fatal) <= len(worker.lines_containing(_REJOIN_MARK)):
            self._unhandled_since = None
            return None
        now = time.monotonic()
        if self._unhandled_since is None:
            self._unhandled_since = now
        return fatal[0] if now - self._unhandled_since >= _REJOIN_GRACE_S else None
