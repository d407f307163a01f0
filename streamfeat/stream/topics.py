"""Names and settings of the topics the worker reads and writes."""

from __future__ import annotations

from streamfeat.admin.topics import SOURCE_TOPIC_CONFIG, TopicSpec, source_topic
from streamfeat.definitions.models import Source, Topology

COMPACTED_CONFIG = {**SOURCE_TOPIC_CONFIG, "cleanup.policy": "compact"}
"""Feature log: compaction keeps the newest record per (view, entity, event_ts), no time limit."""


def repartition_topic(topology: Topology, source: Source, entity: str) -> str:
    """Topic that carries a source's accepted events keyed by one entity."""
    return f"streamfeat.{topology.name}.{source.name}.by-{entity}"


def entities_of(topology: Topology, source: Source) -> list[str]:
    """Entities that the views of ``source`` are keyed by, in definition order."""
    names: list[str] = []
    for view in topology.views_of(source.name):
        if view.entity not in names:
            names.append(view.entity)
    return names


def worker_topics(topology: Topology) -> list[TopicSpec]:
    """Every topic a worker of ``topology`` needs, with partition counts and settings."""
    specs = []
    for source in topology.sources:
        specs.append(source_topic(source))
        for entity in entities_of(topology, source):
            name = repartition_topic(topology, source, entity)
            specs.append(TopicSpec(name, source.partitions, SOURCE_TOPIC_CONFIG))
    partitions = max(source.partitions for source in topology.sources)
    specs.append(TopicSpec(topology.feature_log, partitions, COMPACTED_CONFIG))
    specs.append(TopicSpec(topology.dead_letters, partitions, SOURCE_TOPIC_CONFIG))
    return specs
