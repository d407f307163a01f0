"""The Kafka, Redis and disk namespace of a demo run, and its reset before a re-run.

A run writes the source topics, the ``streamfeat.<topology>.*`` topics, the worker's and the
sink's consumer groups, the online store's keys of the topology's views, the worker's state
folder and the demo's output files. Deleting all of them first makes every run start from the
same empty state, so a re-run gives the same figures.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streamfeat.admin.offsets import is_retriable
from streamfeat.admin.topics import ensure_topics
from streamfeat.definitions.models import Topology
from streamfeat.errors import StackError
from streamfeat.online.redis_store import DEFAULT_KEY_PREFIX
from streamfeat.sink.runner import sink_group
from streamfeat.stream.topics import worker_topics

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(seconds=60)
_DELETE_CHUNK = 1_000
_SCAN_COUNT = 1_000


@dataclass(frozen=True)
class DemoNamespace:
    """Names of the topology's topics, consumer groups and online-store keys."""

    topology: Topology
    archive_dir: Path = Path("demo-output/archive")

    @property
    def worker_group(self) -> str:
        """Consumer group of ``streamfeat worker``."""
        return f"streamfeat.{self.topology.name}.worker"

    @property
    def sink_group(self) -> str:
        """Consumer group of ``streamfeat sink`` writing the demo's archive."""
        return sink_group(self.topology, self.archive_dir)

    @property
    def reader_group(self) -> str:
        """Group id that the demo reads the dead-letter topic with, committing no offsets."""
        return f"streamfeat.{self.topology.name}.demo"

    @property
    def topic_prefix(self) -> str:
        return f"streamfeat.{self.topology.name}."

    def partition_count(self, topic: str) -> int:
        """Return the partition count the worker creates ``topic`` with."""
        counts = {spec.name: spec.partitions for spec in worker_topics(self.topology)}
        return counts[topic]

    def owns_topic(self, name: str) -> bool:
        """True for a topic the worker of this topology reads or writes."""
        declared = {spec.name for spec in worker_topics(self.topology)}
        return name in declared or name.startswith(self.topic_prefix)

    def key_pattern(self, view: str) -> str:
        """Redis SCAN pattern of the online-store keys of ``view``.

        The pattern follows the key layout of ``RedisOnlineStore.key`` with its default prefix,
        which ``streamfeat worker`` uses. View names contain no glob characters.
        """
        return f"{DEFAULT_KEY_PREFIX}:{{{view}|*"

    def key_patterns(self) -> list[str]:
        return [self.key_pattern(view.name) for view in self.topology.feature_views]


def scan_keys(client: redis.Redis, pattern: str) -> Iterator[bytes]:
    """Yield the keys that match ``pattern``, without blocking Redis the way KEYS does."""
    yield from client.scan_iter(match=pattern, count=_SCAN_COUNT)


def reset_namespace(
    namespace: DemoNamespace,
    *,
    bootstrap: str,
    redis_client: redis.Redis,
    paths: Sequence[Path],
    report: Callable[[str], None],
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Delete the topology's consumer groups, topics, online keys and ``paths``, then create
    the worker's topics again, empty.

    Raises StackError when a consumer group still has members (a worker or sink of this
    topology is running) or when Kafka does not finish a deletion within ``timeout``.
    """
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": logger}
    admin = AdminClient(config)
    seconds = timeout.total_seconds()
    groups = [namespace.worker_group, namespace.sink_group]
    _delete_groups(admin, groups, seconds)
    topics = _delete_topics(admin, namespace, seconds)
    keys = sum(_delete_keys(redis_client, pattern) for pattern in namespace.key_patterns())
    for path in paths:
        _delete_path(path)
    report(
        f"reset: deleted {len(topics)} topics, consumer groups {', '.join(groups)}, "
        f"{keys} online keys and {', '.join(str(path) for path in paths)}"
    )
    created = ensure_topics(bootstrap, worker_topics(namespace.topology), timeout=timeout)
    report(f"created topics {', '.join(created)}")


_COORDINATOR_RETRY_S = 0.5


def _delete_groups(admin: AdminClient, groups: list[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    pending = list(groups)
    while pending:
        retry = []
        futures = admin.delete_consumer_groups(pending, request_timeout=seconds)
        for group, future in futures.items():
            try:
                future.result(timeout=seconds)
            except KafkaException as exception:
                error: KafkaError = exception.args[0]
                if error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                    continue
                if is_retriable(error) and time.monotonic() < deadline:
                    retry.append(group)
                    continue
                if error.code() == KafkaError.NON_EMPTY_GROUP:
                    raise StackError(
                        f"consumer group {group!r} still has members, so a worker or sink of "
                        "this topology is running; stop it, then run the demo again"
                    ) from None
                raise StackError(f"cannot delete consumer group {group!r}: {error.str()}") from None
            logger.info("consumer_group_deleted group=%s", group)
        pending = retry
        if pending:
            logger.info("consumer_group_delete_retry groups=%s", ",".join(pending))
            time.sleep(_COORDINATOR_RETRY_S)


def _delete_topics(admin: AdminClient, namespace: DemoNamespace, seconds: float) -> list[str]:
    existing = admin.list_topics(timeout=seconds).topics
    names = sorted(name for name in existing if namespace.owns_topic(name))
    if not names:
        return []
    futures = admin.delete_topics(names, operation_timeout=seconds, request_timeout=seconds)
    for name, future in futures.items():
        try:
            future.result(timeout=seconds)
        except KafkaException as exception:
            error: KafkaError = exception.args[0]
            if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise StackError(f"cannot delete topic {name!r}: {error.str()}") from None
        logger.info("topic_deleted topic=%s", name)
    _wait_until_gone(admin, names, seconds)
    return names


def _wait_until_gone(admin: AdminClient, names: list[str], seconds: float) -> None:
    # Deletion returns before the metadata drops the topic. Creating it again too early fails,
    # or finds the old partitions.
    deadline = time.monotonic() + seconds
    while True:
        remaining = set(names) & set(admin.list_topics(timeout=seconds).topics)
        if not remaining:
            return
        if time.monotonic() >= deadline:
            raise StackError(
                f"topics {', '.join(sorted(remaining))} were deleted but are still listed "
                f"after {seconds:g}s; check the broker's log, then run the demo again"
            )
        time.sleep(0.2)


def _delete_keys(client: redis.Redis, pattern: str) -> int:
    deleted = 0
    chunk: list[bytes] = []
    for key in scan_keys(client, pattern):
        chunk.append(key)
        if len(chunk) == _DELETE_CHUNK:
            deleted += int(client.unlink(*chunk))
            chunk = []
    if chunk:
        deleted += int(client.unlink(*chunk))
    return deleted


def _delete_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
