"""Point-in-time join: training_set on 1M labels and a 10M-row archive, against two baselines.

The archive and the labels are synthetic but shaped like the flights views (see
``bench.join_data``). The baselines, measured in the same run on the same Parquet files:

- the limit, a hand-written DuckDB ASOF join per view on the newest version of each record,
  with no TTL, no label order and no checks;
- the peer, Feast's ``get_historical_features`` with its default offline store (see
  ``bench.join_feast``), which runs in a virtual environment of its own.

    python -m bench.join                          full size, as make bench runs it
    python -m bench.join --rows 1000000 --labels 100000   a quick check
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from bench.context import TOPOLOGY, BenchContext
from bench.join_data import labels as make_labels
from bench.join_data import write_archive
from bench.report import Figure, print_table
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.offline.training_set import training_set

FULL_ROWS = 10_000_000
FULL_LABELS = 1_000_000
YEAR_FLIGHTS = 336_776
"""Flights in the 2013 data; a run on fewer (``--events``) scales both sizes down alike."""
REPEATS = 3
"""Timed runs of each join; the fastest counts, as the machine is shared."""


def run(context: BenchContext) -> list[Figure]:
    scale = min(1.0, context.events / YEAR_FLIGHTS)
    rows, label_count = int(FULL_ROWS * scale), int(FULL_LABELS * scale)
    return measure(context.topology, context.scratch("join"), rows, label_count)


def measure(topology: Topology, folder: Path, rows: int, label_count: int) -> list[Figure]:
    """Write the archive and labels into ``folder``, then time each join on them."""
    archive = folder / "archive"
    started = time.monotonic()
    size = write_archive(topology, archive, rows)
    labels = make_labels(label_count)
    print(
        f"join: wrote {size.rows:,} records ({size.events:,} flights) and "
        f"{len(labels):,} labels in {time.monotonic() - started:.1f} s"
    )
    ours = best_seconds(lambda: training_set(labels, topology, archive))
    raw = best_seconds(lambda: raw_asof(labels, topology, archive))
    print(f"join: training_set {ours:.2f} s, raw ASOF {raw:.2f} s")
    name = f"join {_short(len(labels))} labels x {_short(size.rows)}"
    note = f"training_set {ours:.2f} s, raw DuckDB ASOF {raw:.2f} s"
    return [
        Figure(name, "labels/s", len(labels) / ours, "raw DuckDB ASOF", len(labels) / raw, note)
    ]


def best_seconds(join: Callable[[], object]) -> float:
    """Return the fastest of ``REPEATS`` timed calls of ``join``."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        join()
        times.append(time.perf_counter() - started)
    return min(times)


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
        ).to_arrow_table()
    connection.close()


def _short(count: int) -> str:
    """Return a count to three digits, as 10M, 250k or 900."""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.3g}M"
    if count >= 1_000:
        return f"{count / 1_000:.3g}k"
    return str(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.join", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help="archive records (all views)")
    parser.add_argument("--labels", type=int, default=FULL_LABELS, help="label rows")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamfeat-bench-join-") as folder:
        figures = measure(load_topology(TOPOLOGY), Path(folder), arguments.rows, arguments.labels)
    print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
