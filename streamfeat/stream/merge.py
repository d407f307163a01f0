"""Hand out a router's source messages across partitions in timestamp order.

Kafka orders messages only within a partition, and a consumer fetches each partition in chunks,
so a replay of history reaches the router as hours or days of one partition after another. The
aggregator would then see every entity's events out of order and rewrite records for each of
them. Merging the buffered partitions by message timestamp (the event time, when producers
set it so) avoids that. A partition whose buffer is empty but which has unread messages holds the
merge back, unless the buffers are full.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

PartitionKey = tuple[str, int]


class SourceMerger:
    """Buffers of source messages per partition, drained in timestamp order."""

    def __init__(self, max_buffered: int) -> None:
        self.max_buffered = max_buffered
        self._buffers: dict[PartitionKey, deque[Message]] = {}
        self._count = 0

    def add(self, key: PartitionKey, message: Message) -> None:
        self._buffers.setdefault(key, deque()).append(message)
        self._count += 1

    def drop(self, key: PartitionKey) -> None:
        """Forget a revoked partition's buffered messages; its next owner reads them again."""
        self._count -= len(self._buffers.pop(key, ()))

    def buffered(self) -> int:
        return self._count

    def drain(
        self, owned: list[PartitionKey], has_unread: Callable[[PartitionKey], bool]
    ) -> Iterator[tuple[PartitionKey, Message]]:
        """Yield buffered messages in timestamp order.

        Draining stops when an owned partition has unread messages but none buffered, unless
        the buffers are full.
        """
        heads = [
            (_timestamp(buffer[0]), index, key)
            for index, (key, buffer) in enumerate(self._buffers.items())
            if buffer
        ]
        heapq.heapify(heads)
        waiting = {key for key in owned if not self._buffers.get(key)}
        while heads:
            if self._count < self.max_buffered and any(has_unread(key) for key in waiting):
                return
            _, index, key = heapq.heappop(heads)
            buffer = self._buffers[key]
            message = buffer.popleft()
            self._count -= 1
            if buffer:
                heapq.heappush(heads, (_timestamp(buffer[0]), index, key))
            else:
                waiting.add(key)
            yield key, message


def _timestamp(message: Message) -> int:
    kind, value = message.timestamp()
    return -1 if kind == TIMESTAMP_NOT_AVAILABLE else int(value)
