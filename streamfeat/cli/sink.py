"""``streamfeat sink``: archive a topology's feature-log topic as Parquet files."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from confluent_kafka import KafkaException

from streamfeat.cli import _output
from streamfeat.definitions.loader import load_topology
from streamfeat.errors import StreamfeatError
from streamfeat.settings import Settings
from streamfeat.sink import ArchiveSink, SinkStats, load_source_types

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def sink(
    topology: Annotated[
        Path, typer.Argument(help="Topology YAML file, such as topologies/flights.yml.")
    ],
    archive: Annotated[
        Path, typer.Option("--archive", help="Archive folder; created when missing.")
    ],
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            help="Kafka bootstrap servers "
            "(default: STREAMFEAT_KAFKA_BOOTSTRAP or 127.0.0.1:19092).",
        ),
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            min=0,
            help="Stop once no record has arrived for this many seconds and every batch is "
            "committed. Without it the sink runs until interrupted (Ctrl-C or SIGTERM).",
        ),
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--instance-id",
            help="Static member id in the consumer group: a sink restarted with the same id "
            "within the session timeout gets its partitions back without a rebalance.",
        ),
    ] = None,
    session_timeout: Annotated[
        float,
        typer.Option(
            "--session-timeout",
            min=6.0,
            max=300.0,
            help="Seconds the group waits for a silent sink before moving its partitions.",
        ),
    ] = 10.0,
) -> None:
    """Write the feature-log topic to ARCHIVE/<view>/event_date=YYYY-MM-DD/*.parquet.

    Offsets are committed once a batch's files are written, so an interrupted sink continues
    where it stopped and a re-run over the same offsets rewrites the same files.
    """
    try:
        definition = load_topology(topology)
        source_types = load_source_types(definition, topology.parent / definition.schemas_dir)
        archive_sink = ArchiveSink(
            definition,
            archive,
            bootstrap_servers=bootstrap_servers or Settings.from_env().kafka_bootstrap,
            source_types=source_types,
            consumer_config={
                "session.timeout.ms": int(session_timeout * 1000),
                **({"group.instance.id": instance_id} if instance_id else {}),
            },
        )
        _output.info(f"archiving {definition.feature_log} to {archive}")
        with _stop_on_signals(archive_sink):
            stats = archive_sink.run(
                until_idle=None if until_idle is None else timedelta(seconds=until_idle)
            )
    except (StreamfeatError, KafkaException) as error:
        _output.error(str(error))
        raise typer.Exit(1) from error
    _output.info(_describe(stats, archive))


@contextlib.contextmanager
def _stop_on_signals(archive_sink: ArchiveSink) -> Iterator[None]:
    """Let Ctrl-C and SIGTERM finish the pending batches and commit before the sink exits."""

    def request_stop(signal_number: int, frame: FrameType | None) -> None:
        archive_sink.stop()

    previous = {number: signal.signal(number, request_stop) for number in _STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _describe(stats: SinkStats, archive: Path) -> str:
    text = (
        f"archived {stats.records} records in {stats.files} files "
        f"({stats.batches} batches) under {archive}"
    )
    if stats.skipped:
        skipped = ", ".join(f"{reason}: {count}" for reason, count in sorted(stats.skipped.items()))
        text += f"; not archived: {skipped}"
    return text
