"""The flights feature views as a plain faust-streaming app, for the peers benchmark.

Usage: ``python faust_app.py SPEC_JSON`` in streamfeat's interpreter with the ``bench`` extra.
It runs until the spec's number of events has reached every view, then stops the worker the way
an operator would (SIGTERM) and writes its result to the spec's result file.

Per view, one agent iterates the source topic through ``group_by`` on the entity's join key (a
repartition topic) and updates a hopping windowed table, as faust's documentation shows:
``table[key]`` of a windowed table is the set of windows that the event's time falls into, and
``apply`` updates each of them. A table holds one value per key and window, so each view keeps
its features' partial aggregates together in a list. Tables live in faust's RocksDB store
(through rocksdict) with changelog topics; windows expire after the view's length. Event time
is the source's local-time field converted in its zone, through ``relative_to``. faust has no
late-event handling of its own, so every event updates all its windows. Settings are faust's
defaults, which its documentation keeps for agents that update tables.

Every window update sends one changelog message (43 per flight for the three views) through
faust's producer buffer, which stalls the agents whenever it holds more than 100 messages. On
this project's 2-core machine, shared with other jobs, the app applied 14 to 36 flights/s with
the tables and 190 flights/s with the table updates left out (faust-streaming 0.15.3, aiokafka
0.14.0, bench/peers.py on the first 3,000 to 20,000 flights).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import faust
from faust.serializers import codecs
from peer_support import Feature, FlightDecoder, PeerSpec, Progress, View, event_time_ms

Partial = list[Any]
"""A view's partial aggregates in one window: one slot per feature, a mean takes two."""


class FlightCodec(codecs.Codec):
    def __init__(self, decoder: FlightDecoder) -> None:
        super().__init__()
        self._decoder = decoder

    def _loads(self, s: bytes) -> Any:
        return self._decoder.decode(s)


def merge_function(features: Iterable[Feature]) -> Callable[[Partial | None, Any], Partial]:
    """Return ``(partial, flight) -> partial`` for ``apply``, which skips null values."""
    steps: list[Callable[[Partial, dict[str, Any]], None]] = []
    width = 0
    for feature in features:
        steps.append(_feature_step(feature, width))
        width += 2 if feature.function == "mean" else 1

    def merge(partial: Partial | None, flight: dict[str, Any]) -> Partial:
        merged = [None] * width if partial is None else list(partial)
        for step in steps:
            step(merged, flight)
        return merged

    return merge


def _feature_step(feature: Feature, at: int) -> Callable[[Partial, dict[str, Any]], None]:
    column = feature.column
    function = feature.function

    def step(partial: Partial, flight: dict[str, Any]) -> None:
        value = 1 if column is None else flight[column]
        if value is None:
            return
        old = partial[at]
        if function == "count":
            partial[at] = (old or 0) + 1
        elif function == "sum":
            partial[at] = value if old is None else old + value
        elif function == "mean":
            partial[at] = value if old is None else old + value
            partial[at + 1] = (partial[at + 1] or 0) + 1
        elif function == "max":
            partial[at] = value if old is None else max(old, value)
        elif function == "min":
            partial[at] = value if old is None else min(old, value)

    if function not in ("count", "sum", "mean", "max", "min"):
        raise ValueError(f"feature {feature.name} uses {function!r}, which this peer lacks")
    return step


def no_partial() -> None:
    return None


def add_view(
    app: faust.App,
    source: faust.TopicT,
    view: View,
    spec: PeerSpec,
    progress: Progress,
) -> None:
    """Define one view's windowed table and the agent that updates it."""
    zone = ZoneInfo(spec.zone)
    field = spec.event_time_field

    def event_seconds(event: faust.EventT | None) -> float:
        if event is None:
            raise RuntimeError(f"view {view.name} updated its table outside of a stream")
        return event_time_ms(event.value[field], zone) / 1000

    table = (
        app.Table(view.name, default=no_partial, partitions=spec.partitions)
        .hopping(view.length_ms / 1000, view.hop_ms / 1000, expires=view.length_ms / 1000)
        .relative_to(event_seconds)
    )
    merge = merge_function(view.features)
    key = view.key

    async def aggregate(flights: faust.StreamT[dict[str, Any]]) -> None:
        keyed = flights.filter(lambda flight: bool(flight[key]))
        async for flight in keyed.group_by(lambda flight: flight[key], name=view.name):
            table[flight[key]].apply(merge, flight)
            progress.count(view.name)

    # The agent name prefixes its repartition topic, so it carries the run's prefix too.
    app.agent(source, name=f"{spec.name_prefix}-{view.name}")(aggregate)


def main(spec_file: Path) -> None:
    spec = PeerSpec.read(spec_file)
    codecs.register("flight_avro", FlightCodec(FlightDecoder(spec.schema_file)))
    app = faust.App(
        spec.name_prefix,
        broker=f"kafka://{spec.bootstrap}",
        store="rocksdb://",
        datadir=str(spec.state_dir),
        topic_partitions=spec.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    source = app.topic(spec.topic, key_serializer="raw", value_serializer="flight_avro")

    def stop() -> None:
        progress.write(spec.result_file, faust.__version__, {})
        os.kill(os.getpid(), signal.SIGTERM)

    progress = Progress(spec.views, on_done=stop)
    for view in spec.views:
        add_view(app, source, view, spec, progress)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    progress.start()
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
