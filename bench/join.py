"""Point-in-time join: training_set against a hand-written DuckDB ASOF join on the same archive."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from bench.context import SCHEMAS, BenchContext
from bench.report import Figure
from streamfeat.definitions.models import Topology
from streamfeat.offline.backfill import backfill
from streamfeat.offline.training_set import training_set
from streamfeat.serialization.times import local_ms_to_utc_ms


def run(context: BenchContext) -> list[Figure]:
    archive = context.scratch("join-archive")
    backfill(context.topology, "flights", context.events_file, archive, SCHEMAS)
    labels = flight_labels(context.events_file, copies=3)
    started = time.monotonic()
    training_set(labels, context.topology, archive)
    ours = len(labels) / (time.monotonic() - started)
    started = time.monotonic()
    raw_asof(labels, context.topology, archive)
    raw = len(labels) / (time.monotonic() - started)
    name = f"training set, {len(labels):,} labels"
    return [Figure(name, "labels/s", ours, "raw DuckDB ASOF", raw)]


def flight_labels(events_file: Path, copies: int) -> pd.DataFrame:
    """Return one label per flight at its scheduled departure, repeated ``copies`` times."""
    events = pq.read_table(events_file).to_pandas()
    times = [local_ms_to_utc_ms(int(v), "America/New_York") for v in events["sched_dep_local"]]
    labels = pd.DataFrame(
        {
            "origin": events["origin"],
            "carrier": events["carrier"],
            "tailnum": events["tailnum"],
            "event_timestamp": pd.to_datetime(times, unit="ms", utc=True),
            "label": events["arr_delay"] > 15,
        }
    )
    return pd.concat([labels] * copies, ignore_index=True)


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
        ).fetchall()
    connection.close()
