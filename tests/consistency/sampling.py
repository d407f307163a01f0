"""Random (view, entity, time) probes over the replayed month, where bugs are likely to hide.

Besides times drawn uniformly at millisecond resolution, probes sit at these places:

- exactly at event times, and one millisecond before them;
- exactly at the slot boundaries where a slot leaves an entity's window, and one millisecond
  before them;
- on the hop grid;
- at the last moment before the TTL passes, and one millisecond after it;
- around the switch to daylight-saving time;
- on entities the month never saw (every feature null);
- where the online store served a value after the worker's emission clock had passed the
  probe's time. A fast replay makes those rare for busy entities, because by then the stored
  value has usually moved on.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamfeat.definitions.models import FeatureView, Topology
from streamfeat.producer.flights import ZONE
from streamfeat.serialization.times import local_ms_to_utc_ms
from tests.consistency.online_history import Interval

DST_SWITCH_MS = int(datetime(2013, 3, 10, 7, tzinfo=UTC).timestamp() * 1000)
"""2013-03-10 02:00 EST, when New York clocks jumped to 03:00 EDT."""
DST_SPAN_MS = 6 * 3_600_000
"""DST probes fall within this distance of the switch."""

PROBES_PER_KIND = {
    "uniform": 350,
    "event_time": 150,
    "before_event": 100,
    "boundary": 120,
    "before_boundary": 60,
    "hop_grid": 60,
    "ttl_edge": 60,
    "dst": 40,
    "never_seen": 20,
    "online_observable": 400,
}
"""Probes per feature view, by kind."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One point to compare: a view, its entity (one join-key value) and a time."""

    view: str
    entity: str
    t_ms: int
    kind: str


@dataclass(frozen=True)
class ViewEvents:
    """The month's accepted events of one view: (entity, UTC event time), in event-time order."""

    view: FeatureView
    events: list[tuple[str, int]]

    @property
    def entities(self) -> list[str]:
        return sorted({entity for entity, _ in self.events})


def view_events(topology: Topology, events: Sequence[dict[str, Any]]) -> list[ViewEvents]:
    """Group the month's events by view; an event without the view's join key is not its."""
    result = []
    for view in topology.feature_views:
        (key,) = topology.entity(view.entity).join_keys
        pairs = [
            (str(event[key]), local_ms_to_utc_ms(event["sched_dep_local"], ZONE))
            for event in events
            if event[key] is not None
        ]
        result.append(ViewEvents(view, pairs))
    return result


def draw_probes(
    per_view: Sequence[ViewEvents],
    observable: Mapping[str, Sequence[Interval]],
    start_ms: int,
    end_ms: int,
    seed: int,
) -> list[Probe]:
    """Draw the probes of every view with times in ``[start_ms, end_ms]``.

    ``observable`` maps each view to the intervals in which the online store served a value
    after the emission clock had passed.
    """
    rng = random.Random(seed)
    probes: list[Probe] = []
    for data in per_view:
        intervals = observable.get(data.view.name, [])
        probes.extend(_view_probes(data, intervals, start_ms, end_ms, rng))
    return probes


def _view_probes(
    data: ViewEvents,
    intervals: Sequence[Interval],
    start_ms: int,
    end_ms: int,
    rng: random.Random,
) -> list[Probe]:
    view, entities = data.view, data.entities
    hop_ms = view.window.hop_ms
    in_range = [(entity, t) for entity, t in data.events if start_ms <= t <= end_ms]
    leaving = _leaving_boundaries(data, start_ms, end_ms)
    ttl_edges = _ttl_edges(data, start_ms, end_ms - 1)
    first_hop, last_hop = -(-start_ms // hop_ms), end_ms // hop_ms
    draws = {
        "uniform": lambda: (rng.choice(entities), rng.randint(start_ms, end_ms)),
        "event_time": lambda: rng.choice(in_range),
        "before_event": lambda: _shift(rng.choice(in_range), -1),
        "boundary": lambda: rng.choice(leaving),
        "before_boundary": lambda: _shift(rng.choice(leaving), -1),
        "hop_grid": lambda: (rng.choice(entities), rng.randint(first_hop, last_hop) * hop_ms),
        "ttl_edge": lambda: _shift(rng.choice(ttl_edges), rng.randint(0, 1)),
        "dst": lambda: (
            rng.choice(entities),
            rng.randint(DST_SWITCH_MS - DST_SPAN_MS, DST_SWITCH_MS + DST_SPAN_MS),
        ),
        "never_seen": lambda: (f"never-seen-{rng.randrange(10**6)}", rng.randint(start_ms, end_ms)),
        "online_observable": lambda: _in_interval(rng.choice(intervals), rng),
    }
    empty = {"ttl_edge": not ttl_edges, "online_observable": not intervals}
    probes = []
    for kind, count in PROBES_PER_KIND.items():
        for _ in range(0 if empty.get(kind) else count):
            entity, t_ms = draws[kind]()
            probes.append(Probe(view.name, entity, min(max(t_ms, start_ms), end_ms), kind))
    return probes


def _leaving_boundaries(data: ViewEvents, start_ms: int, end_ms: int) -> list[tuple[str, int]]:
    """Return where a slot holding an event leaves the window, so the value changes there."""
    hop_ms, length_ms = data.view.window.hop_ms, data.view.window.length_ms
    boundaries = [(entity, t // hop_ms * hop_ms + length_ms) for entity, t in data.events]
    return [(entity, b) for entity, b in boundaries if start_ms < b <= end_ms]


def _ttl_edges(data: ViewEvents, start_ms: int, end_ms: int) -> list[tuple[str, int]]:
    """Return the last moments at which entities' values are served before the TTL passes.

    That moment is an event time plus the TTL (the bound is inclusive), where no later event
    of the entity comes first.
    """
    ttl_ms = data.view.ttl_ms
    if ttl_ms is None:
        return []
    following: dict[str, int] = {}
    edges = []
    for entity, t in reversed(data.events):
        after = following.get(entity)
        if (after is None or after > t + ttl_ms + 1) and start_ms <= t + ttl_ms <= end_ms:
            edges.append((entity, t + ttl_ms))
        following[entity] = t
    return edges


def _in_interval(interval: Interval, rng: random.Random) -> tuple[str, int]:
    """The interval's first time (a record's as-of time or a clock step) or a uniform one."""
    (entity,), first_ms, last_ms = interval
    return entity, first_ms if rng.random() < 0.5 else rng.randint(first_ms, last_ms)


def _shift(pair: tuple[str, int], delta_ms: int) -> tuple[str, int]:
    return pair[0], pair[1] + delta_ms
