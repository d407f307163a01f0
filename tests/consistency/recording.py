"""An online store that records every write of the worker, and what Redis held after it.

``RecordingOnlineStore`` wraps the real ``RedisOnlineStore``. For each ``write`` it keeps the
records in the order given, the worker's emission clock at that moment, and, read back from
Redis right after the write, the value stored for every (view, entity) the write touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import redis

from streamfeat.featurelog.record import EntityKey, FeatureRecord, FeatureValue
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.online.store import OnlineValue
from streamfeat.stream.worker import Worker

ClockReader = Callable[[], int | None]
"""Returns the worker's emission clock in epoch milliseconds, None while it has none."""

StoreKey = tuple[str, EntityKey]
"""(view, entity)."""


@dataclass(frozen=True, slots=True)
class StoredValue:
    """What Redis holds for one (view, entity): as-of time, latest event time, values."""

    as_of_ms: int
    latest_event_ts_ms: int
    values: dict[str, FeatureValue]

    @classmethod
    def of(cls, record: FeatureRecord) -> StoredValue:
        return cls(record.event_ts_ms, record.latest_event_ts_ms, dict(record.values))


@dataclass(frozen=True, slots=True)
class CapturedWrite:
    """One ``write`` call: its records in order, the emission clock, and Redis afterwards."""

    clock_ms: int | None
    records: tuple[FeatureRecord, ...]
    stored_after: dict[StoreKey, StoredValue | None]


class RecordingOnlineStore:
    """OnlineStore that forwards to a RedisOnlineStore and records each write and its effect."""

    def __init__(self, inner: RedisOnlineStore, client: redis.Redis) -> None:
        self.inner = inner
        self.client = client
        self.writes: list[CapturedWrite] = []
        self.read_clock: ClockReader = lambda: None

    def write(self, records: Sequence[FeatureRecord]) -> int:
        clock_ms = self.read_clock()
        replaced = self.inner.write(records)
        keys = list(dict.fromkeys((record.view, record.entity) for record in records))
        self.writes.append(CapturedWrite(clock_ms, tuple(records), self._read_back(keys)))
        return replaced

    def read(
        self,
        view: str,
        entities: Sequence[EntityKey],
        as_of: datetime | None = None,
        *,
        features: Sequence[str] | None = None,
    ) -> list[OnlineValue]:
        return self.inner.read(view, entities, as_of, features=features)

    def close(self) -> None:
        self.inner.close()

    def _read_back(self, keys: list[StoreKey]) -> dict[StoreKey, StoredValue | None]:
        """Read the stored hashes raw, in one round trip, as laid out by RedisOnlineStore."""
        pipeline = self.client.pipeline(transaction=False)
        for view, entity in keys:
            pipeline.hmget(self.inner.key(view, entity), "as_of_ms", "latest_event_ts_ms", "values")
        stored: dict[StoreKey, StoredValue | None] = {}
        for key, (as_of, latest, values) in zip(keys, pipeline.execute(), strict=True):
            if as_of is None or latest is None or values is None:
                stored[key] = None
            else:
                stored[key] = StoredValue(int(as_of), int(latest), json.loads(values))
        return stored


def worker_emission_clock(worker: Worker) -> ClockReader:
    """Return a reader of the lowest emission clock any aggregator task holds for any source
    partition, None until every task has heard from every partition.

    When it is past ``t``, every source partition has accepted an event after ``t``, so no
    event at or before ``t`` can still come, and every slot boundary up to ``t`` is due for
    every entity. NOTE: the worker exposes no clock, so this reads its private task table.
    """

    def read() -> int | None:
        clocks: list[int] = []
        for task in worker._aggregators.values():
            for partition in range(task.source_partitions):
                info = task.sources.get(partition)
                if info is None or info.clock_ms is None:
                    return None
                clocks.append(info.clock_ms)
        return min(clocks) if clocks else None

    return read
