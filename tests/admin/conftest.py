"""Fixtures for tests on the local Kafka broker: its address and fresh topic names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from streamfeat.settings import Settings


@pytest.fixture
def bootstrap() -> str:
    return Settings.from_env().kafka_bootstrap


@pytest.fixture
def topic_name(bootstrap: str) -> Iterator[str]:
    """Yield a fresh topic name and delete the topic afterwards, if it was created."""
    name = f"sftest-{uuid.uuid4().hex[:12]}"
    yield name
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if name in admin.list_topics(timeout=10).topics:
        for future in admin.delete_topics([name], operation_timeout=30).values():
            future.result(timeout=30)
