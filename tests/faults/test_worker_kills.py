"""A worker SIGKILLed at random points of a replay and restarted: the results do not change.

Each restart uses the same state folder and instance id, as a supervisor would restart it.
The kill points are shares of the replay's input chosen by the seed, each followed by a short
random delay, so that kills land inside batches. When a restarted worker is already past the
next point, it is killed a random 0.5-4 s after its start instead, during its start-up.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import ReferenceFor
from tests.faults.pipeline import MONTH, WEEK, FaultPipeline, Period
from tests.faults.processes import ManagedProcess
from tests.faults.replay import require_running, wait_applied, wait_progress
from tests.faults.scenario import (
    FaultRun,
    assert_matches_reference,
    assert_no_dead_letter_repeated,
    assert_rejections_dead_lettered,
    choose_seed,
    open_pipeline,
)

pytestmark = pytest.mark.integration

INSTANCE = "w1"


@contextlib.contextmanager
def _killed_worker_run(
    period: Period,
    kills: int,
    reference_for: ReferenceFor,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FaultRun]:
    """Replay the period with ``kills`` worker kills, then compare with the reference."""
    seed, rng = choose_seed(f"worker kills, {period.name}")
    reference, events = reference_for(period)
    work_dir = tmp_path_factory.mktemp(f"worker-kills-{period.name}")
    with open_pipeline(work_dir, len(events)) as pipeline:
        run = FaultRun(seed, pipeline, reference)
        run.seconds["produce"] = pipeline.produce(events).seconds
        sink = pipeline.start_sink()
        started = time.monotonic()
        worker = pipeline.start_worker(INSTANCE)
        points = sorted(rng.uniform(0.03, 0.97) for _ in range(kills))
        for number, point in enumerate(points, start=1):
            worker = _kill_at(pipeline, worker, point, rng, run, number, period)
        run.seconds["replay_with_kills"] = time.monotonic() - started
        run.seconds["apply"] = wait_applied(pipeline, require_running(worker, sink))
        run.seconds.update(pipeline.stop([worker], sink))
        run.evaluate()
        yield run


@pytest.fixture(scope="module")
def week_run(
    reference_for: ReferenceFor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultRun]:
    with _killed_worker_run(WEEK, 2, reference_for, tmp_path_factory) as run:
        yield run


@pytest.fixture(scope="module")
def month_run(
    reference_for: ReferenceFor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultRun]:
    with _killed_worker_run(MONTH, 10, reference_for, tmp_path_factory) as run:
        yield run


def _kill_at(
    pipeline: FaultPipeline,
    worker: ManagedProcess,
    point: float,
    rng: random.Random,
    run: FaultRun,
    number: int,
    period: Period,
) -> ManagedProcess:
    """Kill the worker once the replay passed ``point``; return its restarted successor."""
    delay = rng.uniform(0.0, 1.0)
    startup_delay = rng.uniform(0.5, 4.0)
    if pipeline.worker_progress() >= point:
        time.sleep(startup_delay)
        when = f"{startup_delay:.1f} s after start"
    else:
        wait_progress(pipeline, point, require_running(worker))
        time.sleep(delay)
        when = f"{delay:.2f} s after {point:.0%}"
    progress = pipeline.worker_progress()
    worker.kill()
    run.facts.append(f"kill {number} ({period.name}): {when}, at {progress:.1%} applied")
    return pipeline.start_worker(INSTANCE)


def test_week_kills_equal_reference(week_run: FaultRun) -> None:
    assert_matches_reference(week_run)


def test_week_kills_lose_no_dead_letter(week_run: FaultRun) -> None:
    assert_rejections_dead_lettered(week_run)


def test_week_kills_repeat_no_dead_letter(week_run: FaultRun) -> None:
    assert_no_dead_letter_repeated(week_run)


def test_week_kills_crash_no_process(week_run: FaultRun) -> None:
    assert week_run.tracebacks() == []


@pytest.mark.long
def test_month_kills_equal_reference(month_run: FaultRun) -> None:
    assert_matches_reference(month_run)


@pytest.mark.long
def test_month_kills_lose_no_dead_letter(month_run: FaultRun) -> None:
    assert_rejections_dead_lettered(month_run)


@pytest.mark.long
def test_month_kills_repeat_no_dead_letter(month_run: FaultRun) -> None:
    assert_no_dead_letter_repeated(month_run)


@pytest.mark.long
def test_month_kills_crash_no_process(month_run: FaultRun) -> None:
    assert month_run.tracebacks() == []
