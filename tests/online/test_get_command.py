"""``streamfeat get`` against the real local Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from streamfeat.cli.get import get
from streamfeat.definitions.loader import load_topology
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.online import RedisOnlineStore
from streamfeat.settings import Settings
from tests.sink.factories import invoke_command

pytestmark = pytest.mark.integration

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
T10_MS = 1_738_576_800_000  # 2025-02-03T10:00:00Z


@pytest.fixture
def view_name(redis_client: redis.Redis) -> Iterator[str]:
    """Yield a view name of its own; the keys the test writes under it are removed afterwards."""
    name = f"plane_{uuid.uuid4().hex[:10]}"
    yield name
    for key in redis_client.scan_iter(match=f"sf:{{{name}|*", count=1000):
        redis_client.delete(key)


@pytest.fixture
def topology_file(tmp_path: Path, view_name: str) -> Path:
    path = tmp_path / "topology.yml"
    path.write_text(
        f"""
name: get_tests
schemas_dir: {SCHEMAS_DIR}
entities:
  - {{name: plane, join_keys: [tailnum]}}
  - {{name: route, join_keys: [origin, dest]}}
sources:
  - name: flights
    topic: flights
    schema: flight.avsc
    event_time: {{field: sched_dep_local, zone: America/New_York}}
feature_views:
  - name: {view_name}
    entity: plane
    source: flights
    window: {{length: 1h}}
    features:
      - {{name: flights, function: count}}
      - {{name: max_dep_delay, function: max, column: dep_delay}}
  - name: {view_name}_route
    entity: route
    source: flights
    window: {{length: 1h}}
    ttl: none
    features:
      - {{name: flights, function: count}}
""",
        encoding="utf-8",
    )
    return path


def run_get(*args: str) -> tuple[int, str, str]:
    return invoke_command(get, *args)


def write(topology_file: Path, *records: FeatureRecord) -> None:
    store = RedisOnlineStore.from_url(Settings.from_env().redis_url, load_topology(topology_file))
    store.write(records)
    store.close()


def test_get_prints_in_request_order(topology_file: Path, view_name: str) -> None:
    write(
        topology_file,
        FeatureRecord(
            view_name, 2, ("N1",), T10_MS, T10_MS, {"flights": 3, "max_dep_delay": 12.0}, 0
        ),
    )

    code, out, _ = run_get(
        str(topology_file), "--view", view_name, "--entity", "N1", "--entity", "N2",
        "--as-of", "2025-02-03T10:30:00Z",
    )  # fmt: skip

    assert code == 0
    assert out.splitlines() == [
        "entity=N1 status=ok as_of=2025-02-03T10:00:00.000Z version=2 "
        'values={"flights": 3, "max_dep_delay": 12.0}',
        "entity=N2 status=not_found as_of=- version=-",
    ]


def test_get_reports_expired_and_too_old(topology_file: Path, view_name: str) -> None:
    write(topology_file, FeatureRecord(view_name, 1, ("N1",), T10_MS, T10_MS, {"flights": 1}, 0))

    _, expired, _ = run_get(
        str(topology_file),
        "--view",
        view_name,
        "--entity",
        "N1",
        "--as-of",
        "2025-02-03T11:00:00.001Z",
    )
    _, too_old, _ = run_get(
        str(topology_file), "--view", view_name, "--entity", "N1", "--as-of", "2025-02-03T09:00:00Z"
    )

    assert expired.startswith("entity=N1 status=expired as_of=2025-02-03T10:00:00.000Z version=1")
    assert too_old.startswith("entity=N1 status=too_old")
    assert "point-in-time join" in too_old


def test_get_splits_composite_keys(topology_file: Path, view_name: str) -> None:
    route = f"{view_name}_route"
    write(topology_file, FeatureRecord(route, 1, ("JFK", "LAX"), T10_MS, T10_MS, {"flights": 4}, 0))

    code, out, _ = run_get(str(topology_file), "--view", route, "--entity", "JFK,LAX")

    assert code == 0
    assert out.startswith(
        'entity=JFK,LAX status=ok as_of=2025-02-03T10:00:00.000Z version=1 values={"flights": 4}'
    )


def test_get_rejects_wrong_key_count(topology_file: Path, view_name: str) -> None:
    code, _, err = run_get(str(topology_file), "--view", f"{view_name}_route", "--entity", "JFK")

    assert code == 1
    assert "--entity 'JFK' has 1 value(s)" in err
    assert "(origin, dest)" in err


def test_get_rejects_unknown_view(topology_file: Path, view_name: str) -> None:
    code, _, err = run_get(str(topology_file), "--view", "nope", "--entity", "N1")

    assert code == 1
    assert "feature view 'nope' is not defined" in err
    assert view_name in err


def test_get_rejects_as_of_without_offset(topology_file: Path, view_name: str) -> None:
    code, _, err = run_get(
        str(topology_file), "--view", view_name, "--entity", "N1", "--as-of", "2025-02-03T10:00:00"
    )

    assert code == 1
    assert "'2025-02-03T10:00:00' has no UTC offset" in err


def test_get_hides_redis_password(topology_file: Path, view_name: str) -> None:
    code, _, err = run_get(
        str(topology_file), "--view", view_name, "--entity", "N1",
        "--redis-url", "redis://user:secret@127.0.0.1:1/0",
    )  # fmt: skip

    assert code == 1
    assert "redis://user:***@127.0.0.1:1/0" in err
    assert "secret" not in err


def test_get_defaults_as_of_to_now(topology_file: Path, view_name: str) -> None:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    write(topology_file, FeatureRecord(view_name, 1, ("N1",), now_ms, now_ms, {"flights": 1}, 0))

    _, out, _ = run_get(str(topology_file), "--view", view_name, "--entity", "N1")

    assert "status=ok" in out
