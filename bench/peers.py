"""Worker throughput against its peers: Quix Streams and a plain faust-streaming agent.

Each peer computes the run topology's feature views from the source topic the worker benchmark
read, in a process of its own (``bench/peer_apps/``). Its consumer group, topics and state folder
are its own, named after the run and deleted afterwards. A peer's rate is the source
events divided by the time from just before its app starts until the last event has reached
every view. That leaves out the peer's shutdown and final commit, while the worker's figure
waits for committed offsets, so the comparison leans toward the peers.

The faust-streaming app applies only tens of events per second (faust_app.py explains why), so it
stops once ``FAUST_EVENT_LIMIT`` events have reached every view, and its rate is measured over
those; the whole year would take hours.

faust-streaming runs in streamfeat's interpreter (the ``bench`` extra). Quix Streams pins
confluent-kafka below 2.13 and pydantic below 2.14, older than streamfeat's, so the first run
installs it into a virtual environment of its own, ``.local/bench-venvs/quixstreams``, which
later runs reuse while its requirement is unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bench.context import ROOT, SCHEMAS, BenchContext
from bench.report import Figure
from bench.worker import WORKER_EVENTS_PER_S

QUIXSTREAMS_REQUIREMENT = "quixstreams[avro]==3.28.1"
"""The Quix Streams release measured, the newest on PyPI when this benchmark was written."""

FAUST_EVENT_LIMIT = 2_000
"""Events the faust-streaming app applies per view before it stops, one to three minutes' work."""

DAYLIGHT_SAVING_SHIFT_MS = 3_600_000
"""The maximum difference between a local-time span and its UTC span, for a one-hour shift."""

STARTUP_ALLOWANCE_S = 600
"""Seconds a peer app may take beyond its events at its slowest rate before the run is cut off."""

APPS = Path(__file__).resolve().parent / "peer_apps"
QUIX_VENV = ROOT / ".local" / "bench-venvs" / "quixstreams"


@dataclass(frozen=True)
class Peer:
    label: str
    suffix: str
    """Appended to the run's name to name the peer's consumer group, topics and folders."""
    app: str
    own_venv: bool
    slowest_events_per_s: float
    """Below this rate the app counts as hung, so it sets the run's timeout."""
    event_limit: int | None = None
    """Events the peer applies per view before it stops, or None for all of them."""

    def events(self, context: BenchContext) -> int:
        return min(context.events, self.event_limit or context.events)


PEERS = (
    Peer("Quix Streams", "quix", "quix_app.py", own_venv=True, slowest_events_per_s=100),
    Peer(
        "faust-streaming",
        "faust",
        "faust_app.py",
        own_venv=False,
        slowest_events_per_s=5,
        event_limit=FAUST_EVENT_LIMIT,
    ),
)


@dataclass(frozen=True)
class PeerResult:
    version: str
    seconds: float
    late_windows: int | None
    """Window updates the peer skipped as late, when it reports them."""


def run(context: BenchContext) -> list[Figure]:
    worker = context.measured.get(WORKER_EVENTS_PER_S)
    figures: list[Figure] = []
    for peer in PEERS:
        result = run_peer(peer, context)
        events = peer.events(context)
        rate = events / result.seconds
        note = f"{peer.label} {result.version}, first {events:,} events"
        if result.late_windows is not None:
            note += f", {result.late_windows} late window updates skipped"
        figures.append(Figure(f"{peer.label}, 3 views", "events/s", rate, note=note))
        if worker is not None:
            baseline = f"{peer.label} {result.version}"
            figures.append(Figure(f"worker vs {peer.label}", "events/s", worker, baseline, rate))
    return figures


def run_peer(peer: Peer, context: BenchContext) -> PeerResult:
    """Run one peer app on the source topic until it has applied its events; return the result."""
    python = quix_python() if peer.own_venv else Path(sys.executable)
    folder = context.scratch(f"peer-{peer.suffix}")
    prefix = f"{context.topology.name}.{peer.suffix}"
    spec = write_spec(context, folder, prefix, peer.event_limit)
    log = folder / "app.log"
    try:
        with log.open("w") as output:
            subprocess.run(
                [str(python), str(APPS / peer.app), str(spec)],
                cwd=folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=STARTUP_ALLOWANCE_S + peer.events(context) / peer.slowest_events_per_s,
                check=False,
            )
        result = _read_result(folder / "result.json")
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as error:
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(
            f"the {peer.label} app failed: {error}; the end of {log.name}:\n{tail}"
        ) from None
    finally:
        delete_peer_state(context.bootstrap, prefix)
    return result


