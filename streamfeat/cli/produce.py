"""``streamfeat produce``: replay a data set into a source topic of a topology."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from tqdm import tqdm

from streamfeat.admin import ensure_topics, source_topic
from streamfeat.cli import _output
from streamfeat.definitions.loader import load_topology
from streamfeat.errors import StreamfeatError
from streamfeat.producer import dataset_events, produce_events
from streamfeat.serialization import SchemaStore
from streamfeat.serialization.times import datetime_from_ms
from streamfeat.settings import Settings


def produce(
    topology: Annotated[
        Path, typer.Argument(help="Topology YAML file, such as topologies/flights.yml.")
    ],
    source: Annotated[
        str,
        typer.Option("--source", help="Source whose topic receives the events, such as flights."),
    ],
    limit: Annotated[
        int | None, typer.Option(help="Produce only the first N events in event-time order.", min=1)
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Maximum events per second; by default as fast as Kafka takes them.", min=0.001
        ),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            help="Kafka bootstrap servers, host:port; default STREAMFEAT_KAFKA_BOOTSTRAP "
            "or 127.0.0.1:19092."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the events to this .parquet file instead of Kafka, such as the input "
            "of streamfeat backfill.",
        ),
    ] = None,
) -> None:
    """Create the source's topic if missing, then replay its data set in event-time order."""
    bootstrap = bootstrap_servers or Settings.from_env().kafka_bootstrap
    if out is not None:
        _write_events_file(source, limit, out)
        return
    try:
        definitions = load_topology(topology)
        try:
            chosen = definitions.source(source)
        except KeyError:
            known = ", ".join(s.name for s in definitions.sources)
            raise typer.BadParameter(
                f"source {source!r} is not in {topology}; use one of: {known}",
                param_hint="--source",
            ) from None
        store = SchemaStore.from_dir(topology.parent / definitions.schemas_dir)
        created = ensure_topics(bootstrap, [source_topic(chosen)])
        if created:
            _output.info(f"created topic {chosen.topic} ({chosen.partitions} partitions)")
        events = dataset_events(source, limit)
        with tqdm(desc=chosen.topic, unit="events", total=limit, disable=None) as progress:
            summary = produce_events(
                events,
                bootstrap=bootstrap,
                source=chosen,
                store=store,
                rate=rate,
                on_progress=progress.update,
            )
    except StreamfeatError as error:
        _output.error(str(error))
        raise typer.Exit(1) from error
    span = ""
    if summary.first_event_ms is not None and summary.last_event_ms is not None:
        first = datetime_from_ms(summary.first_event_ms).isoformat()
        last = datetime_from_ms(summary.last_event_ms).isoformat()
        span = f", event times {first} .. {last}"
    rate_done = summary.events / summary.seconds if summary.seconds > 0 else 0.0
    _output.info(
        f"produced {summary.events} events to {summary.topic} in {summary.seconds:.1f}s "
        f"({rate_done:,.0f} events/s){span}"
    )


def _write_events_file(source: str, limit: int | None, out: Path) -> None:
    """Write the data set's events, in event-time order, to a Parquet file."""
    if out.suffix != ".parquet":
        _output.error(f"--out {out} must end in .parquet")
        raise typer.Exit(2)
    try:
        # pyarrow keeps None as null; a pandas float column would turn it into NaN.
        table = pa.Table.from_pylist(list(dataset_events(source, limit)))
    except StreamfeatError as error:
        _output.error(str(error))
        raise typer.Exit(1) from error
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    _output.info(f"wrote {table.num_rows} events of {source} to {out}")
