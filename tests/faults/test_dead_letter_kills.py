"""A worker SIGKILLed the moment one of its dead letters reaches the broker, 5 times.

The month is produced in 5 parts, and each part brings new rejected events (flights without a
tail number have no key for the per-plane view), so each kill finds a dead letter to wait for.
The seed chooses how many dead letters, 0 to 3, pass before each kill.

A batch's dead letters are produced and acknowledged before the worker writes Redis and commits
its state, so a kill right after a dead letter appears is likely to land between the two. The
restarted worker then judges that batch's events again. The features must not change, and no
rejected event may get a second dead letter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

from tests.faults.conftest import ReferenceFor
from tests.faults.pipeline import MONTH, QUIET, FaultPipeline
from tests.faults.processes import ManagedProcess
from tests.faults.replay import require_running, wait_applied
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

KILLS = 5
INSTANCE = "w1"
MAX_SKIPPED = 3
DEAD_LETTER_TIMEOUT_S = 120.0
_FAST_FETCH = {"fetch.wait.max.ms": 5, "fetch.min.bytes": 1}
"""Consumer settings that hand a new message over within milliseconds."""


class DeadLetterWatch:
    """Reads the dead-letter topic from its current end, with little fetch delay."""

    def __init__(self, pipeline: FaultPipeline) -> None:
        topic = pipeline.topology.dead_letters
        self._consumer = Consumer(
            {
                **QUIET,
                **_FAST_FETCH,
                "bootstrap.servers": pipeline.stack.bootstrap_servers,
                "group.id": "faults.dead-letter-watch",
                "enable.auto.commit": False,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=30).topics[topic]
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in metadata.partitions])

    def next_dead_letter(self, worker: ManagedProcess) -> Message:
        deadline = time.monotonic() + DEAD_LETTER_TIMEOUT_S
        while time.monotonic() < deadline:
            require_running(worker)()
            message = self._consumer.poll(0.05)
            if message is not None and message.error() is None:
                return message
        raise TimeoutError(f"no dead letter within {DEAD_LETTER_TIMEOUT_S:g} s")

    def skip_pending(self) -> None:
        while (message := self._consumer.poll(0)) is not None:
            del message

    def close(self) -> None:
        self._consumer.close()


@pytest.fixture(scope="module")
def dead_letter_kill_run(
    reference_for: ReferenceFor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultRun]:
    seed, rng = choose_seed("worker kills on dead letters, month")
    reference, events = reference_for(MONTH)
    size = -(-len(events) // KILLS)
    with open_pipeline(tmp_path_factory.mktemp("dead-letter-kills"), len(events)) as pipeline:
        run = FaultRun(seed, pipeline, reference)
        watch = DeadLetterWatch(pipeline)
        try:
            sink = pipeline.start_sink()
            worker = pipeline.start_worker(INSTANCE)
            for number, start in enumerate(range(0, len(events), size), start=1):
                watch.skip_pending()
                pipeline.produce(events[start : start + size])
                for _ in range(rng.randrange(MAX_SKIPPED + 1) + 1):
                    watch.next_dead_letter(worker)
                progress = pipeline.worker_progress()
                worker.kill()
                run.facts.append(f"kill {number} on a dead letter, at {progress:.1%} applied")
                worker = pipeline.start_worker(INSTANCE)
        finally:
            watch.close()
        run.seconds["apply"] = wait_applied(pipeline, require_running(worker, sink))
        run.seconds.update(pipeline.stop([worker], sink))
        run.evaluate()
        yield run


def test_features_equal_reference(dead_letter_kill_run: FaultRun) -> None:
    assert_matches_reference(dead_letter_kill_run)


def test_every_rejection_dead_lettered(dead_letter_kill_run: FaultRun) -> None:
    assert_rejections_dead_lettered(dead_letter_kill_run)


def test_no_dead_letter_repeated(dead_letter_kill_run: FaultRun) -> None:
    assert_no_dead_letter_repeated(dead_letter_kill_run)


def test_read_archive_returns_newest_versions(dead_letter_kill_run: FaultRun) -> None:
    assert_read_archive_agrees(dead_letter_kill_run)


def test_no_process_crashed(dead_letter_kill_run: FaultRun) -> None:
    assert dead_letter_kill_run.tracebacks() == []
