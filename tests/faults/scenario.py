"""One fault run from start to verdict: a stack, the processes, the comparison, the report."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streamfeat.offline.backfill import BackfillStats, backfill
from tests.consistency.month_pipeline import write_events_file
from tests.faults.pipeline import SOURCE, FaultPipeline, Period, process_env, write_fault_topology
from tests.faults.processes import ProcessRegistry
from tests.faults.results import ViewCheck, compare_run, problems_of, report, results_table
from tests.faults.stack import start_stack, stop_stack
from tests.faults.topics import DeadLetterCheck, check_dead_letters

SEED_ENV = "FAULT_SEED"


def choose_seed(test: str) -> tuple[int, random.Random]:
    """Return the seed of a fault test (``FAULT_SEED`` or a fresh one) and a generator on it.

    The seed is reported at once, so a failing run can be repeated with ``FAULT_SEED``.
    """
    chosen = os.environ.get(SEED_ENV)
    seed = int(chosen) if chosen else random.SystemRandom().randrange(2**32)
    report(test, [f"{SEED_ENV}={seed}"])
    return seed, random.Random(seed)


@dataclass(frozen=True)
class Reference:
    """A backfill of a period's events: the result that faults must not change."""

    period: Period
    events_count: int
    archive: Path
    stats: BackfillStats


def build_reference(period: Period, folder: Path) -> tuple[Reference, list[dict[str, object]]]:
    """Backfill the period's events into ``folder``; return the reference and the events."""
    events = period.events()
    events_file = folder / "events.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    write_events_file(events, events_file)
    topology_path, topology = write_fault_topology(folder / "topology")
    archive = folder / "archive"
    started_ms = int(time.time() * 1000)
    stats = backfill(
        topology,
        SOURCE,
        events_file,
        archive,
        topology_path.parent / topology.schemas_dir,
        clock=lambda: started_ms,
    )
    return Reference(period, len(events), archive, stats), events


@dataclass
class FaultRun:
    """What a fault run left behind, compared with its reference."""

    seed: int
    pipeline: FaultPipeline
    reference: Reference
    checks: list[ViewCheck] = field(default_factory=list)
    dead_letters: DeadLetterCheck | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)
    """Figures of the faults themselves (kill points, outage times), for the report."""

    @property
    def registry(self) -> ProcessRegistry:
        return self.pipeline.registry

    def evaluate(self) -> None:
        """Compare archive, Redis and dead letters with the reference, and report the figures."""
        pipeline = self.pipeline
        bound_ms = pipeline.stream_bound_ms()
        self.checks = compare_run(
            pipeline.topology,
            pipeline.archive,
            self.reference.archive,
            pipeline.stack.redis_url,
            bound_ms,
        )
        self.dead_letters = check_dead_letters(pipeline.stack.bootstrap_servers, pipeline.topology)
        expected = dict(self.reference.stats.rejected)
        report(
            f"results (seed {self.seed}, {self.reference.events_count} events)",
            [
                *self.facts,
                f"seconds: { {name: round(value, 1) for name, value in self.seconds.items()} }",
                results_table(self.checks),
                f"dead letters per (view, reason): {dict(self.dead_letters.per_view_reason)}, "
                f"backfill rejected {expected}, repeated dead letters "
                f"{self.dead_letters.repeated}",
            ],
        )

    def tracebacks(self) -> list[str]:
        """Return the processes whose standard error contains a Python traceback."""
        return [
            process.label
            for process in self.registry.processes
            if any("Traceback" in line for line in process.log_lines())
        ]


@contextlib.contextmanager
def open_pipeline(work_dir: Path, events: int) -> Iterator[FaultPipeline]:
    """Start a stack of its own and yield a pipeline on it; kill and stop everything after.

    When the body fails, the tails of every process's logs go to standard error, which pytest
    shows with the failure.
    """
    stack = start_stack(work_dir / "stack")
    registry = ProcessRegistry(work_dir / "logs", process_env(stack))
    pipeline: FaultPipeline | None = None
    try:
        pipeline = FaultPipeline(stack, work_dir, registry, events)
        pipeline.create_topics()
        yield pipeline
    except BaseException:
        sys.stderr.write(registry.tails() + "\n")
        raise
    finally:
        registry.close()
        if pipeline is not None:
            pipeline.close()
        stop_stack(stack)


def assert_matches_reference(run: FaultRun) -> None:
    """Archive and Redis equal the reference: nothing lost, nothing doubled, nothing else."""
    checks = run.checks
    context = f"seed {run.seed}; first problems: {problems_of(checks)}"
    assert checks, "the run was not evaluated"
    assert sum(c.missing for c in checks) == 0, f"records missing from the archive; {context}"
    assert sum(c.unexpected for c in checks) == 0, f"records not in the reference; {context}"
    assert sum(c.differing for c in checks) == 0, f"records with other values; {context}"
    assert sum(c.counts_lost for c in checks) == 0, f"count features lost events; {context}"
    assert sum(c.counts_doubled for c in checks) == 0, f"count features doubled events; {context}"
    assert sum(c.online_wrong for c in checks) == 0, f"Redis differs; {context}"


def assert_read_archive_agrees(run: FaultRun) -> None:
    """``read_archive`` gives each record's newest version as the files have it."""
    assert run.checks, "the run was not evaluated"
    wrong = sum(check.reader_wrong for check in run.checks)
    shown = [problem for check in run.checks for problem in check.reader_problems]
    assert wrong == 0, f"{wrong} records (seed {run.seed}); first: {shown}"


def assert_rejections_dead_lettered(run: FaultRun) -> None:
    """Each event the reference rejected has a dead letter with the same reason and views."""
    dead_letters = run.dead_letters
    assert dead_letters is not None, "the run was not evaluated"
    expected = Counter(run.reference.stats.rejected)
    assert dead_letters.per_view_reason == expected, f"seed {run.seed}"


def assert_no_dead_letter_repeated(run: FaultRun) -> None:
    dead_letters = run.dead_letters
    assert dead_letters is not None, "the run was not evaluated"
    assert dead_letters.repeated == 0, (
        f"{dead_letters.repeated} source events got their dead letter again (seed {run.seed})"
    )


def assert_dead_letters_match(run: FaultRun) -> None:
    """Each rejected event has its dead letter, once."""
    assert_rejections_dead_lettered(run)
    assert_no_dead_letter_repeated(run)
