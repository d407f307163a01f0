"""Three workers in one group, one SIGKILLed mid-replay for good: the others take over.

The killed worker never returns, so once its session times out the group moves its partitions
to the two others. They hold no state for those partitions and rebuild it from the retained
input topics, writing records again. The results must still equal the reference.

The test measures the takeover: from the kill to the first ``partitions_assigned`` log line of
a survivor that names a moved partition, and to the first offset a survivor commits on one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.faults.conftest import ReferenceFor
from tests.faults.pipeline import MONTH, FaultPipeline, wait_assigned
from tests.faults.processes import ManagedProcess, log_time, wait_for
from tests.faults.replay import require_running, wait_applied, wait_progress
from tests.faults.scenario import (
    FaultRun,
    assert_matches_reference,
    assert_no_dead_letter_repeated,
    assert_read_archive_agrees,
    assert_rejections_dead_lettered,
    choose_seed,
    open_pipeline,
)

pytestmark = [pytest.mark.integration, pytest.mark.long]

INSTANCES = ("w1", "w2", "w3")
SESSION_TIMEOUT_S = 6.0
"""The shortest session timeout ``streamfeat worker`` accepts, so the takeover starts soon."""
TAKEOVER_TIMEOUT_S = 120.0
_SETTLE_S = 0.5
"""Pause after the kill before reading the committed offsets, so that a commit the killed
worker had already sent is not taken for a survivor's."""

Partition = tuple[str, int]


@dataclass
class FailoverRun(FaultRun):
    """A fault run with the takeover times."""

    moved: list[Partition] = field(default_factory=list)
    assigned_after_s: float | None = None
    committed_after_s: float | None = None


@pytest.fixture(scope="module")
def failover_run(
    reference_for: ReferenceFor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FailoverRun]:
    seed, rng = choose_seed("worker failover, month")
    reference, events = reference_for(MONTH)
    with open_pipeline(tmp_path_factory.mktemp("failover"), len(events)) as pipeline:
        run = FailoverRun(seed, pipeline, reference)
        run.seconds["produce"] = pipeline.produce(events).seconds
        sink = pipeline.start_sink()
        workers = {i: pipeline.start_worker(i, SESSION_TIMEOUT_S) for i in INSTANCES}
        for worker in workers.values():
            wait_assigned(worker)
        wait_for(lambda: _all_assigned(pipeline, workers), 120, "a stable group of three")
        victim_id = rng.choice(INSTANCES)
        point = rng.uniform(0.2, 0.6)
        wait_progress(pipeline, point, require_running(sink, *workers.values()))
        victim = workers.pop(victim_id)
        run.moved = sorted(last_assignment(victim))
        progress = pipeline.worker_progress()
        killed_at = victim.kill()
        _measure_takeover(pipeline, run, list(workers.values()), killed_at)
        run.facts.append(
            f"killed {victim.label} at {progress:.1%} applied (point {point:.0%}); "
            f"{len(run.moved)} partitions moved; first survivor assignment after "
            f"{_seconds(run.assigned_after_s)}, first survivor commit on a moved partition "
            f"after {_seconds(run.committed_after_s)} (session timeout {SESSION_TIMEOUT_S:g} s)"
        )
        survivors = list(workers.values())
        run.seconds["apply"] = wait_applied(pipeline, require_running(sink, *survivors))
        run.seconds.update(pipeline.stop(survivors, sink))
        run.evaluate()
        yield run


def last_assignment(worker: ManagedProcess) -> set[Partition]:
    """Partitions of the worker's latest ``partitions_assigned`` line."""
    lines = worker.lines_containing("partitions_assigned")
    return _partitions_of(lines[-1]) if lines else set()


def _partitions_of(line: str) -> set[Partition]:
    listed = line.rsplit("partitions=", 1)[1].strip()
    found = set()
    for item in filter(None, listed.split(",")):
        topic, partition = item.rsplit(":", 1)
        found.add((topic, int(partition)))
    return found


def _all_assigned(pipeline: FaultPipeline, workers: dict[str, ManagedProcess]) -> bool:
    """True when the workers' latest assignments together cover every input partition once."""
    every = {(tp.topic, tp.partition) for tp in pipeline.worker_offsets.partitions}
    assignments = [last_assignment(worker) for worker in workers.values()]
    total = sum(len(assigned) for assigned in assignments)
    return total == len(every) and set().union(*assignments) == every


def _measure_takeover(
    pipeline: FaultPipeline, run: FailoverRun, survivors: list[ManagedProcess], killed_at: float
) -> None:
    """Wait until a survivor commits on a moved partition; note both takeover times."""
    time.sleep(_SETTLE_S)
    before = pipeline.worker_offsets.committed()
    moved = set(run.moved)

    def committed_on_moved() -> bool:
        now = pipeline.worker_offsets.committed()
        return any(now[key] != before[key] for key in moved)

    wait_for(committed_on_moved, TAKEOVER_TIMEOUT_S, "a survivor committing a moved partition")
    run.committed_after_s = time.time() - killed_at
    assigned_times = [
        stamp
        for worker in survivors
        for line in worker.lines_containing("partitions_assigned")
        if (stamp := log_time(line)) is not None
        and stamp >= killed_at
        and _partitions_of(line) & moved
    ]
    if assigned_times:
        run.assigned_after_s = min(assigned_times) - killed_at


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} s"


def test_survivors_take_over_moved_partitions(failover_run: FailoverRun) -> None:
    assert failover_run.moved, "the killed worker held no partitions"
    assert failover_run.assigned_after_s is not None, "no survivor logged the moved partitions"
    assert failover_run.committed_after_s is not None


def test_archive_and_online_equal_reference(failover_run: FailoverRun) -> None:
    assert_matches_reference(failover_run)


def test_read_archive_returns_newest_versions(failover_run: FailoverRun) -> None:
    assert_read_archive_agrees(failover_run)


def test_each_rejected_event_has_a_dead_letter(failover_run: FailoverRun) -> None:
    assert_rejections_dead_lettered(failover_run)


def test_no_dead_letter_is_repeated(failover_run: FailoverRun) -> None:
    assert_no_dead_letter_repeated(failover_run)


def test_no_process_crashed(failover_run: FailoverRun) -> None:
    assert failover_run.tracebacks() == []
