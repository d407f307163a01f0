"""Memory: peak RSS of a worker process holding 100,000 and 1,000,000 plane entities.

The worker runs a variant of the flights topology with the plane_7d view alone, so that the
entity count is the one thing that grows. The airport and carrier views would add three and
sixteen entities whose state grows with the events per hour instead. Each event is a flight
of the year (cycled) with a tailnum of its own, and all event times fall within one day, inside
the view's 7-day window, so every entity stays in the state until the end. The peak RSS
(VmHWM) is read once the group has committed every input message, while the worker still runs.

A run shorter than the full year scales both entity counts down by its share of the year.

NOTE: each entity costs one event through the worker, so the 1,000,000-entity run took 7.5
minutes on a loaded 2-core machine (2,200 events/s), past the 3 minutes a benchmark aims for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.context import BenchContext, delete_topics
from bench.processes import (
    SourceProducer,
    bench_topology,
    bench_view,
    delete_online_keys,
    encode_events,
    peak_rss_bytes,
    running_workers,
    wait_until_applied,
    wait_until_assigned,
    write_topology,
)
from bench.report import Figure
from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.models import Topology
from streamfeat.producer.flights import FLIGHTS_ROWS
from streamfeat.stream.aggregator import AggregatorTask
from streamfeat.stream.topics import worker_topics

ENTITIES = (100_000, 1_000_000)
"""Plane entities of the two runs over the full year."""

DAY_START = datetime(2013, 6, 1)
"""Local (New York) midnight of the day that contains every event time."""

FLIGHT_TEMPLATES = 10_000
"""Flights of the year whose fields the generated events cycle through."""

MIB = 1024 * 1024
RUN_TIMEOUT = timedelta(minutes=20)


@dataclass(frozen=True)
class MemoryResult:
    """One run: the worker's RSS peak before any input and at the end, its time, its state size."""

    entities: int
    start_rss_bytes: int
    peak_rss_bytes: int
    seconds: float
    state_bytes: int
    write_buffers: str
    """RocksDB's memtable settings as the state folders' OPTIONS files record them."""


def run(context: BenchContext) -> list[Figure]:
    scale = min(1.0, context.events / FLIGHTS_ROWS)
    small, large = (max(1_000, round(count * scale)) for count in ENTITIES)
    flights = pq.read_table(context.events_file).slice(0, FLIGHT_TEMPLATES).to_pylist()
    low = measure(context, flights, small, spread=large)
    high = measure(context, flights, large, spread=large)
    cache = AggregatorTask.cache_size
    note = (
        f"{high.entities / low.entities:.0f}x entities; RSS at start {_mib(low.start_rss_bytes)} "
        f"MiB; RocksDB on disk {_mib(low.state_bytes)} and {_mib(high.state_bytes)} MiB; "
        f"applied in {low.seconds:.0f} s and {high.seconds:.0f} s; entity cache "
        f"{cache:,} states per partition; {high.write_buffers}"
    )
    return [
        Figure(
            f"worker peak RSS, {large:,} entities",
            "MiB",
            high.peak_rss_bytes / MIB,
            f"{small:,} entities",
            low.peak_rss_bytes / MIB,
            note,
        )
    ]


def measure(
    context: BenchContext, flights: list[dict[str, Any]], entities: int, *, spread: int
) -> MemoryResult:
    """Feed one event for each of ``entities`` planes to one worker; read its RSS at the end.

    Events are encoded while they are produced, which overlaps with the worker's processing.
    """
    topology = plane_topology(f"_memory{entities}")
    folder = context.scratch(f"memory-{entities}")
    topology_file = write_topology(topology, folder)
    redis_url = context.stack.redis_url
    try:
        ensure_topics(context.bootstrap, worker_topics(topology))
        with running_workers(topology_file, 1, folder, redis_url, context.bootstrap) as workers:
            wait_until_assigned(context.bootstrap, topology, workers)
            start_rss = peak_rss_bytes(workers[0].pid)
            started = time.monotonic()
            producer = SourceProducer(context.bootstrap, topology.sources[0].topic)
            for event in encode_events(
                topology.sources[0], plane_events(flights, entities, spread)
            ):
                producer.send(event)
            producer.flush()
            finished = wait_until_applied(context.bootstrap, topology, workers, RUN_TIMEOUT)
            peak_rss = peak_rss_bytes(workers[0].pid)
        state = _folder_bytes(folder / "state-0")
        buffers = write_buffers(folder / "state-0")
    finally:
        delete_topics(topology, context.bootstrap)
        delete_online_keys(redis_url, topology)
    return MemoryResult(entities, start_rss, peak_rss, finished - started, state, buffers)


def plane_topology(suffix: str) -> Topology:
    """Return the run's flights topology with the plane_7d view alone."""
    topology = bench_topology(suffix)
    view = bench_view(topology, "plane_7d")
    entities = tuple(e for e in topology.entities if e.name == view.entity)
    return topology.model_copy(update={"feature_views": (view,), "entities": entities})


def plane_events(
    flights: list[dict[str, Any]], count: int, spread: int
) -> Iterator[dict[str, Any]]:
    """Yield ``count`` flights, each with a tailnum of its own, ``1 / spread`` of a day apart.

    Runs with the same ``spread`` share their first events, and none goes past the day.
    """
    day_start_ms = int(DAY_START.replace(tzinfo=UTC).timestamp() * 1000)
    spacing_ms = 86_400_000 // spread
    for index in range(count):
        yield {
            **flights[index % len(flights)],
            "flight_id": f"memory-{index}",
            "tailnum": f"M{index:07d}",
            "sched_dep_local": day_start_ms + index * spacing_ms,
        }


def write_buffers(state: Path) -> str:
    """Describe the memtables of the RocksDB databases under ``state``: count, size, number."""
    # The worker keeps one database per input partition in <state dir>/<topology name>/.
    options = sorted(state.glob("*/*/OPTIONS-*"))
    if not options:
        return "no RocksDB OPTIONS file found"
    databases = len({path.parent for path in options})
    settings = dict(
        line.strip().split("=", 1)
        for line in options[-1].read_text().splitlines()
        if line.strip().startswith(("write_buffer_size=", "max_write_buffer_number="))
    )
    size_mib = int(settings["write_buffer_size"]) // MIB
    number = settings["max_write_buffer_number"]
    return f"{databases} RocksDB databases, each with up to {number} memtables of {size_mib} MiB"


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _mib(size: int) -> str:
    return f"{size / MIB:,.0f}"
