"""Freshness: time from producing an event to its value being readable in Redis, at fixed rates.

Each rate gets a fresh topology and one worker process. A paced producer replays the flights in
event-time order. Past the data's end the replay starts again, with times shifted past it and
new flight ids. Every ``rate / PROBES_PER_S``-th event is a probe whose tailnum is replaced with
a unique one, so its plane_7d key appears in Redis when the worker writes that event's values
(the worker writes all views of a batch in one pipeline). The loop that sends remembers each
probe's send time and reads the outstanding probe keys with one pipelined EXISTS every
POLL_INTERVAL_S.

A probe's latency runs from just before ``produce`` to the reply of the first poll that finds
its key. It includes the producer's linger (PRODUCER_LINGER_MS) and the broker, and exceeds the
true time by at most the gap between two polls, which the note reports. Probes sent during the
first WARMUP_S seconds are left out. Probes still missing DRAIN_TIMEOUT after the last send count
as slower than every one seen, and a percentile that falls on them is reported as DRAIN_TIMEOUT,
a lower bound.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow.parquet as pq
import redis

from bench.context import BenchContext, delete_topics
from bench.processes import (
    EncodedEvent,
    SourceProducer,
    bench_topology,
    bench_view,
    delete_online_keys,
    encode_events,
    running_workers,
    wait_until_assigned,
    write_topology,
)
from bench.report import Figure
from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.models import Topology
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.producer.flights import FLIGHTS_ROWS
from streamfeat.stream.topics import worker_topics

RATES = (1_000, 5_000, 20_000)
"""Events per second produced, one run each."""

SEND_SECONDS = 15.0
"""How long each rate is produced in a run over the full year; shorter runs scale it down."""

MIN_SEND_SECONDS = 6.0
WARMUP_S = 2.0
"""Probes sent this long after the start are left out while the worker's first batches run."""

PROBES_PER_S = 100
POLL_INTERVAL_S = 0.001
DRAIN_TIMEOUT = timedelta(seconds=10)
PROBE_VIEW = "plane_7d"

TARGET_P99_MS = 50.0
"""Target p99 at TARGET_RATE events/s."""

TARGET_RATE = 5_000
PRODUCER_LINGER_MS = 5
"""How long the producer waits to fill a batch, a setting for live data (replays use 20 ms)."""

_DAY_MS = 86_400_000


@dataclass
class RateResult:
    """Probe latencies of one rate, in seconds, and what bounds their precision."""

    rate: int
    sent_rate: float
    latencies_s: list[float] = field(default_factory=list)
    missing: int = 0
    poll_gaps_s: list[float] = field(default_factory=list)

    def percentile_ms(self, fraction: float) -> float | None:
        """Return the latency ``fraction`` of the probes beat, or None if that one is missing."""
        ordered = sorted(self.latencies_s)
        rank = math.ceil(fraction * (len(ordered) + self.missing)) - 1
        return None if rank >= len(ordered) else ordered[max(rank, 0)] * 1000


def run(context: BenchContext) -> list[Figure]:
    events = pq.read_table(context.events_file).to_pylist()
    seconds = max(MIN_SEND_SECONDS, SEND_SECONDS * min(1.0, context.events / FLIGHTS_ROWS))
    figures = []
    for rate in RATES:
        result = measure_rate(context, rate, events, seconds)
        figures.extend(rate_figures(result, seconds))
    return figures


def measure_rate(
    context: BenchContext, rate: int, events: list[dict[str, Any]], seconds: float
) -> RateResult:
    """Run one worker on a fresh topology and produce ``rate`` events/s for ``seconds``."""
    topology = bench_topology(f"_fresh{rate}")
    folder = context.scratch(f"freshness-{rate}")
    topology_file = write_topology(topology, folder)
    client = redis.Redis.from_url(context.stack.redis_url)
    store = RedisOnlineStore(client, topology)
    probes, encoded = probe_stream(
        store, topology, events, int(rate * seconds), rate // PROBES_PER_S
    )
    try:
        ensure_topics(context.bootstrap, worker_topics(topology))
        with running_workers(
            topology_file, 1, folder, context.stack.redis_url, context.bootstrap
        ) as workers:
            wait_until_assigned(context.bootstrap, topology, workers)
            producer = SourceProducer(
                context.bootstrap, topology.sources[0].topic, linger_ms=PRODUCER_LINGER_MS
            )
            return paced_run(producer, client, encoded, probes, rate)
    finally:
        client.close()
        delete_topics(topology, context.bootstrap)
        delete_online_keys(context.stack.redis_url, topology)


