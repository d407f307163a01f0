"""``streamfeat training-set`` on a full year of flights: one row per flight label, each feature
equal to a brute-force computation from the raw CSV as of just before the label's time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from streamfeat.cli.main import app
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.offline.backfill import backfill
from streamfeat.producer.flights import FLIGHTS_ROWS, flight_events, flight_labels
from tests.consistency.month_pipeline import write_events_file
from tests.integration.flights_reference import ViewReference, load_week_flights, same_value

TOPOLOGY = Path(__file__).parents[2] / "topologies" / "flights.yml"
SAMPLE = 3_000
BEFORE = pd.Timedelta(1, "ms")
"""Labels look 1 ms before the scheduled departure, so the flight's own event is left out."""


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load_topology(TOPOLOGY)


@pytest.fixture(scope="module")
def year_training_set(
    topology: Topology, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Backfill 2013 into an archive, then run the command on one label per flight."""
    work = tmp_path_factory.mktemp("flight-training-set")
    events = work / "flights.parquet"
    write_events_file(list(flight_events()), events)
    archive = work / "archive"
    backfill(
        topology,
        "flights",
        events,
        archive,
        TOPOLOGY.parent / topology.schemas_dir,
        clock=lambda: 1_800_000_000_000,
    )
    labels = flight_labels(late_minutes=15)
    labels["event_timestamp"] -= BEFORE
    labels_file, out = work / "labels.parquet", work / "train.parquet"
    labels.to_parquet(labels_file, index=False)
    result = CliRunner().invoke(
        app,
        ["training-set", str(TOPOLOGY), "--labels", str(labels_file), "--archive", str(archive)]
        + ["--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    return labels, pd.read_parquet(out)


def test_one_row_per_flight_in_label_order(
    year_training_set: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    labels, train = year_training_set

    assert len(train) == FLIGHTS_ROWS
    assert train["flight_id"].tolist() == labels["flight_id"].tolist()
    assert train["arrived_late"].isna().sum() == labels["arrived_late"].isna().sum()


def test_label_counts_match_the_data(
    year_training_set: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, train = year_training_set

    assert train["arrived_late"].value_counts().to_dict() == {False: 249_716, True: 77_630}


SWITCH_DAYS = ("2013-03-10", "2013-11-03")
"""New York's daylight-saving switch days of 2013, by their local date."""


@pytest.fixture(scope="module")
def year_references(topology: Topology) -> dict[str, ViewReference]:
    flights = load_week_flights(pd.Timestamp("2013-01-01"), pd.Timestamp("2014-01-01"))
    return {view.name: ViewReference(topology, view, flights) for view in topology.feature_views}


def mismatches_at(
    rows: list[int],
    topology: Topology,
    references: dict[str, ViewReference],
    labels: pd.DataFrame,
    train: pd.DataFrame,
) -> list[tuple[object, ...]]:
    """Label rows whose features differ from the reference, with both values."""
    found = []
    for view in topology.feature_views:
        reference = references[view.name]
        for row in rows:
            entity = labels.at[row, reference.key_column]
            if pd.isna(entity):
                continue
            as_of_ms = int(labels.at[row, "event_timestamp"].value // 1_000_000)
            (expected,) = reference.as_of(str(entity), [as_of_ms])
            expired = reference.is_expired(expected, as_of_ms)
            for feature in view.features:
                want = None if expired else expected.values[feature.name]
                got = train.at[row, f"{view.name}__{feature.name}"]
                got = None if pd.isna(got) else got
                if not same_value(want, got):
                    found.append((view.name, feature.name, entity, as_of_ms, want, got))
    return found


def test_sampled_features_equal_raw_csv_computation(
    topology: Topology,
    year_references: dict[str, ViewReference],
    year_training_set: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    labels, train = year_training_set
    rows = np.random.default_rng(2013).choice(len(labels), SAMPLE, replace=False).tolist()

    assert mismatches_at(rows, topology, year_references, labels, train) == []


@pytest.mark.parametrize("day", SWITCH_DAYS)
def test_switch_day_flights_match_reference(
    day: str,
    topology: Topology,
    year_references: dict[str, ViewReference],
    year_training_set: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    labels, train = year_training_set
    rows = np.flatnonzero(labels["flight_id"].str.startswith(f"{day}/").to_numpy()).tolist()

    assert len(rows) > 800
    assert mismatches_at(rows, topology, year_references, labels, train) == []
