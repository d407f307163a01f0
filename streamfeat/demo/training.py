"""The demo's last step: a training set on the archive it wrote, one label per flight."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from streamfeat.definitions.models import Topology
from streamfeat.offline.training_set import training_set
from streamfeat.producer.flights import flight_labels

LATE_MINUTES = 15.0
"""A flight is labelled late when it arrived more than this many minutes after schedule."""
BEFORE_DEPARTURE = pd.Timedelta(1, "ms")
"""Labels look at the features 1 ms before the scheduled departure, so a flight's own event
(and its arrival delay, unknown at departure) is not among its features."""


@dataclass(frozen=True)
class TrainingSetResult:
    """The training-set file the demo wrote, its size and the time it took."""

    path: Path
    rows: int
    labels: int
    seconds: float

    def describe(self) -> str:
        return (
            f"training set: {self.rows:,} rows for {self.labels:,} flight labels (arrived more "
            f"than {LATE_MINUTES:g} min late), features as of just before each scheduled "
            f"departure, written to {self.path} in {self.seconds:.1f}s"
        )


def write_flight_training_set(topology: Topology, archive: Path, path: Path) -> TrainingSetResult:
    """Join every flight's label to the archive's features and write it as Parquet to ``path``."""
    started = time.monotonic()
    labels = flight_labels(LATE_MINUTES)
    labels["event_timestamp"] -= BEFORE_DEPARTURE
    train = training_set(labels, topology, archive)
    train.to_parquet(path, index=False)
    return TrainingSetResult(path, len(train), len(labels), time.monotonic() - started)
