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
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from bench.context import TOPOLOGY, BenchContext
from bench.join_data import labels as make_labels
from bench.join_data import write_archive
from bench.join_feast import OFFLINE_STORE, FeastRun, feast_join, feast_version
from bench.report import Figure, print_table
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Function, Topology
from streamfeat.offline.training_set import training_set

FULL_ROWS = 10_000_000
FULL_LABELS = 1_000_000
YEAR_FLIGHTS = 336_776
"""Flights in the 2013 data; a run on fewer (``--events``) scales both sizes down alike."""
REPEATS = 3
"""Timed runs of each join; the fastest counts, as the machine is shared."""
FEAST_DAYS = 1
"""Event dates of the archive that Feast runs on: the first ones, as the same Parquet files."""
FEAST_LABEL_SHARES = (0.25, 0.5, 1.0)
"""Shares of those dates' labels that Feast joins, smallest first.

Feast's dask store merges each label row with every record of its entity before it filters, so
its work grows with labels x records per entity. On the full sizes that merge has about 10^12
rows (counted from the entities' frequencies). On 100 labels and 10M records, Feast 0.67.0 ran
past 15 minutes on a shared 2-core machine. So it runs on a slice
of the year, where entities have as many records per hour as in the full archive, with
growing label counts, and a linear fit on merged rows estimates the full size.
"""
FEAST_TIMEOUT_S = 300.0
_INTEGER_FUNCTIONS = (Function.COUNT, Function.DISTINCT_COUNT)


@dataclass(frozen=True)
class FeastPoint:
    """Feast and training_set on one reduced archive and label set."""

    rows: int
    labels: int
    pairs: int
    """Rows of Feast's merge: per view, label rows times records of the same entity."""
    feast: FeastRun
    ours_s: float


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
    known = best_seconds(lambda: training_set(labels, topology, archive, as_known_then=True))
    print(f"join: training_set {ours:.2f} s, as known then {known:.2f} s, raw ASOF {raw:.2f} s")
    name = f"join {_short(len(labels))} x {_short(size.rows)}"
    raw_rate = len(labels) / raw
    figures = [
        Figure(
            name,
            "labels/s",
            len(labels) / ours,
            "raw DuckDB ASOF",
            raw_rate,
            f"training_set {ours:.2f} s, raw DuckDB ASOF {raw:.2f} s",
        ),
        Figure(
            f"{name}, as known then",
            "labels/s",
            len(labels) / known,
            "raw DuckDB ASOF",
            raw_rate,
            f"training_set(as_known_then=True) {known:.2f} s, raw DuckDB ASOF {raw:.2f} s",
        ),
    ]
    points = feast_points(topology, folder, archive, labels)
    keys = record_keys(topology, archive)
    full_pairs = merge_pairs(labels_with_records(labels, keys), keys)
    return figures + feast_figures(name, len(labels), ours, points, full_pairs)


def feast_points(
    topology: Topology, folder: Path, archive: Path, labels: pd.DataFrame
) -> list[FeastPoint]:
    """Time Feast and training_set on the first ``FEAST_DAYS`` of the archive and labels.

    Stops at the first Feast run that fails, as a larger one would fail too.
    """
    sliced, end = archive_slice(archive, folder / "feast-archive", FEAST_DAYS)
    keys = record_keys(topology, sliced)
    day_labels = labels_with_records(labels[labels["event_timestamp"] < end], keys)
    records = sum(int(counts.sum()) for counts in keys.values())
    points = []
    for share in FEAST_LABEL_SHARES:
        subset = day_labels.head(int(len(day_labels) * share))
        labels_file = folder / f"feast-labels-{len(subset)}.parquet"
        subset.to_parquet(labels_file)
        run = feast_join(feast_views(topology), sliced, labels_file, FEAST_TIMEOUT_S)
        ours = best_seconds(lambda: training_set(subset, topology, sliced))  # noqa: B023
        point = FeastPoint(records, len(subset), merge_pairs(subset, keys), run, ours)
        print(f"join: {point.labels:,} labels x {records:,} records: {_feast_text(point)}")
        points.append(point)
        if run.failure is not None:
            break
    return points


