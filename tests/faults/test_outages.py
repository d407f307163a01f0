"""Redis and the Kafka broker each stopped for 20 s during a replay: nothing changes.

The worker keeps its batch while a service is away and retries. It must log one line when a
service goes away and one when it is back, not one per attempt. The seed chooses when each
outage starts (as a share of the replay applied) and which comes first.

The stack's Redis is made to save a snapshot when it stops, so it returns with its data, as an
online store in production would (see ``keep_redis_data_across_restarts``).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.faults.conftest import ReferenceFor
from tests.faults.pipeline import MONTH, wait_assigned
from tests.faults.replay import WorkerSupervisor, require_running, wait_applied, wait_progress
from tests.faults.results import report
from tests.faults.scenario import (
    FaultRun,
    assert_dead_letters_match,
    assert_matches_reference,
    choose_seed,
    open_pipeline,
)
from tests.faults.stack import (
    keep_redis_data_across_restarts,
    start_stopped_services,
    stop_broker,
    stop_redis,
)

pytestmark = [pytest.mark.integration, pytest.mark.long]

DOWN_S = 20.0
"""Seconds each service stays stopped before it is started again."""
MAX_WORKER_WARNINGS = 8
"""Warning lines, besides dead letters, that the worker may log over both outages."""
MAX_SINK_LINES = 10
"""Lines the sink may write to standard error over both outages."""
_SERVICE = re.compile(r"(service_unavailable|service_recovered) service=(\w+)")


@dataclass
class OutageRun(FaultRun):
    """A fault run with the supervisor's restarts of the worker."""

    interventions: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def outage_run(
    reference_for: ReferenceFor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OutageRun]:
    seed, rng = choose_seed("Redis and broker outages, month")
    reference, events = reference_for(MONTH)
    with open_pipeline(tmp_path_factory.mktemp("outages"), len(events)) as pipeline:
        run = OutageRun(seed, pipeline, reference)
        keep_redis_data_across_restarts(pipeline.stack)
        run.seconds["produce"] = pipeline.produce(events).seconds
        sink = pipeline.start_sink()
        supervisor = WorkerSupervisor(pipeline, "w1")
        run.interventions = supervisor.interventions
        wait_assigned(supervisor.worker)

        def check() -> None:
            require_running(sink)()
            supervisor.check()

        points = [rng.uniform(0.1, 0.4), rng.uniform(0.5, 0.8)]
        for name, point in zip(rng.sample(["redis", "broker"], 2), points, strict=True):
            wait_progress(pipeline, point, check)
            progress = pipeline.worker_progress()
            started = time.time()
            stopped_at = (stop_redis if name == "redis" else stop_broker)(pipeline.stack)
            time.sleep(DOWN_S)
            back_s = start_stopped_services(pipeline.stack)
            down_s = time.time() - stopped_at
            run.facts.append(
                f"{name} stopped at {progress:.1%} applied (point {point:.0%}), stop took "
                f"{stopped_at - started:.1f} s, down {down_s:.1f} s, start took {back_s:.1f} s"
            )
        run.seconds["apply"] = wait_applied(pipeline, check)
        run.seconds.update(pipeline.stop([supervisor.worker], sink))
        run.facts.append(f"worker restarts by the supervisor: {run.interventions or 'none'}")
        run.evaluate()
        yield run


def _log_lines(run: FaultRun, name: str) -> list[str]:
    """Standard error of every run of the process ``name``, in order."""
    return [line for process in run.registry.runs_of(name) for line in process.log_lines()]


def test_archive_and_online_equal_reference(outage_run: FaultRun) -> None:
    assert_matches_reference(outage_run)


def test_each_rejected_event_has_one_dead_letter(outage_run: FaultRun) -> None:
    assert_dead_letters_match(outage_run)


def test_worker_logs_few_lines_about_outages(outage_run: OutageRun) -> None:
    """One line down and one up per outage; the broker may count twice (see below)."""
    lines = _log_lines(outage_run, "worker-w1")
    changes = Counter(match.groups() for line in lines if (match := _SERVICE.search(line)))
    warnings = [line for line in lines if " WARNING " in line and "dead_letter" not in line]
    report("worker log", [f"outage lines {dict(changes)}, other warnings {len(warnings)}"])
    assert changes[("service_unavailable", "online_store")] == 1, warnings
    assert changes[("service_recovered", "online_store")] == 1, warnings
    # NOTE: librdkafka hands error callbacks over on the next poll. An "all brokers down"
    # report queued during the outage can therefore arrive after the worker reached the broker
    # again (it then reads "0/1 brokers are down"), so one restart may log two broker outages.
    unavailable = changes[("service_unavailable", "kafka")]
    assert 1 <= unavailable <= 2, warnings
    # A worker that the supervisor killed logged no recovery.
    restarts = len(outage_run.interventions)
    assert changes[("service_recovered", "kafka")] >= unavailable - restarts, warnings
    assert len(warnings) <= MAX_WORKER_WARNINGS, "\n".join(warnings)


def test_sink_logs_few_lines_about_outages(outage_run: FaultRun) -> None:
    lines = _log_lines(outage_run, "sink")
    report("sink log", [f"{len(lines)} lines on standard error"])
    assert len(lines) <= MAX_SINK_LINES, "\n".join(lines[:MAX_SINK_LINES])


def test_worker_needs_no_restart(outage_run: OutageRun) -> None:
    assert outage_run.interventions == []


def test_no_process_crashed(outage_run: FaultRun) -> None:
    assert outage_run.tracebacks() == []
