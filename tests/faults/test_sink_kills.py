"""The sink SIGKILLed between writing a batch's files and committing its offsets, 5 times.

An inotify watch on the archive reports each file the moment the sink renames it into place, and
the test kills the sink at once. The group's committed offset of that feature-log partition then
shows whether the kill landed in the window: a commit that had happened would cover the file's
last offset. The test needs ``LANDED`` such kills.

Kills target batches never written before, so each one interrupts new work and the restarted
sink first writes the interrupted batch again (the same files, since their names carry the
offset range). The month is produced in chunks, one per kill, so that a restarted sink always
finds new records to batch. Between chunks the worker only waits; that changes no record.

Afterwards every feature-log record must be in the archive exactly once, and the final records
and Redis must equal the reference.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.faults.archive_watch import ArchiveFile, ArchiveWatch
from tests.faults.conftest import ReferenceFor
from tests.faults.pipeline import MONTH, FaultPipeline
from tests.faults.processes import ManagedProcess
from tests.faults.replay import require_running, wait_applied
from tests.faults.results import report
from tests.faults.scenario import (
    FaultRun,
    assert_dead_letters_match,
    assert_matches_reference,
    choose_seed,
    open_pipeline,
)
from tests.faults.topics import RowCheck, check_archive_rows

pytestmark = [pytest.mark.integration, pytest.mark.long]

LANDED = 5
"""Kills that must land between a batch's files and its commit."""
CHUNKS = 10
"""Parts the month is produced in; each gives a restarted sink new batches to write."""
MAX_SKIPPED_FILES = 3
"""A kill waits for the first to the fourth file of new batches, chosen by the seed."""
FILE_TIMEOUT_S = 180.0
"""Maximum wait for a file: a restarted sink waits for its killed predecessor's group session
(librdkafka's default of 45 s) to expire, then up to 10 s for its first batch to close."""


@dataclass
class SinkKillRun(FaultRun):
    """A fault run that also matched the feature log with the archive's rows."""

    rows: RowCheck | None = None
    partial_files: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def killed_sink_run(
    reference_for: ReferenceFor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SinkKillRun]:
    seed, rng = choose_seed("sink kills, month")
    reference, events = reference_for(MONTH)
    size = -(-len(events) // CHUNKS)
    chunks = [events[start : start + size] for start in range(0, len(events), size)]
    work_dir = tmp_path_factory.mktemp("sink-kills")
    with open_pipeline(work_dir, len(events)) as pipeline:
        run = SinkKillRun(seed, pipeline, reference)
        watch = ArchiveWatch(pipeline.archive)
        try:
            worker = pipeline.start_worker("w1")
            sink = pipeline.start_sink()
            seen: set[tuple[int, int]] = set()
            landed = 0
            while landed < LANDED:
                if not chunks:
                    pytest.fail(f"{landed} of {LANDED} kills landed in the window (seed {seed})")
                pipeline.produce(chunks.pop(0))
                skip = rng.randrange(MAX_SKIPPED_FILES + 1)
                written: set[tuple[int, int]] = set()
                target = _wait_new_batch_file(watch, sink, seen, written, skip)
                reaction_ms = (time.monotonic() - target.seen_at) * 1000
                sink.kill()
                landed += _judge_kill(pipeline, run, target, sink, skip, reaction_ms)
                seen |= written | {(f.partition, f.first_offset) for f in watch.drain()}
                sink = pipeline.start_sink()
            for chunk in chunks:
                pipeline.produce(chunk)
            run.seconds["apply"] = wait_applied(pipeline, require_running(worker, sink))
            run.seconds.update(pipeline.stop([worker], sink))
        finally:
            watch.close()
        run.rows = check_archive_rows(
            pipeline.stack.bootstrap_servers, pipeline.topology, pipeline.archive
        )
        run.partial_files = sorted(str(p) for p in pipeline.archive.rglob(".*.tmp"))
        run.facts.append(_describe_rows(run.rows, run.partial_files))
        run.evaluate()
        yield run


def _wait_new_batch_file(
    watch: ArchiveWatch,
    sink: ManagedProcess,
    seen: set[tuple[int, int]],
    written: set[tuple[int, int]],
    skip: int,
) -> ArchiveFile:
    """Return the file after ``skip`` others of batches that no earlier sink run wrote.

    Every batch seen on the way, as (partition, first offset), is added to ``written``.
    """
    deadline = time.monotonic() + FILE_TIMEOUT_S
    passed = 0
    while time.monotonic() < deadline:
        if not sink.is_running():
            raise RuntimeError(f"{sink.label} exited by itself")
        found = watch.next_file(timeout_s=0.5)
        if found is None:
            continue
        written.add((found.partition, found.first_offset))
        if (found.partition, found.first_offset) in seen:
            continue
        if passed == skip:
            return found
        passed += 1
    raise TimeoutError(f"{sink.label} wrote no new batch within {FILE_TIMEOUT_S:g} s")


def _judge_kill(
    pipeline: FaultPipeline,
    run: FaultRun,
    target: ArchiveFile,
    sink: ManagedProcess,
    skip: int,
    reaction_ms: float,
) -> bool:
    """Report one kill; True when the batch's offsets were not committed yet."""
    committed = pipeline.sink_offsets.committed()[(pipeline.topology.feature_log, target.partition)]
    landed = committed <= target.last_offset
    run.facts.append(
        f"sink kill after {skip + 1} new file(s), {reaction_ms:.2f} ms after the watch saw "
        f"{target.path.parent.parent.name}/{target.path.parent.name}/{target.path.name}: "
        f"committed offset {committed}, batch ends at {target.last_offset}: "
        f"{'in the window' if landed else 'commit already done'}; sink ran "
        f"{time.time() - sink.started_at:.1f} s"
    )
    return landed


def _describe_rows(rows: RowCheck, partial_files: list[str]) -> str:
    return (
        f"feature-log records {rows.log_records}, archive rows {rows.archive_rows}, "
        f"missing rows {rows.missing.total()}, duplicate rows {rows.duplicated.total()}, "
        f"partial files left {len(partial_files)}"
    )


def test_archive_has_each_log_record_once(killed_sink_run: SinkKillRun) -> None:
    rows = killed_sink_run.rows
    assert rows is not None
    report("sink kills", [_describe_rows(rows, killed_sink_run.partial_files)])
    assert rows.missing.total() == 0, f"first missing: {list(rows.missing)[:5]}"
    assert rows.duplicated.total() == 0, f"first duplicated: {list(rows.duplicated)[:5]}"


def test_no_partial_file_is_left(killed_sink_run: SinkKillRun) -> None:
    assert killed_sink_run.partial_files == []


def test_archive_and_online_equal_reference(killed_sink_run: SinkKillRun) -> None:
    assert_matches_reference(killed_sink_run)


def test_each_rejected_event_has_one_dead_letter(killed_sink_run: SinkKillRun) -> None:
    assert_dead_letters_match(killed_sink_run)
