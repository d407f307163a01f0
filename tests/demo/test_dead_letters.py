"""Reading dead-letter headers from a real topic on the local broker."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamfeat.demo.summary import count_rejections, read_headers
from tests.admin.conftest import bootstrap, topic_name

__all__ = ["bootstrap", "topic_name"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions)])
    futures[name].result(timeout=30)


def test_read_headers_counts_every_partition(bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap})
    letters = [
        (0, "missing_key", "plane_7d"),
        (1, "missing_key", "plane_7d"),
        (1, "constraint", "airport_1h,plane_7d"),
    ]
    for partition, reason, views in letters:
        headers = [("streamfeat.reason", reason.encode()), ("streamfeat.views", views.encode())]
        producer.produce(topic_name, b"bad", partition=partition, headers=headers)
    assert producer.flush(30) == 0

    counts = count_rejections(read_headers(bootstrap, topic_name, 3, group=f"{topic_name}.demo"))

    assert counts == {
        "airport_1h": {"constraint": 1},
        "plane_7d": {"constraint": 1, "missing_key": 2},
    }


def test_read_headers_of_empty_topic_yields_nothing(bootstrap: str, topic_name: str) -> None:
    create_topic(bootstrap, topic_name, partitions=2)

    assert list(read_headers(bootstrap, topic_name, 2, group=f"{topic_name}.demo")) == []
