"""Fixtures for the online store tests: a small topology and a store on the local Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from streamfeat.definitions.models import Topology
from streamfeat.online import OnlineStore, RedisOnlineStore
from streamfeat.settings import Settings


def make_topology() -> Topology:
    """Build a per-user view with a 1 h TTL and a two-key route view without TTL."""
    return Topology.model_validate(
        {
            "name": "online_tests",
            "entities": [
                {"name": "user", "join_keys": ["user_id"]},
                {"name": "route", "join_keys": ["origin", "dest"]},
            ],
            "sources": [
                {
                    "name": "txns",
                    "topic": "txns",
                    "schema": "txn.avsc",
                    "event_time": {"field": "ts"},
                },
            ],
            "feature_views": [
                {
                    "name": "txn",
                    "entity": "user",
                    "source": "txns",
                    "window": {"length": timedelta(days=1)},
                    "ttl": timedelta(hours=1),
                    "features": [
                        {"name": "txn_count", "function": "count"},
                        {"name": "amount_sum", "function": "sum", "column": "amount"},
                        {"name": "last_note", "function": "last", "column": "note"},
                    ],
                },
                {
                    "name": "route_stats",
                    "entity": "route",
                    "source": "txns",
                    "window": {"length": timedelta(hours=1)},
                    "ttl": "none",
                    "features": [{"name": "n", "function": "count"}],
                },
            ],
        }
    )


@pytest.fixture
def topology() -> Topology:
    return make_topology()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(Settings.from_env().redis_url)
    yield client
    client.close()


@pytest.fixture(params=["redis"])
def store(topology: Topology, redis_client: redis.Redis) -> Iterator[OnlineStore]:
    """Yield each online store backend, under a key prefix of its own that is removed afterwards."""
    prefix = f"sftest-{uuid.uuid4().hex[:12]}"
    backend = RedisOnlineStore.from_url(Settings.from_env().redis_url, topology, key_prefix=prefix)
    yield backend
    backend.close()
    for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000):
        redis_client.delete(key)
