"""Run edge cases through the real worker: Kafka topics, RocksDB state, Redis and the feature log.

A test builds a topology in Python (``build_topology``) and gets a ``StreamCase`` for it from the
``stream_case`` fixture. It sends events to the source topic and lets the worker apply them. Then
it reads what the worker wrote: every record version of the feature-log topic, the dead letters
with the reasons from their headers, and the online store. The worker runs in a background
thread with a ``ManualClock`` as its processing clock, so the test sets idle periods and
``available_at``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streamfeat.admin.offsets import committed_offsets
from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.durations import to_ms
from streamfeat.definitions.loader import check_schemas
from streamfeat.definitions.models import Topology
from streamfeat.featurelog.codec import decode_record
from streamfeat.online import RedisOnlineStore
from streamfeat.online.store import OnlineValue
from streamfeat.serialization import SchemaStore, StoredSchema
from streamfeat.stream.topics import entities_of, repartition_topic, worker_topics
from streamfeat.stream.worker import Worker, WorkerConfig
from tests.aggregation.harness import ms
from tests.stream.outputs import (
    KAFKA_TIMEOUT_S,
    DeadLetter,
    FeatureLog,
    Values,
    Version,
    dead_letter_from,
    message_position,
    read_topic,
)

__all__ = [
    "DeadLetter",
    "FeatureLog",
    "ManualClock",
    "OnlineRow",
    "StreamCase",
    "Values",
    "Version",
    "build_topology",
    "writer_store",
]

SCHEMAS_DIR = Path(__file__).parent / "schemas"
EVENT_SCHEMA_FILE = "event.avsc"
"""Generic test event: nullable keys ``entity_id``, ``group_id``; ``ts``, ``amount``, ``score``."""

START_CLOCK = "2026-01-01T00:00:00.000Z"
"""Processing clock of a case unless the test sets it; later than every event time of the cases."""

POLL_INTERVAL_S = 0.25
APPLY_TIMEOUT_S = 30.0
IDLE_CHECK_INTERVAL_MS = 10
OnlineRow = tuple[str, int | None, int | None, Values | None]
"""One online read: status, stored as-of time, latest event time, values."""


class ManualClock:
    """Processing clock in epoch milliseconds that moves only when the test moves it."""

    def __init__(self, iso: str = START_CLOCK) -> None:
        self._now_ms = ms(iso)

    def __call__(self) -> int:
        return self._now_ms

    def set(self, iso: str) -> None:
        self._now_ms = ms(iso)

    def advance(self, duration: timedelta) -> None:
        self._now_ms += to_ms(duration)


def build_topology(
    name: str,
    *,
    views: Sequence[Mapping[str, Any]],
    entities: Mapping[str, Sequence[str]] | None = None,
    source: str = "events",
    schema_file: str = EVENT_SCHEMA_FILE,
    partitions: int = 1,
    allowed_lateness: str = "0s",
    idle_timeout: str = "30s",
    event_id: str | None = None,
) -> Topology:
    """Build a one-source topology whose topics all start with ``streamfeat.<name>.``.

    Each view names its ``entity`` (default ``e``, join key ``entity_id``); the source and its
    event-time field ``ts`` are filled in.
    """
    entity_keys = dict(entities) if entities is not None else {"e": ["entity_id"]}
    return Topology.model_validate(
        {
            "name": name,
            "schemas_dir": str(SCHEMAS_DIR),
            "entities": [{"name": e, "join_keys": list(keys)} for e, keys in entity_keys.items()],
            "sources": [
                {
                    "name": source,
                    "topic": f"streamfeat.{name}.{source}.input",
                    "schema": schema_file,
                    "partitions": partitions,
                    "event_time": {"field": "ts"},
                    "allowed_lateness": allowed_lateness,
                    "idle_timeout": idle_timeout,
                    "event_id": event_id,
                }
            ],
            "feature_views": [{"entity": "e", "source": source, **view} for view in views],
        }
    )


def writer_store(file_name: str) -> SchemaStore:
    """A store whose only current schema is a past version from ``schemas/previous/``.

    Its ``encode`` writes messages as an older producer would, with that version's fingerprint.
    """
    path = SCHEMAS_DIR / "previous" / file_name
    return SchemaStore([StoredSchema.from_json(json.loads(path.read_text()), str(path))])


class WorkerThread:
    """Runs ``Worker.run`` in a background thread and counts its loop iterations."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.iterations = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamfeat-test-worker")
        self._thread.start()

    def _until(self) -> bool:
        self.iterations += 1
        return self._stopping.is_set()

    def _run(self) -> None:
        try:
            self.worker.run(until=self._until)
        except BaseException as error:  # handed to the test thread by check()
            self.error = error

    def check(self) -> None:
        """Raise the worker's error in the test thread, if it failed."""
        if self.error is not None:
            raise AssertionError(f"the worker failed: {self.error!r}") from self.error
        if not self._thread.is_alive():
            raise AssertionError("the worker stopped before the test asked it to")

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=APPLY_TIMEOUT_S)
        if self._thread.is_alive():
            raise AssertionError(f"the worker did not stop within {APPLY_TIMEOUT_S:g} s")
        if self.error is not None:
            raise AssertionError(f"the worker failed: {self.error!r}") from self.error


