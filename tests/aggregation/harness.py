"""Drive the in-memory replay with edge-case inputs and read values back the way readers do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamfeat.aggregation.replay import PartitionReplay, ViewEmission
from streamfeat.definitions.models import FeatureView

MS = 1


def ms(iso: str) -> int:
    """Epoch milliseconds of an ISO-8601 UTC time such as 2025-02-03T10:00:00.000Z."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (
        int(moment.timestamp() * 1000) if moment.year >= 1970 else round(moment.timestamp() * 1000)
    )


def view(
    name: str, length: str, hop: str | None, features: list[dict[str, Any]], **extra: Any
) -> FeatureView:
    window = {"length": length} if hop is None else {"length": length, "hop": hop}
    return FeatureView(name=name, entity="e", source="s", window=window, features=features, **extra)


@dataclass
class Run:
    """A replay with every record version kept in write order."""

    replay: PartitionReplay
    versions: list[ViewEmission] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    def send(self, label: str, entity: str, iso: str, wall_ms: int = 0, **values: Any) -> None:
        views = [v.name for v in self.replay.views]
        emitted = self.replay.offer(ms(iso), values, {v: (entity,) for v in views}, wall_ms=wall_ms)
        if emitted is None:
            self.late.append(label)
        else:
            self.versions.extend(emitted)

    def pause_until(self, wall_ms: int) -> None:
        self.versions.extend(self.replay.idle(wall_ms))

    def final_records(self, view_name: str, entity: str) -> list[tuple[int, int, list[Any]]]:
        """(event_ts, latest, values) of the last version per event_ts, sorted by event_ts."""
        final: dict[int, tuple[int, int, list[Any]]] = {}
        for item in self.versions:
            if item.view == view_name and item.entity == (entity,):
                e = item.emission
                final[e.event_ts_ms] = (e.event_ts_ms, e.latest_event_ts_ms, e.values)
        return [final[ts] for ts in sorted(final)]

    def value(self, view_name: str, entity: str, iso: str) -> list[Any] | None:
        """Point-in-time read of the log: last record at or before t, then the TTL."""
        t = ms(iso)
        candidates = [r for r in self.final_records(view_name, entity) if r[0] <= t]
        if not candidates:
            return None
        _, latest, values = candidates[-1]
        ttl_ms = next(v for v in self.replay.views if v.name == view_name).ttl_ms
        if ttl_ms is not None and t - latest > ttl_ms:
            return None
        return values
