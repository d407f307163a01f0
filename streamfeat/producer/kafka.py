"""Replay source events into Kafka: Avro single-object values, event time as message timestamp."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streamfeat.definitions.models import Source
from streamfeat.errors import StackError
from streamfeat.serialization import SchemaStore, StoredSchema
from streamfeat.serialization._logical import INSTANT_TYPES, LOCAL_TYPES, timestamp_type
from streamfeat.serialization.times import local_ms_to_utc_ms, parse_iso_ms

logger = logging.getLogger(__name__)

PRODUCER_CONFIG: Mapping[str, str | int | bool] = {
    # Batches of up to 16 KiB (about a hundred events per partition) that wait at most 20 ms,
    # compressed with lz4. Consumers fetch whole batches, so small ones keep the partitions of a
    # replay interleaved in event time at the worker; megabyte batches hand it days of one
    # partition at a time, which the aggregator then has to correct.
    "linger.ms": 20,
    "batch.size": 16_384,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    # Idempotence keeps per-partition order across retries, which event-time order relies on.
    "enable.idempotence": True,
}

PROGRESS_EVERY = 1_000
"""Events between two progress callbacks."""

DEFAULT_FLUSH_TIMEOUT = timedelta(seconds=60)


@dataclass(frozen=True)
class ProduceSummary:
    """Result of a replay: topic, event count, event-time span and duration in seconds."""

    topic: str
    events: int
    first_event_ms: int | None
    last_event_ms: int | None
    seconds: float


def event_time_reader(source: Source, schema: StoredSchema) -> Callable[[Mapping[str, Any]], int]:
    """Return a function that reads an event's time as UTC epoch milliseconds.

    The loader has already checked that the field exists and has a time type, with a zone
    declared when its values are local times.
    """
    name, zone = source.event_time.field, source.event_time.zone
    field = next(f for f in schema.parsed["fields"] if f["name"] == name)
    logical = timestamp_type(field["type"])
    if logical in INSTANT_TYPES:
        return lambda event: int(event[name])
    if logical in LOCAL_TYPES and zone is not None:
        return lambda event: local_ms_to_utc_ms(event[name], zone)
    return lambda event: parse_iso_ms(event[name], zone)


class _Deliveries:
    """Delivery reports: counts what Kafka acknowledged and keeps the first failure."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: KafkaError | None = None

    def __call__(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = error


def produce_events(
    events: Iterable[Mapping[str, Any]],
    *,
    bootstrap: str,
    source: Source,
    store: SchemaStore,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    flush_timeout: timedelta = DEFAULT_FLUSH_TIMEOUT,
) -> ProduceSummary:
    """Encode ``events`` with the source's schema and produce them to its topic, in order.

    The key is the event id (when the source declares one), the message timestamp the event
    time. ``rate`` caps events per second. ``on_progress`` gets the count of newly sent events.
    Raises StackError when Kafka does not acknowledge every event.
    """
    schema = store.for_file(source.schema_file)
    read_time = event_time_reader(source, schema)
    deliveries = _Deliveries()
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": logger, **PRODUCER_CONFIG}
    producer = Producer(config)
    started = time.monotonic()
    first_ms: int | None = None
    event_ms: int | None = None
    count = 0
    for event in events:
        event_ms = read_time(event)
        first_ms = event_ms if first_ms is None else first_ms
        key = None if source.event_id is None else str(event[source.event_id]).encode()
        value = store.encode(schema.name, event)
        _send(producer, source.topic, key, value, event_ms, deliveries)
        count += 1
        if rate is not None:
            _pace(started, count, rate)
        if on_progress is not None and count % PROGRESS_EVERY == 0:
            on_progress(PROGRESS_EVERY)
    _flush(producer, source.topic, flush_timeout, deliveries)
    if on_progress is not None and count % PROGRESS_EVERY:
        on_progress(count % PROGRESS_EVERY)
    seconds = time.monotonic() - started
    logger.info("events_produced topic=%s events=%d seconds=%.1f", source.topic, count, seconds)
    return ProduceSummary(source.topic, count, first_ms, event_ms, seconds)


def _send(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes,
    event_ms: int,
    deliveries: _Deliveries,
) -> None:
    # NOTE: Kafka has no message timestamp before the epoch, and confluent-kafka reads 0 as
    # "now", so events at or before 1970-01-01T00:00:00Z carry the broker's time instead.
    timestamp = event_ms if event_ms > 0 else 0
    while True:
        try:
            producer.produce(topic, value, key, timestamp=timestamp, on_delivery=deliveries)
            break
        except BufferError:
            # The local queue is full: serve delivery reports until batches have left.
            producer.poll(0.05)
    producer.poll(0)


def _pace(started: float, count: int, rate: float) -> None:
    ahead = started + count / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)


def _flush(producer: Producer, topic: str, timeout: timedelta, deliveries: _Deliveries) -> None:
    remaining = producer.flush(timeout.total_seconds())
    if remaining:
        raise StackError(
            f"{remaining} events to topic {topic!r} were not acknowledged within "
            f"{timeout.total_seconds():g}s; check that Kafka runs and the topic exists"
        )
    if deliveries.failed:
        error = deliveries.first_error
        reason = error.str() if error is not None else "unknown error"
        raise StackError(
            f"{deliveries.failed} events to topic {topic!r} failed delivery (first error: "
            f"{reason}); check the broker's log and the topic"
        )
