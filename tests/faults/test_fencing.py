"""A second worker started with the same instance id fences the first, then is SIGKILLed.

The broker hands the static membership to the newer process and rejects the older one's next
commit or heartbeat with FENCED_INSTANCE_ID, which librdkafka reports as fatal. The fenced
worker must replace its consumer, join again once the intruder is gone, and finish the replay,
with results equal to the reference and without a restart by anyone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.conftest import ReferenceFor
from tests.faults.pipeline import WEEK, wait_assigned
from tests.faults.processes import wait_for
from tests.faults.replay import require_running, wait_applied, wait_progress
from tests.faults.scenario import (
    FaultRun,
    assert_matches_reference,
    assert_no_dead_letter_repeated,
    assert_rejections_dead_lettered,
    choose_seed,
    open_pipeline,
)

pytestmark = [pytest.mark.integration, pytest.mark.long]

INSTANCE = "w1"
REJOIN_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def fenced_run(
    reference_for: ReferenceFor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultRun]:
    seed, rng = choose_seed("worker fenced by a second process with its id, week")
    reference, events = reference_for(WEEK)
    with open_pipeline(tmp_path_factory.mktemp("fencing"), len(events)) as pipeline:
        run = FaultRun(seed, pipeline, reference)
        run.seconds["produce"] = pipeline.produce(events).seconds
        sink = pipeline.start_sink()
        worker = pipeline.start_worker(INSTANCE)
        point = rng.uniform(0.1, 0.5)
        wait_progress(pipeline, point, require_running(worker, sink))
        intruder = pipeline.start_worker(INSTANCE, state_name="intruder")
        wait_assigned(intruder)
        wait_for(
            lambda: bool(worker.lines_containing("consumer_failed")),
            REJOIN_TIMEOUT_S,
            "the first worker noticing it was fenced",
        )
        intruder.kill()
        run.facts.append(f"second process with id {INSTANCE} started at {point:.0%}, then killed")
        run.seconds["apply"] = wait_applied(pipeline, require_running(worker, sink))
        run.seconds.update(pipeline.stop([worker], sink))
        run.evaluate()
        yield run


def test_fenced_worker_rejoins_and_keeps_running(fenced_run: FaultRun) -> None:
    worker = fenced_run.pipeline.registry.runs_of(f"worker-{INSTANCE}")[0]

    assert worker.lines_containing("consumer_failed code=")
    assert worker.lines_containing("action=rejoin")
    assert not worker.lines_containing("kafka_fatal_error")


def test_fenced_run_equals_reference(fenced_run: FaultRun) -> None:
    assert_matches_reference(fenced_run)


def test_fenced_run_loses_no_dead_letter(fenced_run: FaultRun) -> None:
    assert_rejections_dead_lettered(fenced_run)


def test_fenced_run_repeats_no_dead_letter(fenced_run: FaultRun) -> None:
    assert_no_dead_letter_repeated(fenced_run)


def test_fenced_run_crashes_no_process(fenced_run: FaultRun) -> None:
    assert fenced_run.tracebacks() == []
