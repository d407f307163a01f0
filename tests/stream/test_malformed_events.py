"""Thirty kinds of malformed flight events mixed into a week's replay, through the real worker.

Each malformed message must land in the dead-letter topic under its reason, the worker must run
through without an error, and the valid events must each count once: the stream's final
records equal a backfill of the valid events.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import FeatureView, Topology
from streamfeat.featurelog.codec import decode_record
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.offline.backfill import backfill
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.producer.flights import flight_events
from streamfeat.serialization import HEADER_LENGTH, MAGIC, SchemaStore
from streamfeat.serialization.times import local_ms_to_utc_ms
from streamfeat.settings import Settings
from streamfeat.stream.topics import entities_of, repartition_topic, worker_topics
from streamfeat.stream.worker import Worker, WorkerConfig
from tests.consistency.archives import ArchiveRecords, same_value
from tests.consistency.month_pipeline import AllApplied
from tests.stream.outputs import dead_letter_from, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY_FILE = ROOT / "topologies" / "flights.yml"
WEEK_START = datetime(2013, 3, 4)
WEEK_END = datetime(2013, 3, 11)
ZONE = "America/New_York"
SEED = 20130304
"""Seed of the random bytes and of where the malformed messages go among the valid ones."""

Encode = Callable[[dict[str, Any]], bytes]


@dataclass(frozen=True)
class Kind:
    """One way an event can be malformed and the reason it must get.

    A kind either changes fields of a valid event (``fields``) or builds the message bytes from
    the valid event's encoding (``make``).
    """

    name: str
    reason: str
    fields: dict[str, Any] | None = None
    make: Callable[[bytes], bytes | None] | None = None
    feeds_other_views: bool = False
    """True when the event lacks only some views' keys and still counts for the others."""

    def message(self, event: dict[str, Any], encode: Encode) -> bytes | None:
        if self.fields is not None:
            return encode({**event, **self.fields})
        assert self.make is not None
        return self.make(encode(event))


def _replace_flight_id(data: bytes, encoded: bytes) -> bytes:
    """Swap the Avro flight_id (the first field: one length byte, then the text) for ``encoded``."""
    length = data[HEADER_LENGTH] // 2
    return data[:HEADER_LENGTH] + encoded + data[HEADER_LENGTH + 1 + length :]


def _bad_union_branch(data: bytes) -> bytes:
    """Put branch 7 where the two-branch tailnum union starts (the first ``null`` or string)."""
    decoded = FLIGHTS.decode(data)
    with_plane = FLIGHTS_STORE.encode(FLIGHT_SCHEMA, {**decoded, "tailnum": "N1"})
    without_plane = FLIGHTS_STORE.encode(FLIGHT_SCHEMA, {**decoded, "tailnum": None})
    pairs = zip(with_plane, without_plane, strict=False)
    position = next(i for i, (a, b) in enumerate(pairs) if a != b)
    return with_plane[:position] + bytes([7 * 2]) + with_plane[position + 1 :]


FLIGHTS_STORE = SchemaStore.from_dir(ROOT / "schemas")
FLIGHT_SCHEMA = FLIGHTS_STORE.for_file("flight.avsc").name
FLIGHTS = FLIGHTS_STORE.decoder(FLIGHT_SCHEMA)
RANDOM_BYTES = random.Random(SEED).randbytes(64)
UNKNOWN_FINGERPRINT = bytes.fromhex("0123456789abcdef")