def archive_slice(archive: Path, target: Path, days: int) -> tuple[Path, pd.Timestamp]:
    """Link the files of the archive's first ``days`` event dates into ``target``.

    Returns ``target`` and the end of the slice, midnight UTC after its last date.
    """
    dates = sorted({folder.name for folder in archive.glob("*/event_date=*")})[:days]
    for folder in archive.glob("*/event_date=*"):
        if folder.name in dates:
            linked = target / folder.parent.name / folder.name
            linked.mkdir(parents=True)
            for file in folder.iterdir():
                os.link(file, linked / file.name)
    end = pd.Timestamp(dates[-1].removeprefix("event_date="), tz="UTC") + pd.Timedelta(days=1)
    return target, end


def feast_figures(
    name: str, label_count: int, ours_s: float, points: list[FeastPoint], full_pairs: int
) -> list[Figure]:
    """Compare with Feast where it was measured, and at full size by a linear fit on pairs."""
    peer = f"Feast {feast_version()} {OFFLINE_STORE}"
    finished = [(p, p.feast.seconds) for p in points if p.feast.seconds is not None]
    figures = []
    if finished:
        largest, feast_s = finished[-1]
        figures.append(
            Figure(
                f"join {_short(largest.labels)} x {_short(largest.rows)}",
                "labels/s",
                largest.labels / largest.ours_s,
                peer,
                largest.labels / feast_s,
                f"measured: {_feast_text(largest)}, training_set {largest.ours_s:.3f} s",
            )
        )
    if len(finished) >= 2:
        pairs = [float(p.pairs) for p, _ in finished]
        slope, intercept = np.polyfit(pairs, [s for _, s in finished], 1)
        if slope <= 0:
            print("join: Feast's time did not grow with its merge here, so no estimate")
            return figures
        estimate_s = intercept + slope * full_pairs
        note = (
            f"extrapolated: seconds = {intercept:.2f} + {slope:.3g} x merged rows, fit on "
            f"{len(finished)} runs; {full_pairs:.3g} merged rows at full size give "
            f"{estimate_s:,.0f} s, and Feast keeps them in memory, at least "
            f"{full_pairs * 8 / 1024**4:,.0f} TiB at 8 bytes a row; training_set {ours_s:.2f} s"
        )
        print(f"join: Feast {note}")
        figures.append(
            Figure(
                name,
                "labels/s",
                label_count / ours_s,
                f"{peer}, estimate",
                label_count / estimate_s,
                note,
            )
        )
    return figures


def record_keys(topology: Topology, archive: Path) -> dict[str, pd.Series]:
    """Return, per view, how many records (all versions) each entity key has."""
    counts = {}
    for view in topology.feature_views:
        key = topology.entity(view.entity).join_keys[0]
        table = ds.dataset(archive / view.name, format="parquet").to_table(columns=[key])
        counts[view.name] = table.column(key).to_pandas().value_counts()
    return counts


def labels_with_records(labels: pd.DataFrame, keys: dict[str, pd.Series]) -> pd.DataFrame:
    """Keep the label rows whose entity has records in every view, as Feast needs."""
    keep = np.ones(len(labels), bool)
    for counts in keys.values():
        column = labels[str(counts.index.name)]
        keep &= column.isin(counts.index).to_numpy()
    return labels[keep].reset_index(drop=True)


def merge_pairs(labels: pd.DataFrame, keys: dict[str, pd.Series]) -> int:
    """Count the rows of Feast's merge: per view, label rows times records of their entity."""
    total = 0
    for counts in keys.values():
        per_label = labels[str(counts.index.name)].map(counts).fillna(0)
        total += int(per_label.sum())
    return total


def feast_views(topology: Topology) -> list[dict[str, Any]]:
    """Describe each view for the Feast script: key, TTL in seconds (0 for none), features."""
    return [
        {
            "name": view.name,
            "entity": view.entity,
            "key": topology.entity(view.entity).join_keys[0],
            "ttl_s": 0 if view.ttl_ms is None else view.ttl_ms / 1000,
            "features": {
                f.name: "int64" if f.function in _INTEGER_FUNCTIONS else "float64"
                for f in view.features
            },
        }
        for view in topology.feature_views
    ]


def _feast_text(point: FeastPoint) -> str:
    run = point.feast
    if run.seconds is None:
        return f"{run.failure}"
    memory_gib = (run.max_rss_bytes or 0) / 1024**3
    return (
        f"Feast {run.seconds:.1f} s, {run.rows:,} rows out, {memory_gib:.1f} GiB peak, "
        f"{point.pairs:,} merged rows"
    )


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