def probe_stream(
    store: RedisOnlineStore,
    topology: Topology,
    events: list[dict[str, Any]],
    count: int,
    every: int,
) -> tuple[dict[int, str], list[EncodedEvent]]:
    """Return ``count`` encoded events and, by index, the Redis key of each probe among them."""
    view = bench_view(topology, PROBE_VIEW).name
    replay = replayed(events, count)
    probes: dict[int, str] = {}
    for index in range(0, count, every):
        tailnum = f"PROBE{index}"
        replay[index] = {**replay[index], "tailnum": tailnum}
        probes[index] = store.key(view, (tailnum,))
    return probes, list(encode_events(topology.sources[0], replay))


def replayed(events: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Return ``count`` events: ``events`` repeated, each repeat later by the data's span."""
    first, last = events[0]["sched_dep_local"], events[-1]["sched_dep_local"]
    span_ms = (int(last) - int(first)) // _DAY_MS * _DAY_MS + _DAY_MS
    result = []
    for index in range(count):
        repeat, position = divmod(index, len(events))
        event = events[position]
        if repeat:
            event = {
                **event,
                "flight_id": f"{event['flight_id']}#{repeat}",
                "sched_dep_local": int(event["sched_dep_local"]) + repeat * span_ms,
            }
        result.append(event)
    return result


def paced_run(
    producer: SourceProducer,
    client: redis.Redis,
    events: list[EncodedEvent],
    probes: dict[int, str],
    rate: int,
) -> RateResult:
    """Send ``events`` at ``rate`` per second while polling Redis for the probes' keys."""
    pending: dict[str, float] = {}
    result = RateResult(rate, 0.0)
    started = time.perf_counter()
    sent = 0
    next_poll = started
    last_poll: float | None = None

    while sent < len(events):
        now = time.perf_counter()
        due = min(len(events), int((now - started) * rate) + 1)
        while sent < due:
            key = probes.get(sent)
            if key is not None and now - started >= WARMUP_S:
                pending[key] = time.perf_counter()
            producer.send(events[sent])
            sent += 1
        if now >= next_poll:
            polled = poll(client, pending, result)
            if last_poll is not None:
                result.poll_gaps_s.append(polled - last_poll)
            last_poll, next_poll = polled, polled + POLL_INTERVAL_S
        time.sleep(max(0.0, min(next_poll, started + sent / rate) - time.perf_counter()))
    result.sent_rate = sent / (time.perf_counter() - started)
    producer.flush()

    deadline = time.perf_counter() + DRAIN_TIMEOUT.total_seconds()
    while pending and time.perf_counter() < deadline:
        poll(client, pending, result)
        time.sleep(POLL_INTERVAL_S)
    result.missing = len(pending)
    return result


def poll(client: redis.Redis, pending: dict[str, float], result: RateResult) -> float:
    """Check the pending probe keys in one round trip; move those found into ``result``."""
    if not pending:
        return time.perf_counter()
    keys = list(pending)
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.exists(key)
    found = pipeline.execute()
    replied = time.perf_counter()
    for key, exists in zip(keys, found, strict=True):
        if exists:
            result.latencies_s.append(replied - pending.pop(key))
    return replied


def rate_figures(result: RateResult, seconds: float) -> list[Figure]:
    """Return the p50 and p99 of one rate, and compare the p99 at TARGET_RATE with its target."""
    probes = len(result.latencies_s) + result.missing
    gaps = sorted(result.poll_gaps_s) or [0.0]
    note = (
        f"{probes} probes over {seconds:.0f} s, sent at {result.sent_rate:,.0f}/s; poll gap "
        f"p50 {statistics.median(gaps) * 1000:.1f} ms, max {gaps[-1] * 1000:.0f} ms"
    )
    if result.missing:
        note += f"; {result.missing} not visible {DRAIN_TIMEOUT.total_seconds():g} s after the end"
    figures = []
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        value = result.percentile_ms(fraction)
        label = f"freshness {name}, {result.rate // 1000}k/s"
        if value is None:
            value = DRAIN_TIMEOUT.total_seconds() * 1000
            label += " (lower bound)"
        target = name == "p99" and result.rate == TARGET_RATE
        figures.append(
            Figure(
                label,
                "ms",
                value,
                "target" if target else None,
                TARGET_P99_MS if target else None,
                note,
            )
        )
    return figures
