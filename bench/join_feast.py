"""Feast's point-in-time join on the benchmark's archive, in a virtual environment of its own.

Feast requires pandas < 3 and streamfeat pins pandas 3, so Feast cannot share streamfeat's
environment. ``feast_join`` creates ``.local/bench-venvs/feast`` on first use, then runs this
file there as a script. The script registers one Feast feature view per streamfeat view over
the same Parquet folders, a ``FileSource`` with ``event_ts`` as the timestamp field and
``available_at`` as the created-timestamp column. It then times ``get_historical_features``
with the offline store a Feast repository gets when it names none, ``dask``. Only the join is
timed, from the call to the finished pandas frame.

Feast's join differs from training_set in ways that do not make it slower: the TTL counts from
the record's ``event_ts``, not from the entity's latest event, and label rows that repeat
exactly come back once. Feast 0.67.0's dask store also fails (``NotImplementedError``, divisions
of a column with nulls) on a label whose entity has no record at all, so callers pass only
labels whose entities have records.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

FEAST_REQUIREMENT = "feast==0.67.0"
OFFLINE_STORE = "dask"
"""Feast's default offline store: what ``offline_store`` is when feature_store.yaml names none."""
VENV = Path(__file__).resolve().parents[1] / ".local" / "bench-venvs" / "feast"
MEMORY_LIMIT_BYTES = 12 * 1024**3
"""Address-space limit of the Feast process, so that a join too large fails alone."""


@dataclass(frozen=True)
class FeastRun:
    """One timed Feast join: its seconds, output rows and peak memory, or why it failed."""

    seconds: float | None
    rows: int | None
    max_rss_bytes: int | None
    failure: str | None


def feast_join(
    views: list[dict[str, Any]], archive: Path, labels: Path, timeout_s: float
) -> FeastRun:
    """Run Feast's join of the labels file on ``archive`` in Feast's environment.

    ``views`` lists one dict per view: name, entity, key, ttl_s (0 for none) and features
    (name to "int64" or "float64"). A join that runs past ``timeout_s``, runs out of memory
    or fails returns a run with ``failure`` set.
    """
    python = ensure_venv()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory(prefix="streamfeat-feast-") as repo:
        command = [str(python), __file__, "--archive", str(archive), "--labels", str(labels)]
        command += ["--repo", repo, "--views", json.dumps(views)]
        try:
            finished = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=environment,
                preexec_fn=_limit_memory,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return FeastRun(None, None, None, f"timed out after {timeout_s:.0f} s")
    if finished.returncode != 0:
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        return FeastRun(None, None, None, f"failed: {last}")
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    return FeastRun(result["seconds"], result["rows"], result["max_rss_bytes"], None)


def ensure_venv() -> Path:
    """Create Feast's virtual environment unless it exists with ``FEAST_REQUIREMENT``."""
    python = VENV / "bin" / "python"
    marker = VENV / "streamfeat-requirement.txt"
    if python.exists() and marker.exists() and marker.read_text() == FEAST_REQUIREMENT:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, FEAST_REQUIREMENT], check=True)
    marker.write_text(FEAST_REQUIREMENT)
    return python


def feast_version() -> str:
    return FEAST_REQUIREMENT.split("==")[1]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def _main(argv: list[str] | None = None) -> int:
    """Time Feast's join; runs inside Feast's environment and prints one JSON line."""
    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--views", required=True, help="JSON list of the views' specs")
    arguments = parser.parse_args(argv)

    import pandas as pd

    store, references = _feature_store(
        arguments.repo, arguments.archive, json.loads(arguments.views)
    )
    labels = pd.read_parquet(arguments.labels)
    started = time.perf_counter()
    frame = store.get_historical_features(
        entity_df=labels, features=references, full_feature_names=True
    ).to_df()
    seconds = time.perf_counter() - started
    max_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rows": len(frame), "max_rss_bytes": max_rss_bytes}))
    return 0


def _feature_store(repo: Path, archive: Path, views: list[dict[str, Any]]) -> tuple[Any, list[str]]:
    """Register an entity and a file-backed feature view per view; return the store and refs."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    config = RepoConfig(
        project="streamfeat_bench",
        registry=str(repo / "registry.db"),
        provider="local",
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    store = FeatureStore(config=config)
    objects: list[Any] = []
    references = []
    types = {"int64": Int64, "float64": Float64}
    for view in views:
        entity = Entity(name=view["entity"], join_keys=[view["key"]], value_type=ValueType.STRING)
        source = FileSource(
            name=f"{view['name']}_archive",
            path=str(archive / view["name"]),
            timestamp_field="event_ts",
            created_timestamp_column="available_at",
        )
        feature_view = FeatureView(
            name=view["name"],
            entities=[entity],
            ttl=timedelta(seconds=view["ttl_s"]),
            schema=[Field(name=n, dtype=types[t]) for n, t in view["features"].items()],
            source=source,
            online=False,
        )
        objects += [entity, source, feature_view]
        references += [f"{view['name']}:{n}" for n in view["features"]]
    store.apply(objects)
    return store, references


if __name__ == "__main__":
    sys.exit(_main())
