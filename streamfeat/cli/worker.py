"""``streamfeat worker``: run the stream worker of a topology."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from confluent_kafka import KafkaException

from streamfeat.admin.topics import ensure_topics
from streamfeat.cli import _output
from streamfeat.definitions.loader import load_topology
from streamfeat.errors import StreamfeatError
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.serialization import SchemaStore
from streamfeat.settings import Settings
from streamfeat.stream.topics import worker_topics
from streamfeat.stream.worker import Worker, WorkerConfig, install_signal_handlers

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def worker(
    topology: Annotated[
        Path, typer.Argument(help="Topology YAML file, such as topologies/flights.yml.")
    ],
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", help="Folder for this worker's RocksDB state."),
    ] = Path(".local/state"),
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            help="Kafka bootstrap servers "
            "(default: STREAMFEAT_KAFKA_BOOTSTRAP or 127.0.0.1:19092).",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Redis URL of the online store (default: STREAMFEAT_REDIS_URL).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Messages consumed per batch.")
    ] = 2_000,
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--instance-id",
            help="Static member id in the consumer group: a worker restarted with the same id "
            "within the session timeout gets its partitions back without a rebalance.",
        ),
    ] = None,
    session_timeout: Annotated[
        float,
        typer.Option(
            "--session-timeout",
            min=6.0,
            max=300.0,
            help="Seconds the group waits for a silent worker before moving its partitions.",
        ),
    ] = 10.0,
) -> None:
    """Consume the topology's sources and keep its features fresh online and in the feature log.

    Runs until interrupted (Ctrl-C or SIGTERM), then finishes its batch and commits.
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = Settings.from_env()
    bootstrap = bootstrap_servers or settings.kafka_bootstrap
    try:
        definition = load_topology(topology)
        schemas = SchemaStore.from_dir(topology.parent / definition.schemas_dir)
        ensure_topics(bootstrap, worker_topics(definition))
        online = RedisOnlineStore.from_url(redis_url or settings.redis_url, definition)
        config = WorkerConfig(
            bootstrap_servers=bootstrap,
            state_dir=state_dir / definition.name,
            batch_size=batch_size,
            instance_id=instance_id,
            session_timeout_ms=int(session_timeout * 1000),
        )
        process = Worker(definition, schemas, online, config)
        install_signal_handlers(process)
        stats = process.run()
    except (StreamfeatError, KafkaException) as error:
        _output.error(str(error))
        raise typer.Exit(1) from error
    _output.info(
        f"worker stopped: {stats.source_events} source events, {stats.records} records written"
    )
