"""Sink throughput: rows per second archived from the feature log, against pyarrow alone."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from bench.context import SCHEMAS, BenchContext
from bench.report import Figure
from streamfeat.sink import ArchiveSink, load_source_types


def run(context: BenchContext) -> list[Figure]:
    """Archive the feature log the worker benchmark wrote; needs that benchmark to run first."""
    archive = context.scratch("sink-archive")
    idle = timedelta(seconds=3)
    sink = ArchiveSink(
        context.topology,
        archive,
        bootstrap_servers=context.bootstrap,
        source_types=load_source_types(context.topology, SCHEMAS),
    )
    started = time.monotonic()
    stats = sink.run(until_idle=idle)
    sink_seconds = time.monotonic() - started - idle.total_seconds()
    table = pa.concat_tables(
        [pq.read_table(f) for f in sorted((archive / "airport_1h").rglob("*.parquet"))]
    )
    started = time.monotonic()
    pq.write_table(table, io.BytesIO())
    pyarrow_rate = table.num_rows / (time.monotonic() - started)
    return [
        Figure("sink", "rows/s", stats.records / sink_seconds, "pyarrow write alone", pyarrow_rate)
    ]