class StreamCase:
    """One topology on the local Kafka broker and Redis server, and the worker that runs it."""

    def __init__(
        self,
        topology: Topology,
        *,
        bootstrap: str,
        redis_client: redis.Redis,
        state_dir: Path,
        clock: ManualClock | None = None,
    ) -> None:
        check_schemas(topology, SCHEMAS_DIR)
        self.topology = topology
        self.bootstrap = bootstrap
        self.state_dir = state_dir
        self.clock = clock or ManualClock()
        self.schemas = SchemaStore.from_dir(SCHEMAS_DIR)
        self.source = topology.sources[0]
        self.schema_name = self.schemas.for_file(self.source.schema_file).name
        self.key_prefix = f"sftest-{topology.name}"
        self.group_id = f"sftest-{topology.name}"
        self._redis = redis_client
        self.online_store = RedisOnlineStore(redis_client, topology, key_prefix=self.key_prefix)
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        self._labels: dict[tuple[int, int], str] = {}
        self._delivered: list[Message] = []
        self._run: WorkerThread | None = None
        self.workers: list[Worker] = []
        self._groups = [self.group_id]
        self._monitor = self._monitor_consumer()
        ensure_topics(bootstrap, worker_topics(topology))

    # Input

    def send(
        self, label: str, *, partition: int = 0, writer: SchemaStore | None = None, **fields: Any
    ) -> None:
        """Encode ``fields`` as one event and produce it; ``ts`` may be an ISO-8601 UTC string."""
        if isinstance(fields.get("ts"), str):
            fields["ts"] = ms(fields["ts"])
        store = writer if writer is not None else self.schemas
        self.send_raw(label, store.encode(self.schema_name, fields), partition=partition)

    def send_raw(self, label: str, data: bytes, *, partition: int = 0) -> None:
        """Produce ``data`` as it is, and remember which offset carries ``label``."""
        self._producer.produce(
            self.source.topic, value=data, partition=partition, on_delivery=self._on_delivery
        )
        if self._producer.flush(KAFKA_TIMEOUT_S) != 0 or not self._delivered:
            raise AssertionError(f"event {label} was not delivered to {self.source.topic}")
        self._labels[message_position(self._delivered.pop())] = label

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self._delivered.append(message)

    # Worker

    def start(self, *, new_group: bool = False) -> Worker:
        """Start a worker on the case's state folder and consumer group.

        ``new_group`` moves the worker to a consumer group with no committed offsets, as if
        the commits of the previous worker had been lost.
        """
        if self._run is not None:
            raise AssertionError("a worker is already running; stop it first")
        if new_group:
            self._monitor.close()
            self.group_id = f"sftest-{self.topology.name}-{len(self._groups)}"
            self._groups.append(self.group_id)
            self._monitor = self._monitor_consumer()
        config = WorkerConfig(
            bootstrap_servers=self.bootstrap,
            state_dir=self.state_dir,
            group_id=self.group_id,
            idle_check_interval_ms=IDLE_CHECK_INTERVAL_MS,
        )
        worker = Worker(self.topology, self.schemas, self.online_store, config, clock=self.clock)
        self.workers.append(worker)
        self._run = WorkerThread(worker)
        return worker

    def stop(self) -> None:
        """Stop the running worker after its current batch."""
        if self._run is not None:
            run, self._run = self._run, None
            run.stop()

    def apply(self) -> None:
        """Start the worker when none runs, and wait until it applied every input message."""
        if self._run is None:
            self.start()
        self.wait_applied()

    def pause(self, duration: timedelta) -> None:
        """Let ``duration`` of processing time pass with no input, and wait for its effects."""
        if self._run is None:
            raise AssertionError("pause needs a running worker; call apply first")
        self.clock.advance(duration)
        target = self._run.iterations + 2
        # Two loop iterations later, a whole batch has run with the new clock, so any idle
        # partition has sent its clock marks. wait_applied then waits until they are applied.
        self._wait(lambda: self._run is not None and self._run.iterations >= target, "2 batches")
        self.wait_applied()

    def wait_applied(self) -> None:
        """Wait until the committed offsets reach the end of the source and repartition topics."""
        self._wait(self._all_applied, "committed offsets to reach the end offsets")

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while True:
            if self._run is not None:
                self._run.check()
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {APPLY_TIMEOUT_S:g} s waiting for {what}")
            time.sleep(POLL_INTERVAL_S)

    def input_partitions(self) -> list[TopicPartition]:
        """Every partition the worker consumes: the source topic's and the repartition topics'."""
        topics = [self.source.topic] + [
            repartition_topic(self.topology, self.source, entity)
            for entity in entities_of(self.topology, self.source)
        ]
        return [TopicPartition(t, p) for t in topics for p in range(self.source.partitions)]

    def _monitor_consumer(self) -> Consumer:
        # The monitor shares the worker's group id to read its commits; it never subscribes,
        # so it never joins the group.
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group_id,
                "enable.auto.commit": False,
            }
        )

    def _all_applied(self) -> bool:
        committed = committed_offsets(self._monitor, self.input_partitions(), KAFKA_TIMEOUT_S)
        for tp in committed:
            low, high = self._monitor.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_S)
            position = tp.offset if tp.offset >= 0 else low
            if position < high:
                return False
        return True

    # Output

    def feature_log(self) -> FeatureLog:
        """Every record version of the feature-log topic, read now."""
        messages = read_topic(self.bootstrap, self.topology.feature_log)
        records = [decode_record(message.value()) for message in messages]
        return FeatureLog(self.topology, records)

    def dead_letters(self) -> list[DeadLetter]:
        """Every message of the dead-letter topic, labelled by its source partition and offset."""
        messages = read_topic(self.bootstrap, self.topology.dead_letters)
        return [dead_letter_from(message, self._labels) for message in messages]

    def online(self, view: str, entities: Sequence[str], as_of_iso: str) -> list[OnlineValue]:
        """Read single-key entities from the online store as of ``as_of_iso``."""
        as_of = datetime.fromisoformat(as_of_iso.replace("Z", "+00:00"))
        return self.online_store.read(view, [(entity,) for entity in entities], as_of)

    def online_row(self, view: str, entity: str, as_of_iso: str) -> OnlineRow:
        """(status, stored as-of time, latest event time, values) of one online read."""
        value = self.online(view, [entity], as_of_iso)[0]
        names = self.feature_names(view)
        values = None if value.values is None else [value.values[n] for n in names]
        return (value.status.value, value.as_of_ms, value.latest_event_ts_ms, values)

    def online_keys(self) -> list[str]:
        """Every Redis key under this case's prefix, sorted."""
        return sorted(
            key.decode() for key in self._redis.scan_iter(match=f"{self.key_prefix}:*", count=1000)
        )

    def feature_names(self, view: str) -> list[str]:
        return [feature.name for feature in self.topology.view(view).features]

    # Cleanup

    def close(self) -> None:
        """Stop the worker and delete the case's topics, consumer group and Redis keys."""
        try:
            self.stop()
        finally:
            self._producer.flush(KAFKA_TIMEOUT_S)
            self._monitor.close()
            for key in self.online_keys():
                self._redis.delete(key)
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            prefix = f"streamfeat.{self.topology.name}."
            topics = [
                t for t in admin.list_topics(timeout=KAFKA_TIMEOUT_S).topics if t.startswith(prefix)
            ]
            for future in admin.delete_topics(topics, operation_timeout=30).values():
                future.result(timeout=30)
            for future in admin.delete_consumer_groups(self._groups).values():
                # A group that never committed does not exist, and deleting it fails.
                with contextlib.suppress(KafkaException):
                    future.result(timeout=30)
