"""Redis online store: one hash per (feature view, entity), written through a Lua compare-and-set.

A key reads ``<prefix>:{<view>|<entity>}`` with the entity encoded by ``encode_entity_key``.
The braces make the part inside them a Redis Cluster hash tag. The hash
holds ``as_of_ms``, ``latest_event_ts_ms``, ``version`` and ``values`` (JSON, which keeps
ints, floats, bools, strings and nulls apart).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamfeat.definitions.models import Topology
from streamfeat.errors import OnlineStoreError, OnlineStoreUnavailable, SerializationError
from streamfeat.featurelog.record import EntityKey, FeatureRecord, FeatureValue, encode_entity_key
from streamfeat.online.store import (
    OnlineValue,
    StoredValue,
    check_entity,
    newest_per_key,
    read_result,
    resolve_view,
    to_epoch_ms,
)

logger = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "sf"

# Replace the stored value unless it has a later as-of time (equal replaces). Running the
# compare inside Redis makes it atomic against concurrent writers. Lua numbers are doubles,
# exact for every epoch millisecond of the years 0001..9999 (below 2**53).
_WRITE_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], 'as_of_ms')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'as_of_ms', ARGV[1], 'latest_event_ts_ms', ARGV[2],
           'version', ARGV[3], 'values', ARGV[4])
return 1
"""
_WRITE_SHA = hashlib.sha1(_WRITE_SCRIPT.encode()).hexdigest()
_SOCKET_TIMEOUT_S = 5.0
"""A stopped or frozen Redis fails a call after this long instead of holding the worker."""
_FIELDS = ("as_of_ms", "latest_event_ts_ms", "version", "values")


class RedisOnlineStore:
    """OnlineStore on a Redis server; the topology supplies views, features and TTLs.

    NOTE: values stay in Redis after their TTL has passed (reads report them ``expired``)
    until a newer value replaces them, because the TTL counts in event time, which may lie
    years before the wall clock when history is replayed. Memory grows with the number of
    entities ever seen.
    """

    def __init__(
        self, client: redis.Redis, topology: Topology, *, key_prefix: str = DEFAULT_KEY_PREFIX
    ) -> None:
        if "{" in key_prefix or "}" in key_prefix:
            raise OnlineStoreError(
                f"key prefix {key_prefix!r} contains a brace, which would break the Redis "
                "Cluster hash tag; choose a prefix without '{' and '}'"
            )
        self._client = client
        self._topology = topology
        self._prefix = key_prefix
        self._join_keys = {
            view.name: topology.entity(view.entity).join_keys for view in topology.feature_views
        }

    @classmethod
    def from_url(
        cls, url: str, topology: Topology, *, key_prefix: str = DEFAULT_KEY_PREFIX
    ) -> RedisOnlineStore:
        """Connect to the Redis server at ``url`` (such as ``redis://127.0.0.1:16379/0``)."""
        client = redis.Redis.from_url(
            url, socket_timeout=_SOCKET_TIMEOUT_S, socket_connect_timeout=_SOCKET_TIMEOUT_S
        )
        return cls(client, topology, key_prefix=key_prefix)

    def key(self, view: str, entity: EntityKey) -> str:
        """Return the Redis key of (view, entity)."""
        return f"{self._prefix}:{{{view}|{encode_entity_key(entity)}}}"

    def write(self, records: Sequence[FeatureRecord]) -> int:
        """Store ``records`` in one round trip; return how many keys took a new value.

        Per key only the record with the latest as-of time is sent (on a tie, the later one in
        ``records``), and Redis keeps a stored value whose as-of time is later still.
        """
        if not records:
            return 0
        for record in records:
            self._check_record(record)
        newest = newest_per_key(records, lambda record: self.key(record.view, record.entity))
        try:
            outcomes = self._run_writes(newest)
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise OnlineStoreUnavailable(
                f"Redis at {self._address()} did not respond to the online write ({error}); "
                "check that the server runs, then retry the write"
            ) from error
        replaced = sum(int(outcome) for outcome in outcomes)
        logger.debug(
            "online_write records=%d keys=%d replaced=%d", len(records), len(newest), replaced
        )
        return replaced

    def read(
        self,
        view: str,
        entities: Sequence[EntityKey],
        as_of: datetime | None = None,
        *,
        features: Sequence[str] | None = None,
    ) -> list[OnlineValue]:
        """Read ``entities`` of ``view`` as of ``as_of`` (default: now) in one round trip.

        Results come in request order; an entity never written reads as ``not_found``.
        """
        definition, names = resolve_view(self._topology, view, features)
        join_keys = self._topology.entity(definition.entity).join_keys
        for entity in entities:
            check_entity(definition, join_keys, entity)
        as_of_ms = to_epoch_ms(as_of if as_of is not None else datetime.now(UTC))
        if not entities:
            return []
        pipeline = self._client.pipeline(transaction=False)
        for entity in entities:
            pipeline.hmget(self.key(view, entity), _FIELDS)
        rows = pipeline.execute()
        return [
            read_result(entity, _stored_value(row), as_of_ms, definition.ttl_ms, names)
            for entity, row in zip(entities, rows, strict=True)
        ]

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _address(self) -> str:
        options = self._client.connection_pool.connection_kwargs
        return f"{options.get('host', '?')}:{options.get('port', '?')}"

    def _check_record(self, record: FeatureRecord) -> None:
        join_keys = self._join_keys.get(record.view)
        if join_keys is None:
            raise OnlineStoreError(
                f"feature view {record.view!r} is not defined in topology "
                f"{self._topology.name!r}; use one of: {', '.join(sorted(self._join_keys))}"
            )
        check_entity(self._topology.view(record.view), join_keys, record.entity)

    def _run_writes(self, newest: dict[str, FeatureRecord]) -> list[Any]:
        """Send one script call per key in one pipeline, loading the script if Redis lacks it."""
        for attempt in range(2):
            pipeline = self._client.pipeline(transaction=False)
            for key, record in newest.items():
                pipeline.evalsha(_WRITE_SHA, 1, key, *_write_arguments(record))
            try:
                return list(pipeline.execute())
            except NoScriptError:
                # A restarted or flushed server has lost its loaded scripts. Retrying the whole
                # batch is safe because every call is a compare-and-set.
                logger.info("online_write_script_load attempt=%d", attempt + 1)
                self._client.script_load(_WRITE_SCRIPT)
        raise OnlineStoreError(
            "Redis rejected the online write script twice with NOSCRIPT; check that scripting "
            "is enabled on the server"
        )


def _write_arguments(record: FeatureRecord) -> tuple[int, int, int, str]:
    return (
        record.event_ts_ms,
        record.latest_event_ts_ms,
        record.version,
        _encode_values(record),
    )


def _encode_values(record: FeatureRecord) -> str:
    try:
        return json.dumps(record.values, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"feature view {record.view!r}: values {record.values!r} cannot be stored online "
            f"({exc}); features hold int, float, str, bool or None"
        ) from exc


def _stored_value(row: Sequence[bytes | None]) -> StoredValue | None:
    as_of_ms, latest_event_ts_ms, version, values = row
    if as_of_ms is None or latest_event_ts_ms is None or version is None or values is None:
        return None
    decoded: dict[str, FeatureValue] = json.loads(values)
    return StoredValue(decoded, int(as_of_ms), int(latest_event_ts_ms), int(version))
