"""Producing flights to the local Kafka broker and reading them back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import typer
from confluent_kafka import Consumer, Message
from typer.testing import CliRunner

from streamfeat.admin import ensure_topics, source_topic
from streamfeat.cli.produce import produce
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Source
from streamfeat.producer import event_time_reader, flight_events, produce_events
from streamfeat.serialization import SchemaStore

REPO = Path(__file__).resolve().parents[2]
FLIGHT_SCHEMA = "streamfeat.flights.Flight"

pytestmark = pytest.mark.integration


@pytest.fixture
def store() -> SchemaStore:
    return SchemaStore.from_dir(REPO / "schemas")


@pytest.fixture
def source(topic_name: str) -> Source:
    flights = load_topology(REPO / "topologies" / "flights.yml").source("flights")
    return flights.model_copy(update={"topic": topic_name})


def _consume(bootstrap: str, topic: str, expected: int) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sftest-{uuid.uuid4().hex[:10]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + 60
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            messages.extend(m for m in batch if m.error() is None)
    finally:
        consumer.close()
    return messages


def test_produced_flights_decode_back(bootstrap: str, source: Source, store: SchemaStore) -> None:
    events = list(flight_events(limit=3_000))
    ensure_topics(bootstrap, [source_topic(source)])

    summary = produce_events(events, bootstrap=bootstrap, source=source, store=store)
    messages = _consume(bootstrap, source.topic, len(events))

    decoder = store.decoder(FLIGHT_SCHEMA)
    read_time = event_time_reader(source, store.for_file(source.schema_file))
    by_id = {e["flight_id"]: e for e in events}
    assert summary.events == 3_000
    assert len(messages) == 3_000
    assert {m.partition() for m in messages} == {0, 1, 2, 3}
    for message in messages:
        event: dict[str, Any] = decoder.decode(message.value())
        assert message.key() == event["flight_id"].encode()
        assert event == by_id[event["flight_id"]]
        assert message.timestamp()[1] == read_time(event)


def test_each_partition_is_in_event_time_order(
    bootstrap: str, source: Source, store: SchemaStore
) -> None:
    events = list(flight_events(limit=2_000))
    ensure_topics(bootstrap, [source_topic(source)])

    produce_events(events, bootstrap=bootstrap, source=source, store=store)
    messages = _consume(bootstrap, source.topic, len(events))

    for partition in range(4):
        offsets_and_times = sorted(
            (m.offset(), m.timestamp()[1]) for m in messages if m.partition() == partition
        )
        times = [t for _, t in offsets_and_times]
        assert times == sorted(times)


def test_rate_caps_events_per_second(bootstrap: str, source: Source, store: SchemaStore) -> None:
    events = list(flight_events(limit=300))
    ensure_topics(bootstrap, [source_topic(source)])

    summary = produce_events(events, bootstrap=bootstrap, source=source, store=store, rate=1_000)

    assert summary.seconds >= 0.29


def test_cli_creates_topic_and_produces(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    text = (REPO / "topologies" / "flights.yml").read_text()
    text = text.replace("schemas_dir: ../schemas", f"schemas_dir: {REPO / 'schemas'}")
    text = text.replace("    topic: flights\n", f"    topic: {topic_name}\n")
    topology = tmp_path / "flights.yml"
    topology.write_text(text)
    app = typer.Typer()
    app.command()(produce)
    app.command("unused")(lambda: None)

    result = CliRunner().invoke(
        app,
        ["produce", str(topology), "--source", "flights", "--limit", "500"]
        + ["--bootstrap-servers", bootstrap],
    )

    assert result.exit_code == 0, result.output
    assert f"created topic {topic_name} (4 partitions)" in result.output
    assert f"produced 500 events to {topic_name}" in result.output
    assert len(_consume(bootstrap, topic_name, 500)) == 500


def test_cli_rejects_unknown_source(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(produce)
    app.command("unused")(lambda: None)

    result = CliRunner().invoke(
        app, ["produce", str(REPO / "topologies" / "flights.yml"), "--source", "ships"]
    )

    assert result.exit_code == 2
    assert "source 'ships' is not in" in result.output
