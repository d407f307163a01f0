"""Topology and record factories shared by the sink and archive tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from streamfeat.definitions.models import Topology
from streamfeat.featurelog.record import FeatureRecord, FeatureValue

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def make_topology(name: str = "sink_tests", feature_log_topic: str | None = None) -> Topology:
    """Build a per-plane view of the flights source and a route view with two join keys."""
    return Topology.model_validate(
        {
            "name": name,
            "schemas_dir": str(SCHEMAS_DIR),
            "feature_log_topic": feature_log_topic,
            "entities": [
                {"name": "plane", "join_keys": ["tailnum"]},
                {"name": "route", "join_keys": ["origin", "dest"]},
            ],
            "sources": [
                {
                    "name": "flights",
                    "topic": "flights",
                    "schema": "flight.avsc",
                    "event_time": {"field": "sched_dep_local", "zone": "America/New_York"},
                }
            ],
            "feature_views": [
                {
                    "name": "plane_stats",
                    "entity": "plane",
                    "source": "flights",
                    "window": {"length": "1d"},
                    "features": [
                        {"name": "n", "function": "count"},
                        {"name": "delay_sum", "function": "sum", "column": "dep_delay"},
                        {"name": "delay_max", "function": "max", "column": "dep_delay"},
                        {"name": "last_carrier", "function": "last", "column": "carrier"},
                        {"name": "last_cancelled", "function": "last", "column": "cancelled"},
                    ],
                },
                {
                    "name": "route_stats",
                    "entity": "route",
                    "source": "flights",
                    "window": {"length": "1h"},
                    "features": [{"name": "n", "function": "count"}],
                },
            ],
        }
    )


def plane_record(
    tailnum: str,
    event_ts: datetime,
    *,
    n: int = 1,
    delay_sum: float | None = 5.0,
    delay_max: FeatureValue = 5.0,
    last_carrier: FeatureValue = "UA",
    last_cancelled: FeatureValue = False,
    latest: datetime | None = None,
    available_at: datetime | None = None,
    version: int = 1,
) -> FeatureRecord:
    return FeatureRecord(
        view="plane_stats",
        version=version,
        entity=(tailnum,),
        event_ts_ms=ms(event_ts),
        latest_event_ts_ms=ms(latest if latest is not None else event_ts),
        values={
            "n": n,
            "delay_sum": delay_sum,
            "delay_max": delay_max,
            "last_carrier": last_carrier,
            "last_cancelled": last_cancelled,
        },
        available_at_ms=ms(available_at if available_at is not None else event_ts),
    )


def route_record(origin: str, dest: str, event_ts: datetime, n: int = 1) -> FeatureRecord:
    return FeatureRecord(
        "route_stats", 1, (origin, dest), ms(event_ts), ms(event_ts), {"n": n}, ms(event_ts)
    )


def invoke_command(command: Callable[..., Any], *args: str) -> tuple[int, str, str]:
    """Run one CLI command function in-process; return its exit code, stdout and stderr."""
    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr
