"""The worker process: consume, route, aggregate, write; one batch at a time.

Each batch runs in a fixed order, so that a crash at any point loses nothing. First it produces
forwards, dead letters and feature-log records and waits for the broker's acknowledgement. Then
it writes the online store, then every partition's RocksDB state with the input offset it
accounts for, and last it commits offsets to Kafka. A restarted worker skips input it already
applied.

A partition with no local state is read from its beginning, which rebuilds its state from the
retained input topic.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streamfeat.definitions.models import Topology
from streamfeat.errors import OnlineStoreUnavailable
from streamfeat.featurelog.codec import encode_record
from streamfeat.featurelog.record import FeatureRecord, log_key
from streamfeat.observability.ratelimit import RateLimitedLog
from streamfeat.online.store import OnlineStore
from streamfeat.serialization import SchemaStore
from streamfeat.serialization.times import wall_clock_ms
from streamfeat.stream import messages
from streamfeat.stream.aggregator import AggregatorTask
from streamfeat.stream.assigned_state import open_assigned_states
from streamfeat.stream.dead_letters import dead_lettered_offsets
from streamfeat.stream.fencing import RejoinBudget, leaves_consumer_unusable
from streamfeat.stream.merge import SourceMerger
from streamfeat.stream.outages import (
    Backoff,
    ServiceHealth,
    call_until_available,
    client_logging,
)
from streamfeat.stream.router import Output, RouterTask, SourceRoute, message_offset
from streamfeat.stream.state import PartitionState
from streamfeat.stream.topics import entities_of, repartition_topic

logger = logging.getLogger(__name__)

_AFTER_EVENTS = 2**63
"""Sort key that puts clock marks after every event of a batch."""
_FLUSH_WAIT_S = 5.0
_DEAD_LETTER_CLOCK_MARGIN_MS = 5 * 60 * 1000
"""How far before a state's last commit the dead-letter read starts, for hosts whose clocks
differ."""

Clock = Callable[[], int]
"""Returns the processing time in epoch milliseconds (tests may pass their own)."""


@dataclass(frozen=True)
class WorkerConfig:
    """Worker settings: Kafka address, state folder, batch size and timings."""

    bootstrap_servers: str
    state_dir: Path
    batch_size: int = 2_000
    poll_timeout_s: float = 0.2
    batch_wait_s: float = 0.01
    """Maximum wait for a batch to fill once messages flow; it bounds the latency a batch adds."""
    idle_check_interval_ms: int = 1_000
    group_id: str | None = None
    partition_fetch_bytes: int = 16_384
    instance_id: str | None = None
    """Static group membership: a restarted worker with the same id gets its partitions back
    without a rebalance, if it returns within the session timeout."""
    session_timeout_ms: int = 10_000
    """How long the group waits for a silent worker before moving its partitions to others."""
    backoff: Backoff = field(default_factory=Backoff)
    """Pauses between attempts to write to an online store that does not respond."""


_Forward = tuple[int, int, Message, messages.Forwarded, AggregatorTask]
"""A queued repartition message: sort key, arrival index, message, content, task."""


@dataclass
class _Batch:
    """Outputs of one batch so far and the tasks it touched."""

    outputs: list[Output] = field(default_factory=list)
    forwarded: list[_Forward] = field(default_factory=list)
    routers: set[tuple[str, int]] = field(default_factory=set)
    aggregators: set[tuple[str, int]] = field(default_factory=set)


@dataclass
class WorkerStats:
    """Counters of one worker process since it started."""

    source_events: int = 0
    forwarded: int = 0
    records: int = 0
    online_replaced: int = 0
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)


class Worker:
    """Runs the router and the aggregator for the partitions Kafka assigns to this process."""

    def __init__(
        self,
        topology: Topology,
        schemas: SchemaStore,
        online: OnlineStore,
        config: WorkerConfig,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.topology = topology
        self.online = online
        self.config = config
        self.clock = clock
        self.stats = WorkerStats()
        self._stopping = False
        self._unchecked_routers: set[tuple[str, int]] = set()
        self._assigned_offsets: list[TopicPartition] = []
        self._assigned_start: dict[tuple[str, int], int] = {}
        self._routes = {
            source.topic: SourceRoute.build(
                topology, source, schemas.decoder(schemas.for_file(source.schema_file).name)
            )
            for source in topology.sources
        }
        self._repartition: dict[str, tuple[Any, list[Any]]] = {}
        for source in topology.sources:
            for entity in entities_of(topology, source):
                views = [v for v in topology.views_of(source.name) if v.entity == entity]
                self._repartition[repartition_topic(topology, source, entity)] = (source, views)
        self._versions = {view.name: view.version for view in topology.feature_views}
        self._routers: dict[tuple[str, int], RouterTask] = {}
        self._aggregators: dict[tuple[str, int], AggregatorTask] = {}
        self._online_health = ServiceHealth("online_store")
        self._kafka_health = ServiceHealth("kafka")
        self._kafka_errors = RateLimitedLog(logger, interval_s=60.0)
        kafka_logging = client_logging(self._on_kafka_error)
        self._producer = Producer(
            {
                **kafka_logging,
                # A delivery waits through a broker outage instead of failing after 5 min.
                "message.timeout.ms": 0,
                "bootstrap.servers": config.bootstrap_servers,
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
            }
        )
        self._consumer_config = {
            **kafka_logging,
            "bootstrap.servers": config.bootstrap_servers,
            "group.id": config.group_id or f"streamfeat.{topology.name}.worker",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": 300_000,
            "session.timeout.ms": config.session_timeout_ms,
            **({"group.instance.id": config.instance_id} if config.instance_id else {}),
            # Small per-partition fetches make one batch interleave the partitions finely in
            # event time. Large ones hand over days of one partition at a time when replaying
            # history, and every such interleave costs corrections downstream.
            "max.partition.fetch.bytes": config.partition_fetch_bytes,
        }
        self._consumer = Consumer(self._consumer_config)
        self._rejoins = RejoinBudget()
        self._consumer_broken = False
        self._delivery_errors: list[str] = []
        self._fatal_error: KafkaError | None = None
        self._last_idle_check_ms = 0
        self._last_available_ms = 0
        self._merger = SourceMerger(max_buffered=config.batch_size * 10)

    def stop(self) -> None:
        """Ask the loop to finish its batch and return."""
        self._stopping = True

    def run(self, *, until: Callable[[], bool] | None = None) -> WorkerStats:
        """Process batches until ``stop`` is called or ``until`` returns True."""
        self._subscribe()
        logger.info("worker_started topology=%s", self.topology.name)
        try:
            while not self._stopping and not (until is not None and until()):
                self.run_batch()
                if self._consumer_broken:
                    self._rejoin()
        finally:
            self._close()
        if self._fatal_error is not None:
            raise KafkaException(self._fatal_error)
        return self.stats

    def _subscribe(self) -> None:
        topics = list(self._routes) + list(self._repartition)
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        logger.info("subscribed topics=%d", len(topics))

    def _rejoin(self) -> None:
        """Replace a consumer that failed with a new one that joins the group again.

        The tasks close first. The new assignment reopens their state, and processing resumes
        after the offsets that state holds. A batch the group did not see committed is
        therefore not counted twice.
        """
        self._consumer_broken = False
        self._close_tasks()
        try:
            self._consumer.close()
        except KafkaException as error:
            logger.info("consumer_close_failed error=%s", error)
        self._consumer = Consumer(self._consumer_config)
        self._subscribe()

    def run_batch(self) -> None:
        """Consume one batch and carry it through to committed state and offsets."""
        messages_in = self._next_messages()
        if self._unchecked_routers:
            self._check_dead_letters()
        if self._assigned_offsets:
            self._commit_assigned_offsets()
        # available_at rises with every batch that writes records, so versions never tie.
        now_ms = max(self.clock(), self._last_available_ms + 1)
        batch = _Batch()
        for message in messages_in:
            self._dispatch(message, now_ms, batch)
        for task_key, message in self._merger.drain(list(self._routers), self._has_unread):
            self._routers[task_key].process(message, now_ms, batch.outputs.append)
            self.stats.source_events += 1
            batch.routers.add(task_key)
        records = self._aggregate(batch.forwarded, now_ms)
        if records:
            self._last_available_ms = now_ms
        batch.routers |= self._tick_idle(now_ms)
        for task_key in batch.routers:
            batch.outputs.extend(self._routers[task_key].marks())
        self._write(batch.outputs, records)
        self._commit(batch.routers, batch.aggregators)
        if messages_in:
            self._kafka_health.answered()

    def _next_messages(self) -> list[Message]:
        """Return up to a batch of messages, waiting at most ``batch_wait_s`` for it to fill.

        ``consume(n, timeout)`` waits for ``n`` messages or the whole timeout. With the poll
        timeout, each event at a low rate would wait it out twice (source, then repartition
        topic). So a batch waits only ``batch_wait_s``, and an empty queue waits for one message.
        """
        size = self.config.batch_size
        fetched = self._consumer.consume(size, self.config.batch_wait_s)
        if fetched:
            return fetched
        first = self._consumer.poll(self.config.poll_timeout_s)
        if first is None:
            return []
        return [first, *self._consumer.consume(size - 1, 0)] if size > 1 else [first]

    def _dispatch(self, message: Message, now_ms: int, batch: _Batch) -> None:
        """Buffer a source message for the merge; queue a repartition message to aggregate."""
        if message.error() is not None:
            self._log_consume_error(message)
            return
        task_key = (message.topic() or "", message.partition() or 0)
        if task_key in self._routers:
            self._merger.add(task_key, message)
            return
        aggregator = self._aggregators.get(task_key)
        if aggregator is None or aggregator.is_applied(message_offset(message)):
            return
        unpacked = messages.unpack(message.value() or b"")
        order = unpacked.event_ms if unpacked.kind == messages.EVENT else _AFTER_EVENTS
        batch.forwarded.append((order, len(batch.forwarded), message, unpacked, aggregator))
        if task_key not in batch.aggregators:
            batch.aggregators.add(task_key)
            aggregator.begin_batch()

    def _aggregate(self, forwarded: list[_Forward], now_ms: int) -> list[FeatureRecord]:
        """Apply queued repartition messages in event-time order; return the batch's records.

        Event-time order, with clock marks after the events, spares most of the corrections
        that the interleaving of several source partitions would cause.
        """
        forwarded.sort(key=lambda item: (item[0], item[1]))
        records: list[FeatureRecord] = []
        for _, _, message, unpacked, aggregator in forwarded:
            offset = message_offset(message)
            emissions = aggregator.process(offset, message.key(), unpacked)
            records.extend(aggregator.records(emissions, self._versions, now_ms))
            aggregator.end_batch(offset)
        return _final_versions(records)

    def _has_unread(self, key: tuple[str, int]) -> bool:
        """True when the consumer has not yet received every message of a source partition."""
        partition = TopicPartition(key[0], key[1])
        low, high = self._consumer.get_watermark_offsets(partition, cached=True)
        if high < 0:
            low, high = self._consumer.get_watermark_offsets(partition, timeout=1.0)
        position = self._consumer.position([partition])[0].offset
        if position < 0:
            # No message received since the assignment (a partition assigned at its end never
            # gets one): the next one to receive is where the assignment started.
            position = self._assigned_start.get(key, OFFSET_BEGINNING)
        return bool(max(position, low) < high)

    def _tick_idle(self, now_ms: int) -> set[tuple[str, int]]:
        if now_ms - self._last_idle_check_ms < self.config.idle_check_interval_ms:
            return set()
        self._last_idle_check_ms = now_ms
        return {
            key
            for key, task in self._routers.items()
            if self._caught_up(key, task) and task.idle_tick(now_ms)
        }

    def _caught_up(self, key: tuple[str, int], task: RouterTask) -> bool:
        """True when every message of the partition has been read (idleness needs it, R8)."""
        partition = TopicPartition(key[0], key[1])
        _, high = self._consumer.get_watermark_offsets(partition, cached=True)
        if high < 0:
            _, high = self._consumer.get_watermark_offsets(partition, timeout=1.0)
        next_offset = 0 if task.last_offset is None else task.last_offset + 1
        return bool(next_offset >= high)

    def _write(self, outputs: list[Output], records: list[FeatureRecord]) -> None:
        for output in outputs:
            self._produce(output.topic, output.key, output.value, output.partition, output.headers)
        self.stats.forwarded += len(outputs)
        for record in records:
            self._produce(
                self.topology.feature_log,
                log_key(record.view, record.entity, record.event_ts_ms),
                encode_record(record),
            )
        while self._producer.flush(_FLUSH_WAIT_S) > 0:
            # The broker is away: keep the batch, librdkafka keeps retrying its delivery.
            self._kafka_health.failed("produced messages not acknowledged yet")
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise RuntimeError(f"Kafka rejected {len(errors)} messages; first: {errors[0]}")
        if records:
            self.stats.online_replaced += call_until_available(
                lambda: self.online.write(records),
                (OnlineStoreUnavailable,),
                self._online_health,
                self.config.backoff,
            )
            self.stats.records += len(records)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        if headers:
            kwargs["headers"] = headers
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, **kwargs)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError.FENCED_INSTANCE_ID:
            self._consumer_failed(error)
            return
        if error.fatal():
            # Any other fatal error, such as one of the idempotent producer, stops the worker
            # for good. It exits, and its supervisor starts a new one.
            self._stop_on_fatal(error)
            return
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._kafka_health.failed(error)
        elif not self._kafka_health.is_down:
            self._kafka_errors.warning(
                f"kafka_error:{error.code()}", "kafka_error code=%s error=%s", error.name(), error
            )

    def _consumer_failed(self, error: KafkaError) -> None:
        """Replace the consumer after this batch, or stop when replacements ran out."""
        if self._consumer_broken:
            return  # The same failure, reported again before the replacement.
        if not self._rejoins.take():
            self._stop_on_fatal(error)
            return
        logger.warning(
            "consumer_failed code=%s instance_id=%s action=rejoin",
            error.name(),
            self.config.instance_id,
        )
        self._consumer_broken = True

    def _stop_on_fatal(self, error: KafkaError) -> None:
        logger.error("kafka_fatal_error code=%s error=%s", error.name(), error)
        self._fatal_error = error
        self._stopping = True

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error}")

    def _commit(self, routers: set[tuple[str, int]], aggregators: set[tuple[str, int]]) -> None:
        offsets = []
        for key in routers:
            task = self._routers[key]
            task.forget_expired_ids()
            task.stage_state()
            task.state.commit(task.last_offset)
            for (view, reason), count in task.rejected.items():
                self.stats.rejected[(view, reason)] += count
            task.rejected.clear()
            if task.last_offset is not None:
                offsets.append(TopicPartition(key[0], key[1], task.last_offset + 1))
        for key in aggregators:
            aggregator = self._aggregators[key]
            aggregator.stage_state()
            aggregator.state.commit(aggregator.last_offset)
            if aggregator.last_offset is not None:
                offsets.append(TopicPartition(key[0], key[1], aggregator.last_offset + 1))
        if offsets and not self._consumer_broken:
            self._consumer.commit(offsets=offsets, asynchronous=True)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        states = open_assigned_states(consumer, partitions, self.config.state_dir)
        for tp in partitions:
            state = states[(tp.topic, tp.partition)]
            tp.offset = OFFSET_BEGINNING if state.offset is None else state.offset + 1
            self._assigned_start[(tp.topic, tp.partition)] = tp.offset
            self._open_task(tp, state)
            if (tp.topic, tp.partition) in self._routers:
                self._unchecked_routers.add((tp.topic, tp.partition))
            if state.offset is not None:
                self._assigned_offsets.append(TopicPartition(tp.topic, tp.partition, tp.offset))
        consumer.assign(partitions)
        logger.info(
            "partitions_assigned count=%d partitions=%s",
            len(partitions),
            ",".join(f"{tp.topic}:{tp.partition}" for tp in partitions),
        )

    def _commit_assigned_offsets(self) -> None:
        """Commit to the group the offsets that newly assigned state has reached.

        A worker killed, or fenced, after saving its state but before its offset commit reached
        the broker may have nothing left to process once it is back. Without this commit the
        group's offsets, and every lag reading made from them, would stay behind for good.
        """
        offsets = [tp for tp in self._assigned_offsets if self._owns((tp.topic, tp.partition))]
        self._assigned_offsets = []
        if offsets and not self._consumer_broken:
            self._consumer.commit(offsets=offsets, asynchronous=True)

    def _owns(self, key: tuple[str, int]) -> bool:
        return key in self._routers or key in self._aggregators

    def _check_dead_letters(self) -> None:
        """Tell newly assigned routers which of their offsets already have a dead letter.

        A worker killed after its dead letters were acknowledged, but before its state was
        committed, judges those events again. So does a worker that takes over a partition.
        Only letters written since the state's last commit can be such repeats, so the read
        starts there, less a margin for clock differences between hosts. It runs before any
        message of those routers is processed, outside the rebalance callback, which must stay
        short.
        """
        keys = [key for key in self._unchecked_routers if key in self._routers]
        self._unchecked_routers.clear()
        if not keys:
            return
        commit_times = [self._routers[key].state.committed_at_ms for key in keys]
        since_ms = None
        if None not in commit_times:
            since_ms = min(t for t in commit_times if t is not None) - _DEAD_LETTER_CLOCK_MARGIN_MS
        found = dead_lettered_offsets(
            self.config.bootstrap_servers, self.topology.dead_letters, since_ms
        )
        for key in keys:
            self._routers[key].dead_lettered = frozenset(found.get(key, ()))

    def _open_task(self, tp: TopicPartition, state: PartitionState) -> None:
        key = (tp.topic, tp.partition)
        route = self._routes.get(tp.topic)
        if route is not None:
            self._routers[key] = RouterTask(
                route=route,
                topology_name=self.topology.name,
                dead_letter_topic=self.topology.dead_letters,
                partition=tp.partition,
                state=state,
                partitions_out=route.source.partitions,
            )
            return
        source, views = self._repartition[tp.topic]
        self._aggregators[key] = AggregatorTask(
            views=views, source_partitions=source.partitions, state=state
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._close_task((tp.topic, tp.partition))
        logger.info("partitions_revoked count=%d", len(partitions))

    def _close_task(self, key: tuple[str, int]) -> None:
        self._assigned_start.pop(key, None)
        router = self._routers.pop(key, None)
        if router is not None:
            router.state.close()
            self._merger.drop(key)
        aggregator = self._aggregators.pop(key, None)
        if aggregator is not None:
            aggregator.state.close()

    def _close_tasks(self) -> None:
        for key in [*self._routers, *self._aggregators]:
            self._close_task(key)

    def _log_consume_error(self, message: Message) -> None:
        error = message.error()
        if error is not None and leaves_consumer_unusable(error):
            self._consumer_failed(error)
        elif error is not None and error.code() != KafkaError._PARTITION_EOF:
            logger.warning("consume_error topic=%s error=%s", message.topic(), error)

    def _close(self) -> None:
        self._producer.flush()
        self._consumer.close()
        self._close_tasks()
        logger.info(
            "worker_stopped source_events=%d records=%d",
            self.stats.source_events,
            self.stats.records,
        )


def _final_versions(records: list[FeatureRecord]) -> list[FeatureRecord]:
    """Keep the last version of each (view, entity, event_ts) written in one batch."""
    last = {(r.view, r.entity, r.event_ts_ms): r for r in records}
    return list(last.values()) if len(last) < len(records) else records


def install_signal_handlers(worker: Worker) -> None:
    """Stop the worker cleanly on SIGTERM and SIGINT."""

    def handle(signum: int, frame: Any) -> None:
        logger.info("worker_stopping signal=%d", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
