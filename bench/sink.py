"""Sink throughput: rows per second archived from a feature log, against pyarrow alone.

The benchmark needs no other one: it writes a feature log of its own, shaped like the worker's
output for the flights views over 2013, to a compacted topic named after the run's topology.
The sink then archives that topic until idle. The baseline is pyarrow writing the very tables
the sink wrote, as the same files, measured in the same run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench.context import SCHEMAS, BenchContext
from bench.report import Figure
from streamfeat.admin.topics import TopicSpec, ensure_topics
from streamfeat.definitions.models import Topology
from streamfeat.featurelog.codec import encode_record, record_key
from streamfeat.featurelog.record import FeatureRecord, FeatureValue
from streamfeat.sink import ArchiveSink, load_source_types
from streamfeat.sink.runner import sink_group
from streamfeat.stream.topics import COMPACTED_CONFIG

FULL_RECORDS = 2_000_000
"""Feature records of a full run, about twice the 1.1M the worker writes for the year's flights."""

FULL_YEAR_EVENTS = 336_776
"""Flights of 2013; a run on fewer events (``--events``) writes proportionally fewer records."""

TARGET_ROWS_PER_S = 500_000
LOG_PARTITIONS = 4
IDLE = timedelta(seconds=3)

_YEAR_START_MS = int(datetime(2013, 1, 1, tzinfo=UTC).timestamp() * 1000)
_YEAR_MS = 365 * 86_400_000
_AIRPORTS = ("EWR", "JFK", "LGA")
_CARRIERS = ("9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX")
_PLANES = tuple(f"N{number}" for number in range(10_000, 14_000))


def run(context: BenchContext) -> list[Figure]:
    records = max(1_000, FULL_RECORDS * min(context.events, FULL_YEAR_EVENTS) // FULL_YEAR_EVENTS)
    topology = context.topology.model_copy(
        update={"feature_log_topic": f"streamfeat.{context.topology.name}.sink-bench.feature-log"}
    )
    ensure_topics(
        context.bootstrap, [TopicSpec(topology.feature_log, LOG_PARTITIONS, COMPACTED_CONFIG)]
    )
    archive = context.scratch("sink-archive")
    try:
        produce_log(topology, context.bootstrap, flights_records(records))
        sink_rate = sink_rows_per_s(topology, context.bootstrap, archive, records)
        pyarrow_rate = pyarrow_rows_per_s(archive, context.scratch("sink-pyarrow"))
    finally:
        delete_log(context.bootstrap, topology, archive)
    name = f"sink, {records:,} records"
    return [
        Figure(name, "rows/s", sink_rate, "pyarrow, same files", pyarrow_rate),
        Figure(name, "rows/s", sink_rate, "target", TARGET_ROWS_PER_S),
    ]


def flights_records(count: int, seed: int = 2013) -> Iterator[FeatureRecord]:
    """Yield ``count`` records in event-time order from 2013-01-01, like the flights views'.

    A full run spans the year. A smaller one spans proportionally fewer days, so that each
    archive file gets as many rows as in a full run: the sink's cost depends on both.

    The mix follows the worker's output for the year: about a quarter each of ``airport_1h``
    and ``carrier_24h`` records and half of ``plane_7d``, with nulls where a delay is missing.
    """
    rng = random.Random(seed)
    step_ms = _YEAR_MS / FULL_RECORDS
    for position in range(count):
        event_ts_ms = _YEAR_START_MS + int(position * step_ms)
        latest_ms = event_ts_ms - rng.choice((0, 0, 0, 300_000))
        available_at_ms = event_ts_ms + 1_000 + rng.randrange(1_000)
        share = rng.random()
        delay = None if rng.random() < 0.03 else round(rng.gauss(12.0, 40.0), 2)
        entity: tuple[str, ...]
        values: dict[str, FeatureValue]
        if share < 0.23:
            view, entity = "airport_1h", (rng.choice(_AIRPORTS),)
            values = {"departures": rng.randrange(1, 90), "mean_dep_delay": delay}
        elif share < 0.48:
            view, entity = "carrier_24h", (rng.choice(_CARRIERS),)
            values = {"mean_arr_delay": delay, "cancelled": float(rng.randrange(4))}
        else:
            view, entity = "plane_7d", (rng.choice(_PLANES),)
            values = {"flights": rng.randrange(1, 30), "max_dep_delay": delay}
        yield FeatureRecord(view, 1, entity, event_ts_ms, latest_ms, values, available_at_ms)


def produce_log(topology: Topology, bootstrap: str, records: Iterator[FeatureRecord]) -> None:
    """Produce ``records`` to the feature log with the worker's producer settings."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
        }
    )
    for record in records:
        value, key = encode_record(record), record_key(record)
        while True:
            try:
                producer.produce(topology.feature_log, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60) != 0:
        raise RuntimeError(f"feature records to {topology.feature_log} not delivered within 60 s")


def sink_rows_per_s(topology: Topology, bootstrap: str, archive: Path, records: int) -> float:
    """Rows/s of one sink run over the whole log, the final idle wait left out."""
    sink = ArchiveSink(
        topology,
        archive,
        bootstrap_servers=bootstrap,
        source_types=load_source_types(topology, SCHEMAS),
    )
    started = time.monotonic()
    stats = sink.run(until_idle=IDLE)
    seconds = time.monotonic() - started - IDLE.total_seconds()
    if stats.records != records:
        raise RuntimeError(f"the sink archived {stats.records} of {records} records")
    return stats.records / seconds


def pyarrow_rows_per_s(archive: Path, scratch: Path) -> float:
    """Rows/s of ``pq.write_table`` writing the archive's tables again, file for file."""
    tables = [
        (path.relative_to(archive), pq.read_table(path)) for path in archive.rglob("*.parquet")
    ]
    for relative, _ in tables:
        (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for relative, table in tables:
        pq.write_table(table, scratch / relative)
    seconds = time.monotonic() - started
    rows: int = sum(table.num_rows for _, table in tables)
    return rows / seconds


def delete_log(bootstrap: str, topology: Topology, archive: Path) -> None:
    """Delete the benchmark's feature-log topic and the sink's consumer group."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topology.feature_log], operation_timeout=30).values():
        future.exception()
    groups = [sink_group(topology, archive)]
    for future in admin.delete_consumer_groups(groups, request_timeout=30).values():
        future.exception()
