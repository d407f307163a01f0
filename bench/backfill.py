"""Backfill throughput on the year's flights, against the 1M events/s target."""

from __future__ import annotations

import time

from bench.context import SCHEMAS, BenchContext
from bench.report import Figure
from streamfeat.offline.backfill import backfill

TARGET_EVENTS_PER_S = 1_000_000


def run(context: BenchContext) -> list[Figure]:
    archive = context.scratch("backfill-archive")
    started = time.monotonic()
    backfill(context.topology, "flights", context.events_file, archive, SCHEMAS)
    rate = context.events / (time.monotonic() - started)
    return [Figure("backfill, full year", "events/s", rate, "target", TARGET_EVENTS_PER_S)]
