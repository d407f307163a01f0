"""Fixtures shared with the topic tests: the broker address and fresh topic names."""

from tests.admin.conftest import bootstrap, topic_name

__all__ = ["bootstrap", "topic_name"]
