"""``streamfeat sink`` against the real local broker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamfeat.cli.sink import sink
from streamfeat.definitions.models import Topology
from streamfeat.offline import read_archive
from tests.sink.conftest import produce
from tests.sink.factories import SCHEMAS_DIR, invoke_command, plane_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T10 = datetime(2025, 2, 3, 10, tzinfo=UTC)


def write_topology_file(folder: Path, topology: Topology) -> Path:
    """Write the YAML of a one-view topology that uses ``topology``'s name and log topic."""
    path = folder / "topology.yml"
    path.write_text(
        f"""
name: {topology.name}
schemas_dir: {SCHEMAS_DIR}
feature_log_topic: {topology.feature_log}
entities:
  - {{name: plane, join_keys: [tailnum]}}
sources:
  - name: flights
    topic: flights
    schema: flight.avsc
    event_time: {{field: sched_dep_local, zone: America/New_York}}
feature_views:
  - name: plane_stats
    entity: plane
    source: flights
    window: {{length: 1d}}
    features:
      - {{name: n, function: count}}
      - {{name: delay_sum, function: sum, column: dep_delay}}
      - {{name: delay_max, function: max, column: dep_delay}}
      - {{name: last_carrier, function: last, column: carrier}}
      - {{name: last_cancelled, function: last, column: cancelled}}
""",
        encoding="utf-8",
    )
    return path


def run_sink(*args: str) -> tuple[int, str, str]:
    return invoke_command(sink, *args)


def test_sink_command_archives_until_idle(
    topology: Topology, tmp_path: Path, bootstrap: str
) -> None:
    produce(bootstrap, topology.feature_log, [plane_record("N1", T10, delay_max=None)], 0)
    topology_file = write_topology_file(tmp_path, topology)
    archive = tmp_path / "archive"

    code, out, err = run_sink(
        str(topology_file), "--archive", str(archive), "--bootstrap-servers", bootstrap,
        "--until-idle", "2",
    )  # fmt: skip

    assert code == 0, err
    assert f"archiving {topology.feature_log} to {archive}" in out
    assert "archived 1 records in 1 files (1 batches)" in out
    frame = read_archive(archive, "plane_stats")
    assert list(frame["tailnum"]) == ["N1"]
    assert str(frame["delay_max"].dtype) == "float64"


def test_sink_command_reports_invalid_topology(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\nentities: []\n", encoding="utf-8")

    code, _, err = run_sink(str(broken), "--archive", str(tmp_path / "archive"))

    assert code == 1
    assert str(broken) in err
