"""Worker throughput on the year's flights, against a consumer that only reads and decodes."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench.context import SCHEMAS, BenchContext
from bench.report import Figure
from streamfeat.admin.offsets import committed_offsets
from streamfeat.definitions.models import Topology
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.serialization import SchemaStore
from streamfeat.stream.topics import worker_topics
from streamfeat.stream.worker import Worker, WorkerConfig

WORKER_EVENTS_PER_S = "worker_events_per_s"
"""Key of the worker's rate in ``BenchContext.measured``."""


def run(context: BenchContext) -> list[Figure]:
    limit = read_and_decode_rate(context.topology, context.bootstrap, context.events)
    worker = worker_rate(context, context.scratch("worker-state"))
    context.measured[WORKER_EVENTS_PER_S] = worker
    return [Figure("worker, 3 views, full year", "events/s", worker, "read+decode limit", limit)]


def read_and_decode_rate(topology: Topology, bootstrap: str, count: int) -> float:
    """Events/s of a consumer that only reads and Avro-decodes the source topic."""
    source = topology.sources[0]
    store = SchemaStore.from_dir(SCHEMAS)
    decoder = store.decoder(store.for_file(source.schema_file).name)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topology.name}.limit",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(source.topic, p, 0) for p in range(source.partitions)])
    seen = 0
    started = time.monotonic()
    while seen < count:
        for message in consumer.consume(5_000, 1.0):
            if message.error() is None:
                decoder.decode(message.value())
                seen += 1
    elapsed = time.monotonic() - started
    consumer.close()
    return seen / elapsed


def worker_rate(context: BenchContext, state: Path) -> float:
    """Events/s of one in-process worker from start until every input message is applied."""
    topology = context.topology
    group = f"{topology.name}.worker"
    inputs = [
        spec.name
        for spec in worker_topics(topology)
        if spec.name not in (topology.feature_log, topology.dead_letters)
    ]
    monitor = Consumer({"bootstrap.servers": context.bootstrap, "group.id": group})
    partitions = [
        TopicPartition(t, p) for t in inputs for p in range(topology.sources[0].partitions)
    ]

    def applied() -> bool:
        for tp in committed_offsets(monitor, partitions, 10):
            _, high = monitor.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10
            )
            if high > 0 and tp.offset < high:
                return False
        return True

    worker = Worker(
        topology,
        SchemaStore.from_dir(SCHEMAS),
        RedisOnlineStore.from_url(context.stack.redis_url, topology, key_prefix=topology.name),
        WorkerConfig(context.bootstrap, state, group_id=group),
    )
    started = time.monotonic()
    checked = [0.0]

    def until() -> bool:
        if time.monotonic() - checked[0] < 1.0:
            return False
        checked[0] = time.monotonic()
        return applied()

    stats = worker.run(until=until)
    monitor.close()
    return stats.source_events / (time.monotonic() - started)
