"""Point-in-time join against a brute-force reference, and over archives of mixed schemas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamfeat.definitions.models import Topology
from streamfeat.errors import ConfigurationError
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.offline.training_set import training_set
from streamfeat.sink.writer import ArchiveWriter
from tests.aggregation.harness import ms

BASE_MS = ms("2025-02-03T00:00:00.000Z")
ORIGINS = ("JFK", "LGA", "EWR")
DESTS = ("LAX", "SFO")


def route_topology(ttl: str | None, features: list[dict[str, str]] | None = None) -> Topology:
    view: dict[str, object] = {
        "name": "legs",
        "entity": "route",
        "source": "flights",
        "window": {"length": "1h"},
        "features": features
        or [
            {"name": "n", "function": "count"},
            {"name": "total", "function": "sum", "column": "a"},
        ],
        "ttl": ttl,
    }
    return Topology.model_validate(
        {
            "name": "pit",
            "entities": [{"name": "route", "join_keys": ["origin", "dest"]}],
            "sources": [
                {
                    "name": "flights",
                    "topic": "flights",
                    "schema": "x.avsc",
                    "event_time": {"field": "ts"},
                }
            ],
            "feature_views": [view],
        }
    )


@dataclass(frozen=True)
class Version:
    entity: tuple[str, str]
    event_ms: int
    latest_ms: int
    available_ms: int
    n: int
    total: float


def random_versions(rng: np.random.Generator, count: int) -> list[Version]:
    """Records of random routes, some with later versions, some available before their time."""
    versions = []
    for number in range(count):
        entity = (str(rng.choice(ORIGINS)), str(rng.choice(DESTS)))
        event_ms = BASE_MS + int(rng.integers(0, 20_000))
        latest_ms = event_ms - int(rng.integers(0, 3_000))
        # Offsets below zero are records emitted early, by the idle emission clock.
        first_at = event_ms + int(rng.integers(-2_000, 5_000))
        for version in range(int(rng.choice([1, 1, 1, 2, 3]))):
            versions.append(
                Version(
                    entity,
                    event_ms,
                    latest_ms,
                    first_at + version * int(rng.integers(1, 4_000)),
                    number * 10 + version,
                    float(number) + version / 10,
                )
            )
    return versions


def write_versions(archive: Path, topology: Topology, versions: list[Version]) -> None:
    """Write the versions in shuffled batches, so that files mix times and versions."""
    records = [
        FeatureRecord(
            "legs",
            1,
            v.entity,
            v.event_ms,
            v.latest_ms,
            {"n": v.n, "total": v.total},
            v.available_ms,
        )
        for v in versions
    ]
    writer = ArchiveWriter(topology, archive)
    for batch, start in enumerate(range(0, len(records), 37)):
        writer.write_batch(batch % 3, start, start + 36, records[start : start + 37])


def random_labels(rng: np.random.Generator, count: int) -> pd.DataFrame:
    origins = [*ORIGINS, "BOS"]
    frame = pd.DataFrame(
        {
            "origin": [str(rng.choice(origins)) for _ in range(count)],
            "dest": [str(rng.choice(DESTS)) for _ in range(count)],
            "t_ms": BASE_MS + rng.integers(-1_000, 26_000, count),
        }
    )
    frame = pd.concat([frame, frame.head(count // 10)], ignore_index=True)
    frame["event_timestamp"] = pd.to_datetime(frame["t_ms"], unit="ms", utc=True)
    return frame


def expected_values(
    versions: list[Version], labels: pd.DataFrame, ttl_ms: int | None, as_known_then: bool
) -> list[tuple[int, float] | None]:
    """Pick each label's record by the join's rules, one comparison at a time."""
    expected: list[tuple[int, float] | None] = []
    for origin, dest, t_ms in zip(labels["origin"], labels["dest"], labels["t_ms"], strict=True):
        candidates = [
            v
            for v in versions
            if v.entity == (origin, dest)
            and v.event_ms <= t_ms
            and (not as_known_then or v.available_ms <= t_ms)
        ]
        if not candidates:
            expected.append(None)
            continue
        best = max(candidates, key=lambda v: (v.event_ms, v.available_ms))
        if ttl_ms is not None and t_ms - best.latest_ms > ttl_ms:
            expected.append(None)
        else:
            expected.append((best.n, best.total))
    return expected


def joined_values(frame: pd.DataFrame) -> list[tuple[int, float] | None]:
    return [
        None if pd.isna(n) else (int(n), float(total))
        for n, total in zip(frame["legs__n"], frame["legs__total"], strict=True)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("as_known_then", [False, True])
@pytest.mark.parametrize(("ttl", "ttl_ms"), [(None, None), ("2s", 2_000)])
def test_join_matches_reference_on_random_archive(
    tmp_path: Path, seed: int, as_known_then: bool, ttl: str | None, ttl_ms: int | None
) -> None:
    rng = np.random.default_rng(seed)
    topology = route_topology(ttl)
    versions = random_versions(rng, 300)
    write_versions(tmp_path, topology, versions)
    labels = random_labels(rng, 400)

    result = training_set(labels, topology, tmp_path, as_known_then=as_known_then)

    assert list(result["t_ms"]) == list(labels["t_ms"])
    assert joined_values(result) == expected_values(versions, labels, ttl_ms, as_known_then)


def test_numeric_label_keys_match_text_keys(tmp_path: Path) -> None:
    topology = route_topology(None)
    write_versions(tmp_path, topology, [Version(("1", "2"), BASE_MS, BASE_MS, BASE_MS, 5, 1.5)])
    labels = pd.DataFrame(
        {
            "origin": [1, 1, 3],
            "dest": [2, 3, 2],
            "event_timestamp": pd.to_datetime([BASE_MS] * 3, unit="ms", utc=True),
        }
    )

    result = training_set(labels, topology, tmp_path)

    assert joined_values(result) == [(5, 1.5), None, None]


LAST_CARRIER = [{"name": "carrier", "function": "last", "column": "c"}]


@pytest.mark.parametrize("null_file_first", [True, False])
def test_files_with_null_typed_column_read_together(tmp_path: Path, null_file_first: bool) -> None:
    topology = route_topology(None, LAST_CARRIER)
    writer = ArchiveWriter(topology, tmp_path)
    entity = ("JFK", "LAX")
    null_offset, value_offset = (0, 1) if null_file_first else (1, 0)
    # A batch whose values are all null gets the null type in its file.
    writer.write_batch(
        0,
        null_offset,
        null_offset,
        [FeatureRecord("legs", 1, entity, BASE_MS, BASE_MS, {}, BASE_MS)],
    )
    writer.write_batch(
        0,
        value_offset,
        value_offset,
        [FeatureRecord("legs", 1, entity, BASE_MS + 10, BASE_MS, {"carrier": "B6"}, 0)],
    )
    labels = pd.DataFrame(
        {
            "origin": ["JFK", "JFK"],
            "dest": ["LAX", "LAX"],
            "event_timestamp": pd.to_datetime([BASE_MS, BASE_MS + 10], unit="ms", utc=True),
        }
    )

    result = training_set(labels, topology, tmp_path)

    assert result["legs__carrier"].isna().tolist() == [True, False]
    assert result["legs__carrier"].iloc[1] == "B6"


@pytest.mark.parametrize("int_file_first", [True, False])
def test_int_and_float_files_read_as_float(tmp_path: Path, int_file_first: bool) -> None:
    topology = route_topology(None, [{"name": "worst", "function": "max", "column": "d"}])
    writer = ArchiveWriter(topology, tmp_path)
    entity = ("JFK", "LAX")
    int_offset, float_offset = (0, 1) if int_file_first else (1, 0)
    writer.write_batch(
        0,
        int_offset,
        int_offset,
        [FeatureRecord("legs", 1, entity, BASE_MS, BASE_MS, {"worst": 5}, BASE_MS)],
    )
    writer.write_batch(
        0,
        float_offset,
        float_offset,
        [FeatureRecord("legs", 1, entity, BASE_MS + 10, BASE_MS, {"worst": 7.5}, 0)],
    )
    labels = pd.DataFrame(
        {
            "origin": ["JFK", "JFK"],
            "dest": ["LAX", "LAX"],
            "event_timestamp": pd.to_datetime([BASE_MS, BASE_MS + 10], unit="ms", utc=True),
        }
    )

    result = training_set(labels, topology, tmp_path)

    assert result["legs__worst"].tolist() == [5.0, 7.5]
    assert result["legs__worst"].dtype == "float64"


@pytest.mark.parametrize("older_file_first", [True, False])
def test_feature_missing_from_older_files_is_null_there(
    tmp_path: Path, older_file_first: bool
) -> None:
    older = route_topology(None, [{"name": "n", "function": "count"}])
    newer = route_topology(
        None, [{"name": "n", "function": "count"}, {"name": "m", "function": "count"}]
    )
    entity = ("JFK", "LAX")
    older_offset, newer_offset = (0, 1) if older_file_first else (1, 0)
    ArchiveWriter(older, tmp_path).write_batch(
        0,
        older_offset,
        older_offset,
        [FeatureRecord("legs", 1, entity, BASE_MS, BASE_MS, {"n": 1}, BASE_MS)],
    )
    ArchiveWriter(newer, tmp_path).write_batch(
        0,
        newer_offset,
        newer_offset,
        [FeatureRecord("legs", 2, entity, BASE_MS + 10, BASE_MS, {"n": 2, "m": 7}, 0)],
    )
    labels = pd.DataFrame(
        {
            "origin": ["JFK", "JFK"],
            "dest": ["LAX", "LAX"],
            "event_timestamp": pd.to_datetime([BASE_MS, BASE_MS + 10], unit="ms", utc=True),
        }
    )

    result = training_set(labels, newer, tmp_path)

    assert result["legs__n"].tolist() == [1, 2]
    assert result["legs__m"].isna().tolist() == [True, False]
    assert result["legs__m"].iloc[1] == 7


def test_feature_in_no_file_is_a_configuration_error(tmp_path: Path) -> None:
    older = route_topology(None, [{"name": "n", "function": "count"}])
    newer = route_topology(
        None, [{"name": "n", "function": "count"}, {"name": "m", "function": "count"}]
    )
    ArchiveWriter(older, tmp_path).write_batch(
        0, 0, 0, [FeatureRecord("legs", 1, ("JFK", "LAX"), BASE_MS, BASE_MS, {"n": 1}, BASE_MS)]
    )
    labels = pd.DataFrame(
        {
            "origin": ["JFK"],
            "dest": ["LAX"],
            "event_timestamp": pd.to_datetime([BASE_MS], unit="ms", utc=True),
        }
    )

    with pytest.raises(ConfigurationError, match="has no column 'm'"):
        training_set(labels, newer, tmp_path)
