"""``streamfeat demo``: run a topology end to end on the local stack and print its figures."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import redis
import typer
from confluent_kafka import KafkaException
from tqdm import tqdm

from streamfeat.cli import _output
from streamfeat.demo import DemoConfig, run_demo
from streamfeat.demo.completion import OffsetSnapshot
from streamfeat.demo.config import DEFAULT_OUTPUT_DIR, DEFAULT_STALL_TIMEOUT, DEFAULT_STATE_DIR
from streamfeat.errors import StreamfeatError

HELP = (
    "Replay the topology's data sets through one worker and one sink on the local stack.\n\n"
    "Starts the local Kafka broker and Redis server when they are not running (and stops them "
    "at the end in that case), replays every source's data set, runs 'streamfeat worker' and "
    "'streamfeat sink' until every event is processed and archived, then prints sample values "
    "from the online store and a one-line JSON summary, also written to OUTPUT/summary.json.\n\n"
    "Every run first resets what a previous run left, so that it gives the same figures: it "
    "deletes the source topics and every streamfeat.<topology>.* topic, the consumer groups "
    "streamfeat.<topology>.worker and streamfeat.<topology>.sink, the online-store keys of the "
    "topology's views, the state folder, and the archive, logs and summary.json in OUTPUT."
)

SIGTERM_EXIT_CODE = 128 + signal.SIGTERM
PROGRESS_LINE_INTERVAL_S = 15.0
"""Seconds between two progress lines when standard error is no terminal and bars are off."""


def demo(
    topology: Annotated[
        Path, typer.Argument(help="Topology YAML file, such as topologies/flights.yml.")
    ],
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", help="Folder for the worker's RocksDB state."),
    ] = DEFAULT_STATE_DIR,
    output: Annotated[
        Path,
        typer.Option("--output", help="Folder for the archive, the logs and summary.json."),
    ] = DEFAULT_OUTPUT_DIR,
    stall_timeout: Annotated[
        float,
        typer.Option(
            "--stall-timeout",
            min=1,
            help="Seconds without any committed offset moving before the demo gives up.",
        ),
    ] = DEFAULT_STALL_TIMEOUT.total_seconds(),
) -> None:
    """Run the demo, whose help text is ``HELP``."""
    config = DemoConfig(
        topology_path=topology,
        state_dir=state_dir,
        output_dir=output,
        stall_timeout=timedelta(seconds=stall_timeout),
    )
    try:
        with _exit_on_sigterm():
            run_demo(config, _ConsoleReporter())
    except (StreamfeatError, KafkaException, redis.RedisError) as error:
        _output.error(str(error))
        raise typer.Exit(1) from error


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so the demo still stops its worker, sink and stack."""

    def exit_now(signal_number: int, frame: FrameType | None) -> None:
        raise SystemExit(SIGTERM_EXIT_CODE)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _ConsoleReporter:
    """Prints the demo's steps and draws tqdm progress bars on standard error."""

    def step(self, message: str) -> None:
        _output.info(message)

    @contextlib.contextmanager
    def replay_progress(self, topic: str, total: int | None) -> Iterator[Callable[[int], None]]:
        with tqdm(desc=f"replay {topic}", unit="events", total=total, disable=None) as bar:
            yield bar.update

    @contextlib.contextmanager
    def processing_progress(self, events_total: int) -> Iterator[Callable[[OffsetSnapshot], None]]:
        with (
            tqdm(desc="routed", unit="events", total=events_total, disable=None) as events,
            tqdm(desc="aggregated", unit="messages", disable=None) as aggregated,
            tqdm(desc="archived", unit="records", disable=None) as archived,
        ):
            last_line_s = time.monotonic()

            def show(snapshot: OffsetSnapshot) -> None:
                nonlocal last_line_s
                _set(events, snapshot.events_processed, snapshot.events_total)
                _set(aggregated, snapshot.forwarded_aggregated, snapshot.forwarded_total)
                _set(archived, snapshot.records_archived, snapshot.records_total)
                now_s = time.monotonic()
                if events.disable and now_s - last_line_s >= PROGRESS_LINE_INTERVAL_S:
                    last_line_s = now_s
                    _output.info(_progress_line(snapshot))

            yield show


def _set(bar: tqdm[object], done: int, total: int) -> None:
    bar.total = total
    bar.n = done
    bar.refresh()


def _progress_line(snapshot: OffsetSnapshot) -> str:
    return (
        f"routed {snapshot.events_processed}/{snapshot.events_total} source events, "
        f"aggregated {snapshot.forwarded_aggregated}/{snapshot.forwarded_total} repartitioned "
        f"messages, archived {snapshot.records_archived}/{snapshot.records_total} records"
    )
