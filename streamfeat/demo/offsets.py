"""Read consumer groups' committed offsets and partitions' offset ranges from Kafka."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

# confluent-kafka 2.16 re-exports OffsetSpec without listing it in __all__ and leaves its
# factory methods untyped.
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from streamfeat.admin.offsets import retry_while_coordinator_moves
from streamfeat.demo.completion import OffsetSnapshot, PartitionOffsets, TopicPartitionKey
from streamfeat.errors import StackError

logger = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = timedelta(seconds=15)

_EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]


class OffsetReader:
    """Reads where the worker's and the sink's consumer groups stand, through one admin client."""

    def __init__(
        self, bootstrap: str, *, request_timeout: timedelta = DEFAULT_REQUEST_TIMEOUT
    ) -> None:
        config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": logger}
        self._admin = AdminClient(config)
        self._bootstrap = bootstrap
        self._timeout_s = request_timeout.total_seconds()

    def snapshot(
        self,
        *,
        worker_group: str,
        worker_partitions: Sequence[TopicPartitionKey],
        sink_group: str,
        sink_partitions: Sequence[TopicPartitionKey],
        source_topics: Sequence[str],
    ) -> OffsetSnapshot:
        """Read both groups' committed offsets and the offset ranges of their partitions.

        Each group's committed offsets are read before its partitions' end offsets. So a
        partition never looks further along than it was, because its end offset can only have
        grown in between.
        """
        return OffsetSnapshot(
            worker=self.group_offsets(worker_group, worker_partitions),
            sink=self.group_offsets(sink_group, sink_partitions),
            source_topics=tuple(source_topics),
        )

    def group_offsets(
        self, group: str, partitions: Sequence[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, PartitionOffsets]:
        """Return ``group``'s committed offset and the offset range of each partition."""
        committed = self.committed(group, partitions)
        low = self._list_offsets(partitions, _EARLIEST)
        end = self._list_offsets(partitions, _LATEST)
        return {key: PartitionOffsets(committed[key], low[key], end[key]) for key in partitions}

    def committed(
        self, group: str, partitions: Sequence[TopicPartitionKey]
    ) -> dict[TopicPartitionKey, int | None]:
        """Return the next offset ``group`` reads per partition, or None where it committed none."""
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, number) for topic, number in partitions]
        )

        def read(left_s: float) -> Any:
            futures = self._admin.list_consumer_group_offsets([request], request_timeout=left_s)
            return futures[group].result(timeout=left_s)

        try:
            result = retry_while_coordinator_moves(read, self._timeout_s)
        except (KafkaException, TimeoutError) as error:
            raise self._error(f"the committed offsets of group {group!r}", error) from None
        offsets: dict[TopicPartitionKey, int | None] = dict.fromkeys(partitions)
        for tp in result.topic_partitions or []:
            offsets[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return offsets

    def _list_offsets(
        self, partitions: Sequence[TopicPartitionKey], spec: OffsetSpec
    ) -> dict[TopicPartitionKey, int]:
        request = {TopicPartition(topic, number): spec for topic, number in partitions}
        futures = self._admin.list_offsets(request, request_timeout=self._timeout_s)
        offsets = {}
        for tp, future in futures.items():
            try:
                offsets[(tp.topic, tp.partition)] = future.result(timeout=self._timeout_s).offset
            except (KafkaException, TimeoutError) as error:
                raise self._error(f"the offsets of {tp.topic}[{tp.partition}]", error) from None
        return offsets

    def _error(self, target: str, error: Exception) -> StackError:
        return StackError(
            f"cannot read {target} from Kafka at {self._bootstrap} within {self._timeout_s:g}s "
            f"({error}); check that the broker runs ('streamfeat stack status')"
        )
