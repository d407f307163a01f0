"""A fatal Kafka client error stops the worker with an error instead of leaving it idle."""

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


def test_fatal_error_ends_run_with_it(tmp_path: Path) -> None:
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
    worker = Worker(
        topology,
        SchemaStore.from_dir(SCHEMAS_DIR),
        DiscardingStore(),  # type: ignore[arg-type]
        WorkerConfig(UNUSED_ADDRESS, tmp_path / "state"),
    )
    fenced = KafkaError(KafkaError.FENCED_INSTANCE_ID, "static member fenced", fatal=True)

    worker._on_kafka_error(fenced)

    with pytest.raises(KafkaException, match="fenced"):
        worker.run()