def _read_result(path: Path) -> PeerResult:
    raw: dict[str, Any] = json.loads(path.read_text())
    if raw["seconds"] is None:
        raise ValueError(f"the app stopped before every event was applied: {raw['applied']}")
    return PeerResult(raw["version"], raw["seconds"], raw.get("late_windows"))


def write_spec(context: BenchContext, folder: Path, prefix: str, event_limit: int | None) -> Path:
    """Write what a peer app reads: where the events are and the views to compute."""
    topology = context.topology
    source = topology.sources[0]
    if source.event_time.zone is None:
        raise ValueError(f"source {source.name} has no time zone; the peer apps expect one")
    events = pq.read_table(context.events_file)
    views = []
    for view in topology.feature_views:
        keys = topology.entity(view.entity).join_keys
        if len(keys) != 1:
            raise ValueError(f"view {view.name} has join keys {keys}; the peer apps take one")
        views.append(
            {
                "name": view.name,
                "key": keys[0],
                "length_ms": view.window.length_ms,
                "hop_ms": view.window.hop_ms,
                "features": [
                    {"name": f.name, "function": f.function.value, "column": f.column}
                    for f in view.features
                ],
                "expected_events": min(_keyed_events(events, keys[0]), event_limit or len(events)),
            }
        )
    spec = {
        "bootstrap": context.bootstrap,
        "topic": source.topic,
        "partitions": source.partitions,
        "name_prefix": prefix,
        "state_dir": str(folder / "state"),
        "schema_file": str(SCHEMAS / source.schema_file),
        "event_time_field": source.event_time.field,
        "zone": source.event_time.zone,
        "grace_ms": _grace_ms(events, source.event_time.field),
        "views": views,
        "result_file": str(folder / "result.json"),
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def _keyed_events(events: pa.Table, key: str) -> int:
    """Events whose ``key`` is neither null nor empty: those a view of that key applies."""
    column = events.column(key)
    return int(pc.sum(pc.not_equal(pc.cast(column, "string"), "")).as_py() or 0)


def _grace_ms(events: pa.Table, field: str) -> int:
    """A grace period no event of the replay can exceed: its event-time span.

    Quix Streams reads a backlog one partition after another, so in a replay an event can be
    as late as the span. The quix_app.py docstring gives what a smaller grace period costs.
    """
    span = pc.min_max(events.column(field)).as_py()
    return int(span["max"] - span["min"]) + DAYLIGHT_SAVING_SHIFT_MS


def delete_peer_state(bootstrap: str, prefix: str) -> None:
    """Delete the topics and the consumer group a peer app created, all named with ``prefix``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [name for name in admin.list_topics(timeout=30).topics if prefix in name]
    futures = list(admin.delete_topics(topics, operation_timeout=30).values()) if topics else []
    futures += admin.delete_consumer_groups([prefix], request_timeout=30).values()
    for future in futures:
        try:
            future.result()
        except KafkaException as error:
            print(f"peers: failed to delete state named {prefix}: {error}", file=sys.stderr)


def quix_python() -> Path:
    """Return the interpreter of the Quix Streams environment, creating it on first use."""
    python = QUIX_VENV / "bin" / "python"
    marker = QUIX_VENV / ".streamfeat-requirement"
    if python.exists() and marker.exists() and marker.read_text() == QUIXSTREAMS_REQUIREMENT:
        return python
    print(f"peers: installing {QUIXSTREAMS_REQUIREMENT} into {QUIX_VENV}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(QUIX_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + [QUIXSTREAMS_REQUIREMENT],
        check=True,
    )
    marker.write_text(QUIXSTREAMS_REQUIREMENT)
    return python
