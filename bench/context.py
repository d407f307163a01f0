"""Shared benchmark context: the local stack, a topology of the run's own, the year's events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka.admin import AdminClient

from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.devstack import LocalStack
from streamfeat.producer import dataset_events, produce_events
from streamfeat.serialization import SchemaStore
from streamfeat.stream.topics import worker_topics

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY = ROOT / "topologies" / "flights.yml"
SCHEMAS = ROOT / "schemas"


@dataclass(frozen=True)
class BenchContext:
    """The stack, the run's topology (its source topic already fed) and a scratch folder."""

    stack: LocalStack
    topology: Topology
    work: Path
    events_file: Path
    events: int
    measured: dict[str, float] = field(default_factory=dict)
    """Figures earlier benchmarks of the run measured, for later ones to compare with."""

    @property
    def bootstrap(self) -> str:
        return self.stack.bootstrap_servers

    def scratch(self, name: str) -> Path:
        """Return a new empty folder under the run's scratch folder."""
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=False)
        return folder


def run_topology(suffix: str = "", partitions: int | None = None) -> Topology:
    """Return the flights topology under a name of this run, with its own topics."""
    base = load_topology(TOPOLOGY)
    name = f"bench_{int(time.time())}{suffix}"
    update: dict[str, object] = {"topic": f"{name}.flights"}
    if partitions is not None:
        update["partitions"] = partitions
    source = base.source("flights").model_copy(update=update)
    return base.model_copy(update={"name": name, "sources": (source,)})


def feed(topology: Topology, bootstrap: str, events: list[dict[str, object]]) -> int:
    """Create the topology's topics and produce ``events`` to its source topic at full speed."""
    ensure_topics(bootstrap, worker_topics(topology))
    summary = produce_events(
        iter(events),
        bootstrap=bootstrap,
        source=topology.sources[0],
        store=SchemaStore.from_dir(SCHEMAS),
        rate=None,
        on_progress=lambda n: None,
    )
    return summary.events


def year_events(limit: int | None) -> list[dict[str, object]]:
    """Return the 2013 flights in time order, or their first ``limit``."""
    return list(dataset_events("flights", limit))


def write_events(events: list[dict[str, object]], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(events), path)
    return path


def delete_topics(topology: Topology, bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [spec.name for spec in worker_topics(topology)]
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.exception()