KINDS = [
    Kind("no value", "undecodable", make=lambda data: None),
    Kind("empty value", "undecodable", make=lambda data: b""),
    Kind("short header", "undecodable", make=lambda data: data[:5]),
    Kind("wrong marker", "undecodable", make=lambda data: b"\xc3\x02" + data[2:]),
    Kind("header only", "undecodable", make=lambda data: data[:HEADER_LENGTH]),
    Kind("truncated body", "undecodable", make=lambda data: data[: len(data) // 2]),
    Kind("last byte cut", "undecodable", make=lambda data: data[:-1]),
    Kind("trailing bytes", "undecodable", make=lambda data: data + b"\x00\x02"),
    Kind("random bytes", "undecodable", make=lambda data: RANDOM_BYTES),
    Kind(
        "unknown fingerprint",
        "unknown_schema",
        make=lambda data: MAGIC + UNKNOWN_FINGERPRINT + data[HEADER_LENGTH:],
    ),
    Kind(
        "invalid UTF-8 in a string",
        "undecodable",
        make=lambda data: _replace_flight_id(data, bytes([4 * 2]) + b"\xff\xfe\xfd\xfc"),
    ),
    Kind(
        "negative string length",
        "undecodable",
        make=lambda data: _replace_flight_id(data, b"\x01"),
    ),
    Kind(
        "string length past the end",
        "undecodable",
        make=lambda data: _replace_flight_id(data, b"\xfe\xff\xff\xff\x0f"),
    ),
    Kind("union branch out of range", "undecodable", make=_bad_union_branch),
    Kind("empty carrier key", "missing_key", {"carrier": ""}, feeds_other_views=True),
    Kind("null tailnum key", "missing_key", {"tailnum": None}, feeds_other_views=True),
    Kind("empty tailnum key", "missing_key", {"tailnum": ""}, feeds_other_views=True),
    Kind("empty origin", "constraint", {"origin": ""}),
    Kind("unknown origin", "constraint", {"origin": "XYZ"}),
    Kind("NaN departure delay", "not_finite", {"dep_delay": math.nan}),
    Kind("infinite arrival delay", "not_finite", {"arr_delay": math.inf}),
    Kind("minus infinite distance", "not_finite", {"distance": -math.inf}),
    Kind("negative distance", "constraint", {"distance": -12.0}),
    Kind("departure in 1970", "out_of_range", {"sched_dep_local": 3_600_000}),
    Kind("departure in 2100", "out_of_range", {"sched_dep_local": 4_102_444_800_000}),
    Kind("oversized flight id", "constraint", {"flight_id": "F" * 100_000}),
    Kind("oversized tail number", "constraint", {"tailnum": "N" * 5_000}),
    Kind("oversized carrier", "constraint", {"carrier": "C" * 300}),
]
"""Kinds made from one valid event; a duplicate and a late event are added apart."""


@pytest.fixture
def topology() -> Iterator[Topology]:
    base = load_topology(TOPOLOGY_FILE)
    name = f"malformed_{uuid.uuid4().hex[:10]}"
    source = base.source("flights").model_copy(update={"topic": f"sftest-{name}", "partitions": 1})
    topology = base.model_copy(update={"name": name, "sources": (source,)})
    bootstrap = Settings.from_env().kafka_bootstrap
    ensure_topics(bootstrap, worker_topics(topology))
    yield topology
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [spec.name for spec in worker_topics(topology)]
    for future in admin.delete_topics(names, operation_timeout=30).values():
        future.result()


def week_events() -> list[dict[str, Any]]:
    start_ms, end_ms = (
        (moment - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
        for moment in (WEEK_START, WEEK_END)
    )
    return [e for e in flight_events() if start_ms <= e["sched_dep_local"] < end_ms]


@dataclass
class Replay:
    """Messages in produce order (label, expected reason or None, value) and the events a
    backfill of the same input keeps."""

    messages: list[tuple[str, str | None, bytes | None]] = field(default_factory=list)
    backfill_events: list[dict[str, Any]] = field(default_factory=list)


def mixed_replay(events: list[dict[str, Any]], encode: Encode) -> Replay:
    """Put one message of each kind, a duplicate and a late event among ``events``."""
    spots = sorted(random.Random(SEED).sample(range(100, len(events) - 100), len(KINDS) + 2))
    malformed = dict(zip(spots[:-2], KINDS, strict=True))
    duplicate_spot, late_spot = spots[-2:]
    replay = Replay()
    for index, event in enumerate(events):
        replay.messages.append((event["flight_id"], None, encode(event)))
        replay.backfill_events.append(event)
        kind = malformed.get(index)
        if kind is not None:
            template = {**event, "flight_id": f"{event['flight_id']}/{index}"}
            replay.messages.append((kind.name, kind.reason, kind.message(template, encode)))
            if kind.feeds_other_views:
                replay.backfill_events.append({**template, **(kind.fields or {})})
        elif index == duplicate_spot:
            again = encode({**event, "dep_delay": 999.0})
            replay.messages.append(("duplicate event id", "duplicate", again))
        elif index == late_spot:
            day_before = event["sched_dep_local"] - 86_400_000
            late = encode({**event, "flight_id": "late", "sched_dep_local": day_before})
            replay.messages.append(("late event", "late", late))
    return replay


def run_worker(topology: Topology, store: SchemaStore, state_dir: Path) -> int:
    """Run one worker until it applied all input; return the source events it read."""
    settings = Settings.from_env()
    bootstrap = settings.kafka_bootstrap
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"sftest-{topology.name}"
    group = f"streamfeat.{topology.name}.worker"
    source = topology.sources[0]
    repartition = [repartition_topic(topology, source, e) for e in entities_of(topology, source)]
    applied = AllApplied(bootstrap, group, [source.topic], repartition, source.partitions)
    online = RedisOnlineStore(client, topology, key_prefix=prefix)
    worker = Worker(topology, store, online, WorkerConfig(bootstrap, state_dir, group_id=group))
    try:
        return worker.run(until=applied).source_events
    finally:
        applied.close()
        for key in client.scan_iter(match=f"{prefix}:*", count=1_000):
            client.delete(key)
        client.close()


def streamed_records(
    topology: Topology, view: FeatureView, until_ms: int
) -> dict[tuple[str, int], tuple[int, dict[str, Any]]]:
    """Newest version per (entity, event_ts) in the feature log, up to ``until_ms``."""
    bootstrap = Settings.from_env().kafka_bootstrap
    newest: dict[tuple[str, int], FeatureRecord] = {}
    for message in read_topic(bootstrap, topology.feature_log):
        record = decode_record(message.value())
        if record.view != view.name or record.event_ts_ms > until_ms:
            continue
        key = (record.entity[0], record.event_ts_ms)
        if key not in newest or record.available_at_ms >= newest[key].available_at_ms:
            newest[key] = record
    return {k: (r.latest_event_ts_ms, r.values) for k, r in newest.items()}


def differences(
    view: str,
    expected: dict[tuple[str, int], tuple[int, dict[str, Any]]],
    actual: dict[tuple[str, int], tuple[int, dict[str, Any]]],
) -> list[str]:
    problems = [f"{view} {key}: missing" for key in sorted(expected.keys() - actual.keys())]
    problems += [f"{view} {key}: not expected" for key in sorted(actual.keys() - expected.keys())]
    for key in sorted(expected.keys() & actual.keys()):
        (latest, values), (actual_latest, actual_values) = expected[key], actual[key]
        same = latest == actual_latest and all(
            same_value(values[name], actual_values[name]) for name in values
        )
        if not same:
            problems.append(f"{view} {key}: expected {expected[key]}, got {actual[key]}")
    return problems


def test_malformed_events_become_dead_letters(topology: Topology, tmp_path: Path) -> None:
    bootstrap = Settings.from_env().kafka_bootstrap
    schemas_dir = TOPOLOGY_FILE.parent / topology.schemas_dir
    store = SchemaStore.from_dir(schemas_dir)
    replay = mixed_replay(week_events(), lambda event: store.encode(FLIGHT_SCHEMA, event))
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for label, _, value in replay.messages:
        producer.produce(topology.sources[0].topic, value=value, key=label[:100].encode())
    assert producer.flush(30) == 0

    source_events = run_worker(topology, store, tmp_path / "state")

    assert source_events == len(replay.messages)
    labels = {(0, offset): label for offset, (label, _, _) in enumerate(replay.messages)}
    letters = {
        letter.offset: letter
        for letter in (
            dead_letter_from(message, labels)
            for message in read_topic(bootstrap, topology.dead_letters)
        )
    }
    for offset, (label, reason, _) in enumerate(replay.messages):
        letter = letters.get(offset)
        if reason is not None:
            assert letter is not None, f"{label} at offset {offset} is not a dead letter"
            assert (label, letter.reason) == (label, reason), letter.detail
        elif letter is not None:
            # Valid flights without a plane feed the other views and miss only plane_7d.
            assert (letter.reason, letter.views) == ("missing_key", ("plane_7d",)), label

    archive, events_file = tmp_path / "backfill", tmp_path / "backfill-events.parquet"
    pq.write_table(pa.Table.from_pylist(replay.backfill_events), events_file)
    backfill(topology, "flights", events_file, archive, schemas_dir)
    event_times = (e["sched_dep_local"] for e in replay.backfill_events)
    last_event_ms = max(local_ms_to_utc_ms(local_ms, ZONE) for local_ms in event_times)
    problems: list[str] = []
    for view in topology.feature_views:
        backfilled = ArchiveRecords.read(topology, archive, view).final_records()
        expected = {key: c for key, c in backfilled.items() if key[1] <= last_event_ms}
        problems += differences(
            view.name, expected, streamed_records(topology, view, last_event_ms)
        )
    assert not problems, f"{len(problems)} records differ; first: {problems[:5]}"
