"""Backfill throughput on the year's flights, against the 1M events/s target and pyarrow alone.

The baseline is the input and output no backfill can skip, measured in the same run: pyarrow
reading the same events file and writing the tables of the backfill's archive again, file for
file (without fsync), with no checks and no aggregation in between.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq

from bench.context import SCHEMAS, BenchContext
from bench.report import Figure
from streamfeat.offline.backfill import backfill

TARGET_EVENTS_PER_S = 1_000_000
FULL_YEAR_EVENTS = 336_776


def run(context: BenchContext) -> list[Figure]:
    archive = context.scratch("backfill-archive")
    started = time.monotonic()
    stats = backfill(context.topology, "flights", context.events_file, archive, SCHEMAS)
    rate = stats.events / (time.monotonic() - started)
    floor_seconds = pyarrow_seconds(context.events_file, archive, context.scratch("backfill-io"))
    name = (
        "backfill, full year"
        if stats.events == FULL_YEAR_EVENTS
        else f"backfill, {stats.events:,} events"
    )
    return [
        Figure(name, "events/s", rate, "target", TARGET_EVENTS_PER_S),
        Figure(name, "events/s", rate, "pyarrow read + same files", stats.events / floor_seconds),
    ]


def pyarrow_seconds(events_file: Path, archive: Path, scratch: Path) -> float:
    """Seconds ``pq`` takes to read ``events_file`` and write the archive's tables again."""
    tables = [
        (path.relative_to(archive), pq.read_table(path)) for path in archive.rglob("*.parquet")
    ]
    started = time.monotonic()
    pq.read_table(events_file)
    for relative, table in tables:
        (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, scratch / relative)
    return time.monotonic() - started
