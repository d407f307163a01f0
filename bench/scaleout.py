"""Scale-out: two worker processes in one consumer group against one, on a 12-partition source.

Each run has a topology of its own: a fresh source topic, consumer group, repartition topics and
state folders. The workers start on the empty source topic. Once the group is stable with every
worker owning a share of the partitions, the year's first flights are produced at full speed,
already encoded. A run's rate is its events over the time from the first one produced until the
group has committed every message of the source and repartition topics.

The time the group takes to form is left out but reported. With eager rebalancing, the first
worker to join takes every partition and hands half of them over when the second joins. A
worker that is handed a partition has no state for it and reads it again from its beginning,
so input fed before the group settles would be processed partly twice.

The note also gives the feature records each run wrote. One worker merges all source partitions
in event-time order. Two workers each merge only their own, so an aggregator gets events from two
routers that move through event time at their own pace. Every event older than records already
written for its entity then makes the worker compute those records again and rewrite them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta

import pyarrow.parquet as pq

from bench.context import BenchContext, delete_topics
from bench.processes import (
    EncodedEvent,
    SourceProducer,
    bench_topology,
    delete_online_keys,
    encode_events,
    records_written,
    running_workers,
    wait_until_applied,
    wait_until_assigned,
    write_topology,
)
from bench.report import Figure
from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.models import Topology
from streamfeat.stream.topics import worker_topics

PARTITIONS = 12
"""Partitions of each source topic, so that two workers own six of every topic each."""

MAX_EVENTS = 25_000
"""Events produced at most (the year's first flights), which keeps the two runs near 3 minutes."""

RUN_TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class RunResult:
    """One run: events/s from the first event produced to all committed, and group set-up time."""

    events_per_s: float
    join_s: float
    records: int
    """Feature records the workers wrote, corrections of records written earlier included."""


def run(context: BenchContext) -> list[Figure]:
    table = pq.read_table(context.events_file)
    single = bench_topology("_scaleout1", partitions=PARTITIONS)
    double = bench_topology("_scaleout2", partitions=PARTITIONS)
    events = list(encode_events(single.sources[0], table.slice(0, MAX_EVENTS).to_pylist()))
    try:
        one = run_workers(context, single, 1, events)
        two = run_workers(context, double, 2, events)
    finally:
        for topology in (single, double):
            delete_topics(topology, context.bootstrap)
            delete_online_keys(context.stack.redis_url, topology)
    note = (
        f"{len(events):,} events, {PARTITIONS} source partitions, {os.cpu_count()} CPUs; "
        f"group formed in {one.join_s:.1f} s and {two.join_s:.1f} s (not counted); "
        f"records written {one.records:,} and {two.records:,}"
    )
    return [
        Figure(
            "scale-out, 2 workers",
            "events/s",
            two.events_per_s,
            "1 worker",
            one.events_per_s,
            note,
        )
    ]


def run_workers(
    context: BenchContext, topology: Topology, count: int, events: list[EncodedEvent]
) -> RunResult:
    """Start ``count`` workers, wait for the group, produce ``events``, wait until committed."""
    folder = context.scratch(f"scaleout-{count}")
    topology_file = write_topology(topology, folder)
    ensure_topics(context.bootstrap, worker_topics(topology))
    redis_url = context.stack.redis_url
    spawned = time.monotonic()
    with running_workers(topology_file, count, folder, redis_url, context.bootstrap) as workers:
        wait_until_assigned(context.bootstrap, topology, workers)
        started = time.monotonic()
        producer = SourceProducer(context.bootstrap, topology.sources[0].topic)
        for event in events:
            producer.send(event)
        producer.flush()
        finished = wait_until_applied(context.bootstrap, topology, workers, RUN_TIMEOUT)
    records = sum(records_written(worker) for worker in workers)
    return RunResult(len(events) / (finished - started), started - spawned, records)
