"""Local state of newly assigned partitions: opened from disk, or rebuilt when out of date.

A worker resumes each partition after the offset its RocksDB state holds. State left from an
earlier assignment can be older than what another worker has processed since. Such state is
deleted, so the partition is rebuilt from its input, as by a worker that never held it.

NOTE: there is no state changelog. A rebuild replays the partition's retained input topics from
the beginning, so its time grows with the history kept, and it writes earlier records again.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from streamfeat.admin.offsets import committed_offsets
from streamfeat.stream.state import PartitionState

logger = logging.getLogger(__name__)

PartitionKey = tuple[str, int]

_COMMITTED_TIMEOUT_S = 30.0


def open_assigned_states(
    consumer: Consumer, partitions: list[TopicPartition], state_dir: Path
) -> dict[PartitionKey, PartitionState]:
    """Open the state of each assigned partition under ``state_dir``, emptying the stale ones."""
    states = {
        (tp.topic, tp.partition): PartitionState(state_dir / f"{tp.topic}-{tp.partition}")
        for tp in partitions
    }
    for committed in _passed_by_group(consumer, states):
        key = (committed.topic, committed.partition)
        states[key] = _emptied(states[key], committed)
    return states


def _passed_by_group(
    consumer: Consumer, states: dict[PartitionKey, PartitionState]
) -> list[TopicPartition]:
    """Return the group's committed offsets of the partitions whose state they have passed."""
    with_state = [TopicPartition(*key) for key, state in states.items() if state.offset is not None]
    if not with_state:
        return []
    committed = committed_offsets(consumer, with_state, _COMMITTED_TIMEOUT_S)
    return [
        tp
        for tp in committed
        if tp.offset >= 0 and tp.offset > (states[(tp.topic, tp.partition)].offset or 0) + 1
    ]


def _emptied(stale: PartitionState, committed: TopicPartition) -> PartitionState:
    logger.warning(
        "stale_state_discarded topic=%s partition=%d state_offset=%s committed_offset=%d",
        committed.topic,
        committed.partition,
        stale.offset,
        committed.offset,
    )
    stale.close()
    shutil.rmtree(stale.path)
    return PartitionState(stale.path)
