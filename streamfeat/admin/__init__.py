"""Kafka administration: create the topics a topology needs."""

from streamfeat.admin.topics import TopicSpec, ensure_topics, source_topic

__all__ = ["TopicSpec", "ensure_topics", "source_topic"]
