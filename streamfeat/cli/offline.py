"""``streamfeat backfill`` and ``streamfeat training-set``: the offline commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from streamfeat.cli import _output
from streamfeat.definitions.loader import load_topology
from streamfeat.errors import StreamfeatError
from streamfeat.offline.backfill import backfill as run_backfill
from streamfeat.offline.training_set import training_set as build_training_set

TopologyArgument = Annotated[
    Path, typer.Argument(help="Topology YAML file, such as topologies/flights.yml.")
]
ArchiveOption = Annotated[
    Path, typer.Option("--archive", help="Archive folder in the sink's layout.")
]


def backfill(
    topology: TopologyArgument,
    source: Annotated[str, typer.Option("--source", help="Source the events belong to.")],
    events: Annotated[
        Path,
        typer.Option(
            "--events",
            exists=True,
            dir_okay=False,
            help="Historical events, .csv or .parquet, in delivery order.",
        ),
    ],
    archive: ArchiveOption,
) -> None:
    """Compute the feature records of a source's views from historical events into the archive."""
    try:
        definition = load_topology(topology)
        stats = run_backfill(
            definition, source, events, archive, topology.parent / definition.schemas_dir
        )
    except (StreamfeatError, KeyError, OSError) as error:
        _output.error(str(error))
        raise typer.Exit(1) from error
    _output.info(
        f"backfilled {stats.events} events ({stats.accepted} accepted) into {stats.records} "
        f"records in {stats.files} files under {archive}"
    )
    for (view, reason), count in sorted(stats.rejected.items()):
        _output.info(f"  {view}: {count} events rejected ({reason})")


def training_set(
    topology: TopologyArgument,
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            exists=True,
            dir_okay=False,
            help="Label rows, .csv or .parquet: the entities' join keys, a label time and "
            "any other columns, which pass through unchanged.",
        ),
    ],
    archive: ArchiveOption,
    out: Annotated[Path, typer.Option("--out", help="Training set to write, .parquet or .csv.")],
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            help="A view (plane_7d) or one feature (plane_7d:flights); repeatable. Default: "
            "every view whose join keys are label columns.",
        ),
    ] = None,
    timestamp_column: Annotated[
        str, typer.Option("--timestamp-column", help="Label-time column; times need a zone.")
    ] = "event_timestamp",
    as_known_then: Annotated[
        bool,
        typer.Option(
            "--as-known-then",
            help="Use only record versions available at each label time, as served online then.",
        ),
    ] = False,
) -> None:
    """Join point-in-time correct feature values to label rows, one output row per label row."""
    try:
        definition = load_topology(topology)
        frame = _read_labels(labels, timestamp_column)
        result = build_training_set(
            frame,
            definition,
            archive,
            features=features,
            timestamp_column=timestamp_column,
            as_known_then=as_known_then,
        )
        _write_frame(result, out)
    except (StreamfeatError, OSError) as error:
        _output.error(str(error))
        raise typer.Exit(1) from error
    _output.info(f"wrote {len(result)} rows with {len(result.columns)} columns to {out}")
    if features is None:
        for view in definition.feature_views:
            missing = [k for k in definition.entity(view.entity).join_keys if k not in frame]
            if missing:
                _output.info(f"  view {view.name} left out: no label column {', '.join(missing)}")


def _read_labels(path: Path, timestamp_column: str) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix != ".csv":
        raise typer.BadParameter(f"{path} is neither .csv nor .parquet", param_hint="--labels")
    frame = pd.read_csv(path)
    if timestamp_column in frame.columns:
        frame[timestamp_column] = pd.to_datetime(
            frame[timestamp_column], utc=True, format="ISO8601"
        )
    return frame


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise typer.BadParameter(f"{path} is neither .csv nor .parquet", param_hint="--out")
