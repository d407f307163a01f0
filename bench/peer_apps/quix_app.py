"""The flights feature views as a Quix Streams application, for the peers benchmark.

Usage: ``python quix_app.py SPEC_JSON`` in an interpreter with ``quixstreams[avro]`` (the
benchmark keeps one in ``.local/bench-venvs/quixstreams``). It runs until every source event
has reached every view, then stops the app and writes its result to the spec's result file.

Per view it is what a Quix Streams user would write for an online feature. It re-keys by the
entity's join key with ``group_by`` (a repartition topic) and applies a hopping window with the
view's length and hop and the built-in aggregations. State is Quix's own RocksDB with changelog
topics, and ``.current()`` emits a value on every update. Of the windows one event updates, the
app keeps the one that ends with the event's hop slot (the value as of that event, as
streamfeat's worker computes it) and produces it to an output topic. Event time is the source's
local-time field converted in its zone by a timestamp extractor.

Quix Streams 3.28.1 reads a backlog one partition after another, because it orders messages by
timestamp only across topics, not across the partitions of one topic. In a replay a key's events
then arrive up to the whole replay's span out of order: on the first 50,000 flights (4
partitions) the latest event seen per key was up to 1,360 hours ahead of a later-read one. With
a grace period of 0 (the source's allowed lateness) Quix skipped 72% of the window updates as
late. So the spec's grace period covers the replay's span: every event updates all its windows,
the work the worker does, and no window expires during the run. The values emitted mid-replay
still differ from the worker's, because a window already contains the later events that Quix read
earlier from other partitions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import quixstreams
from peer_support import FlightDecoder, PeerSpec, Progress, View, event_time_ms
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.dataframe.windows import aggregations
from quixstreams.models import Deserializer, MessageContext

AGGREGATORS: dict[str, Callable[[str | None], aggregations.Aggregator]] = {
    "count": aggregations.Count,
    "sum": aggregations.Sum,
    "mean": aggregations.Mean,
    "min": aggregations.Min,
    "max": aggregations.Max,
}
"""Quix Streams aggregations by streamfeat function name. Each skips null values."""


class FlightDeserializer(Deserializer):
    def __init__(self, decoder: FlightDecoder) -> None:
        super().__init__()
        self._decoder = decoder

    def __call__(self, value: bytes, ctx: MessageContext) -> dict[str, Any]:
        return self._decoder.decode(value)


class LateWindows:
    """Counter of window updates Quix skips because the window closed, kept out of the log."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: object) -> bool:
        self.count += 1
        return False


def add_view(
    flights: StreamingDataFrame,
    view: View,
    spec: PeerSpec,
    progress: Progress,
    late: LateWindows,
    output: quixstreams.models.Topic,
) -> None:
    """Add one view's branch: re-key by entity, window, keep the event's slot, produce it."""
    hop_ms = view.hop_ms
    # Quix runs a message through every step before the next message, so the window filter
    # reads the time of the event that produced the window updates.
    last_event_ms = [0]

    def count(value: Any, key: Any, timestamp: int, headers: Any) -> None:
        last_event_ms[0] = timestamp
        progress.count(view.name)

    def ends_with_event_slot(window: dict[str, Any]) -> bool:
        end: int = window["end"]
        return end - hop_ms <= last_event_ms[0] < end

    unknown = [f.function for f in view.features if f.function not in AGGREGATORS]
    if unknown:
        raise ValueError(
            f"view {view.name} uses {unknown}, which this peer lacks: use {list(AGGREGATORS)}"
        )
    features = {f.name: AGGREGATORS[f.function](f.column) for f in view.features}
    branch = flights.filter(lambda flight: bool(flight[view.key])).group_by(view.key)
    branch = branch.update(count, metadata=True)
    windows = branch.hopping_window(
        duration_ms=view.length_ms,
        step_ms=hop_ms,
        grace_ms=spec.grace_ms,
        name=view.name,
        on_late=late,
    )
    windows.agg(**features).current().filter(ends_with_event_slot).to_topic(output)


def main(spec_file: Path) -> None:
    spec = PeerSpec.read(spec_file)
    decoder = FlightDecoder(spec.schema_file)
    zone = ZoneInfo(spec.zone)
    field = spec.event_time_field
    app = Application(
        broker_address=spec.bootstrap,
        consumer_group=spec.name_prefix,
        auto_offset_reset="earliest",
        state_dir=spec.state_dir,
        loglevel="WARNING",
    )

    def extract_event_time(value: Any, headers: Any, timestamp: float, kind: Any) -> int:
        return event_time_ms(value[field], zone)

    source = app.topic(
        spec.topic,
        key_deserializer="bytes",
        value_deserializer=FlightDeserializer(decoder),
        timestamp_extractor=extract_event_time,
    )
    output = app.topic(f"{spec.name_prefix}.features", value_serializer="json")
    flights = app.dataframe(source)
    progress = Progress(spec.views, on_done=app.stop)
    late = LateWindows()
    for view in spec.views:
        add_view(flights, view, spec, progress, late, output)

    progress.start()
    app.run()
    progress.write(spec.result_file, quixstreams.__version__, {"late_windows": late.count})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
