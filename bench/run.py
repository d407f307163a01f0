"""``make bench``: every benchmark on the 2013 flights in one run, with baselines alongside.

Each figure is compared with a baseline measured in the same run, so ratios hold on a noisy
machine. The run uses its own topology name and topics, and deletes them at the end.

    python -m bench.run                      every benchmark, full year
    python -m bench.run --only worker sink   some of them
    python -m bench.run --events 50000       the year's first 50,000 flights, for a quick check
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.context import (
    ROOT,
    BenchContext,
    delete_topics,
    feed,
    run_topology,
    write_events,
    year_events,
)
from bench.report import Figure, print_table, write_json
from streamfeat.devstack import LocalStack

BENCHMARKS = ("worker", "peers", "scaleout", "freshness", "memory", "sink", "backfill", "join")
"""Benchmark modules of ``bench``, in run order: the peers compare with the worker's rate."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--events", type=int, default=None, help="first N flights of the year")
    arguments = parser.parse_args(argv)

    stack = LocalStack()
    started_stack = not all(service.running for service in stack.status())
    stack.up()
    topology = run_topology()
    work = Path(tempfile.mkdtemp(prefix="streamfeat-bench-"))
    figures: list[Figure] = []
    try:
        events = year_events(arguments.events)
        context = BenchContext(
            stack=stack,
            topology=topology,
            work=work,
            events_file=write_events(events, work / "events.parquet"),
            events=feed(topology, stack.bootstrap_servers, events),
        )
        for name in (b for b in BENCHMARKS if b in arguments.only):
            benchmark: Callable[[BenchContext], list[Figure]] = importlib.import_module(
                f"bench.{name}"
            ).run
            figures.extend(benchmark(context))
    finally:
        delete_topics(topology, stack.bootstrap_servers)
        shutil.rmtree(work, ignore_errors=True)
        if started_stack:
            stack.down()
    print_table(figures)
    print(f"figures written to {write_json(figures, ROOT / 'bench' / 'results')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
