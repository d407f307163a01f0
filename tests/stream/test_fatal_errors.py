"""A fatal Kafka client error stops the worker with an error instead of leaving it idle, except
a fenced static membership, which joins the group again a few times first."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamfeat.featurelog.record import FeatureRecord
from streamfeat.serialization import SchemaStore
from streamfeat.stream.worker import Worker, WorkerConfig
from tests.stream.harness import SCHEMAS_DIR, build_topology

UNUSED_ADDRESS = "127.0.0.1:9"
"""Loopback discard port: nothing listens there, and the test never needs a broker."""


class DiscardingStore:
    """Online store that accepts writes and keeps nothing; this test writes none."""

    def write(self, records: list[FeatureRecord]) -> int:
        return 0


def fatal_test_worker(tmp_path: Path) -> Worker:
    topology = build_topology(
        "fatal",
        views=[
            {
                "name": "n",
                "window": {"length": "1m"},
                "features": [{"name": "n", "function": "count"}],
            }
        ],
    )
    return Worker(
        topology,
        SchemaStore.from_dir(SCHEMAS_DIR),
        DiscardingStore(),  # type: ignore[arg-type]
        WorkerConfig(UNUSED_ADDRESS, tmp_path / "state", instance_id="w1"),
    )


def test_fatal_error_ends_run_with_it(tmp_path: Path) -> None:
    worker = fatal_test_worker(tmp_path)
    fatal = KafkaError(KafkaError._FATAL, "producer fenced by a newer transactional id", fatal=True)

    worker._on_kafka_error(fatal)

    with pytest.raises(KafkaException, match="newer transactional id"):
        worker.run()


def test_fenced_static_member_joins_again_within_its_budget(tmp_path: Path) -> None:
    worker = fatal_test_worker(tmp_path)
    first_consumer = worker._consumer
    worker._on_kafka_error(_fenced())
    batches = iter(range(3))

    worker.run(until=lambda: next(batches, None) is None)

    assert worker._consumer is not first_consumer
    assert worker._fatal_error is None


def test_static_member_fenced_too_often_stops(tmp_path: Path) -> None:
    worker = fatal_test_worker(tmp_path)
    for _ in range(4):
        worker._on_kafka_error(_fenced())
        worker._consumer_broken = False  # as after each rejoin

    with pytest.raises(KafkaException, match="fenced"):
        worker.run()


def _fenced() -> KafkaError:
    return KafkaError(KafkaError.FENCED_INSTANCE_ID, "static member fenced", fatal=True)
