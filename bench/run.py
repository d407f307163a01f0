"""``make bench``: the benchmarks built so far, on the full 2013 flights, in one run.

Each figure is compared with a baseline measured in the same run, so ratios hold on a noisy
machine. The run uses its own topology name and topics, and deletes them at the end.

NOTE: the Quix Streams and Feast baselines, scale-out over two processes, freshness under a
fixed production rate and peak memory are not measured yet.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.report import Figure, print_table, write_json
from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.devstack import LocalStack
from streamfeat.offline.backfill import backfill
from streamfeat.offline.training_set import training_set
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.producer import dataset_events, produce_events
from streamfeat.serialization import SchemaStore
from streamfeat.serialization.times import local_ms_to_utc_ms
from streamfeat.sink import ArchiveSink, load_source_types
from streamfeat.stream.topics import worker_topics
from streamfeat.stream.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY = ROOT / "topologies" / "flights.yml"
SCHEMAS = ROOT / "schemas"


def bench_topology() -> Topology:
    base = load_topology(TOPOLOGY)
    name = f"bench_{int(time.time())}"
    source = base.source("flights").model_copy(update={"topic": f"{name}.flights"})
    return base.model_copy(update={"name": name, "sources": (source,)})


def produce_year(topology: Topology, bootstrap: str, events_file: Path) -> int:
    events = list(dataset_events("flights"))
    pq.write_table(pa.Table.from_pylist(events), events_file)
    summary = produce_events(
        iter(events),
        bootstrap=bootstrap,
        source=topology.sources[0],
        store=SchemaStore.from_dir(SCHEMAS),
        rate=None,
        on_progress=lambda n: None,
    )
    return summary.events


def limit_read_and_decode(topology: Topology, bootstrap: str, count: int) -> float:
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


def worker_rate(topology: Topology, stack: LocalStack, state: Path) -> float:
    """Events/s of one worker process from start until every input message is applied."""
    group = f"{topology.name}.worker"
    inputs = [
        s.name
        for s in worker_topics(topology)
        if s.name not in (topology.feature_log, topology.dead_letters)
    ]
    monitor = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": group})
    partitions = [
        TopicPartition(t, p) for t in inputs for p in range(topology.sources[0].partitions)
    ]

    def applied() -> bool:
        for tp in monitor.committed(partitions, timeout=10):
            _, high = monitor.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10
            )
            if high > 0 and tp.offset < high:
                return False
        return True

    worker = Worker(
        topology,
        SchemaStore.from_dir(SCHEMAS),
        RedisOnlineStore.from_url(stack.redis_url, topology, key_prefix=topology.name),
        WorkerConfig(stack.bootstrap_servers, state, group_id=group),
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


def sink_rates(topology: Topology, bootstrap: str, archive: Path) -> tuple[float, float]:
    """Rows/s of the sink, and of pyarrow alone writing the same rows."""
    idle = timedelta(seconds=3)
    sink = ArchiveSink(
        topology,
        archive,
        bootstrap_servers=bootstrap,
        source_types=load_source_types(topology, SCHEMAS),
    )
    started = time.monotonic()
    stats = sink.run(until_idle=idle)
    sink_seconds = time.monotonic() - started - idle.total_seconds()
    table = pa.concat_tables(
        [pq.read_table(f) for f in sorted((archive / "airport_1h").rglob("*.parquet"))]
    )
    started = time.monotonic()
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    pyarrow_rate = table.num_rows / (time.monotonic() - started)
    return stats.records / sink_seconds, pyarrow_rate


def backfill_rate(topology: Topology, events_file: Path, archive: Path, count: int) -> float:
    started = time.monotonic()
    backfill(topology, "flights", events_file, archive, SCHEMAS)
    return count / (time.monotonic() - started)


def join_rates(topology: Topology, events_file: Path, archive: Path) -> tuple[float, float, int]:
    """Labels/s of training_set and of a hand-written DuckDB ASOF join over the same archive."""
    events = pq.read_table(events_file).to_pandas()
    times = [local_ms_to_utc_ms(int(v), "America/New_York") for v in events["sched_dep_local"]]
    labels = pd.DataFrame(
        {
            "origin": events["origin"],
            "carrier": events["carrier"],
            "tailnum": events["tailnum"],
            "event_timestamp": pd.to_datetime(times, unit="ms", utc=True),
            "label": events["arr_delay"] > 15,
        }
    )
    labels = pd.concat([labels] * 3, ignore_index=True)
    started = time.monotonic()
    training_set(labels, topology, archive)
    ours = len(labels) / (time.monotonic() - started)
    started = time.monotonic()
    raw_asof(labels, topology, archive)
    raw = len(labels) / (time.monotonic() - started)
    return ours, raw, len(labels)


def raw_asof(labels: pd.DataFrame, topology: Topology, archive: Path) -> None:
    """The limit: per view, an ASOF join on the newest version of each record, no TTL, no checks."""
    connection = duckdb.connect()
    connection.register("labels", labels)
    for view in topology.feature_views:
        key = topology.entity(view.entity).join_keys[0]
        files = [str(p) for p in sorted((archive / view.name).rglob("*.parquet"))]
        connection.register("archive", connection.read_parquet(files))
        features = ", ".join(f'r."{f.name}"' for f in view.features)
        connection.sql(
            f"SELECT {features} FROM labels l ASOF LEFT JOIN ("
            f'SELECT * FROM archive QUALIFY row_number() OVER (PARTITION BY "{key}", event_ts '
            f'ORDER BY available_at DESC) = 1) r ON l."{key}" = r."{key}" '
            "AND l.event_timestamp >= r.event_ts"
        ).fetchall()
    connection.close()


def main() -> int:
    stack = LocalStack()
    started_stack = not all(service.running for service in stack.status())
    stack.up()
    topology = bench_topology()
    ensure_topics(stack.bootstrap_servers, worker_topics(topology))
    work = Path(tempfile.mkdtemp(prefix="streamfeat-bench-"))
    figures: list[Figure] = []
    try:
        count = produce_year(topology, stack.bootstrap_servers, work / "events.parquet")
        limit = limit_read_and_decode(topology, stack.bootstrap_servers, count)
        worker = worker_rate(topology, stack, work / "state")
        figures.append(
            Figure("worker, 3 views, full year", "events/s", worker, "read+decode limit", limit)
        )
        sink, pyarrow_alone = sink_rates(topology, stack.bootstrap_servers, work / "archive")
        figures.append(Figure("sink", "rows/s", sink, "pyarrow write alone", pyarrow_alone))
        backfill_per_s = backfill_rate(topology, work / "events.parquet", work / "backfill", count)
        figures.append(
            Figure("backfill, full year", "events/s", backfill_per_s, "target", 1_000_000)
        )
        ours, raw, labels = join_rates(topology, work / "events.parquet", work / "backfill")
        figures.append(
            Figure(f"training set, {labels:,} labels", "labels/s", ours, "raw DuckDB ASOF", raw)
        )
    finally:
        admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
        names = [s.name for s in worker_topics(topology)]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.exception()
        shutil.rmtree(work, ignore_errors=True)
        if started_stack:
            stack.down()
    print_table(figures)
    print(f"figures written to {write_json(figures, ROOT / 'bench' / 'results')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
