"""One value, three places: a month of flights online, in training sets and in a backfill.

The flights of March 2013 (New York time, across the switch to daylight-saving time on the
10th) go through Kafka and the real worker, which writes Redis and the feature log. The sink
archives the log (archive A). A backfill computes records from the same events in a Parquet
file (archive B). For random (view, entity, time) probes, the value online at that time, the
training-set value joined from archive A and the one joined from archive B must be equal,
feature by feature.

The probes' seed is logged and quoted in every failure; set ``STREAMFEAT_CONSISTENCY_SEED`` to
draw the same probes again. ``-o log_cli=true --log-cli-level=INFO`` shows the figures of a run.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamfeat.definitions.models import FeatureView
from streamfeat.offline.training_set import feature_column, training_set
from streamfeat.online.store import OnlineStatus, datetime_from_ms
from streamfeat.producer.flights import ZONE
from streamfeat.serialization.times import local_ms_to_utc_ms
from tests.consistency.archives import ArchiveRecords, plain, same_value
from tests.consistency.conftest import MonthRun
from tests.consistency.month_pipeline import MONTH_END, MONTH_START, SOURCE
from tests.consistency.online_history import ServedValue, describe
from tests.consistency.sampling import Probe, draw_probes, view_events

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

MIN_PROBES = 1_000
"""Probes that must be compared in all three places, over all views."""
SHOWN = 5
"""Mismatches described in full in a failure message."""
REDIS_CHECKS_PER_VIEW = 200
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)

STREAM = "training set from stream archive"
BACKFILL = "training set from backfill archive"
ONLINE_SERVED = "online, served once the clock passed t"
ONLINE_WRITTEN = "online, written at or before t"


@dataclass(frozen=True)
class Mismatch:
    """One feature at one probe where the places disagree; ``values`` maps place to value."""

    probe: Probe
    feature: str
    values: dict[str, Any]
    served: ServedValue


@pytest.fixture(scope="module")
def seed() -> int:
    chosen = os.environ.get("STREAMFEAT_CONSISTENCY_SEED")
    value = int(chosen) if chosen else random.SystemRandom().randrange(2**32)
    logger.info("consistency_seed seed=%d", value)
    return value


@pytest.fixture(scope="module")
def probes(month_run: MonthRun, seed: int) -> list[Probe]:
    """Probes up to the last emission clock the worker wrote with, inside the month."""
    start_ms = _utc_ms(MONTH_START)
    end_ms = min(month_run.history.final_clock_ms - 1, _utc_ms(MONTH_END) - 1)
    per_view = view_events(month_run.topology, month_run.events)
    observable = {
        view.name: month_run.history.observable_intervals(view.name)
        for view in month_run.topology.feature_views
    }
    return draw_probes(per_view, observable, start_ms, end_ms, seed)


def test_month_replay_takes_every_flight(month_run: MonthRun) -> None:
    events = len(month_run.events)
    logger.info(
        "consistency_figures events=%d worker_records=%d sink_records=%d backfill_records=%d "
        "online_writes=%d seconds=%s",
        events,
        month_run.worker.records,
        month_run.sink.records,
        month_run.backfill.records,
        len(month_run.history.clocks_ms),
        month_run.seconds,
    )
    assert month_run.produced.events == events
    assert month_run.worker.source_events == events
    assert month_run.backfill.events == events
    assert dict(month_run.worker.rejected) == dict(month_run.backfill.rejected)


def test_emission_clock_never_goes_back(month_run: MonthRun) -> None:
    history = month_run.history
    assert history.clocks_ms, "the worker wrote nothing online"
    assert history.clock_goes_back_at() is None, (
        f"the worker's emission clock went back at online write {history.clock_goes_back_at()}"
    )
    assert history.final_clock_ms > _utc_ms(MONTH_START), "the emission clock never moved"


def test_online_training_set_and_backfill_agree(
    month_run: MonthRun, probes: list[Probe], seed: int
) -> None:
    """Online, the join over archive A and the join over archive B agree at every probe.

    Online is compared twice. Served: what a read at ``t`` returned once the emission clock
    had passed ``t``, where the store still held a value at or before ``t`` then. Written: the
    last version of the latest record at or before ``t`` that the worker wrote online, at
    every probe, whether the store kept it or not.
    """
    history = month_run.history
    mismatches: list[Mismatch] = []
    statuses: Counter[tuple[str, str]] = Counter()
    last_stored_differs: Counter[str] = Counter()
    compared_online = 0
    for view in month_run.topology.feature_views:
        chosen = [probe for probe in probes if probe.view == view.name]
        from_stream = _training_values(month_run, month_run.stream_archive, view, chosen)
        from_backfill = _training_values(month_run, month_run.backfill_archive, view, chosen)
        for probe, stream_row, backfill_row in zip(chosen, from_stream, from_backfill, strict=True):
            entity = (probe.entity,)
            served = history.value_at(view.name, entity, probe.t_ms, view.ttl_ms)
            statuses[(view.name, served.status.value)] += 1
            compared_online += served.is_defined
            last_stored = history.last_stored_at(view.name, entity, probe.t_ms, view.ttl_ms)
            last_stored_differs[view.name] += not _same_values(last_stored, stream_row)
            places: dict[str, Mapping[str, Any] | None] = {
                STREAM: stream_row,
                BACKFILL: backfill_row,
                ONLINE_WRITTEN: history.written_at(view.name, entity, probe.t_ms, view.ttl_ms),
            }
            if served.is_defined:
                places[ONLINE_SERVED] = served.values
            mismatches.extend(_compare(probe, view, served, places))
    logger.info(
        "consistency_probes partitions=%d seed=%d probes=%d compared_online=%d statuses=%s "
        "last_stored_differs=%s",
        month_run.topology.source(SOURCE).partitions,
        seed,
        len(probes),
        compared_online,
        dict(statuses),
        dict(last_stored_differs),
    )
    assert len(probes) >= MIN_PROBES
    assert compared_online >= MIN_PROBES, (
        f"only {compared_online} of {len(probes)} probes had an online value to compare "
        f"(seed {seed}); statuses: {dict(statuses)}"
    )
    assert not mismatches, _describe(month_run, mismatches, len(probes), seed)


def test_online_store_keeps_newest_value_per_write(month_run: MonthRun) -> None:
    """After every write, Redis stores per key the written value with the latest as-of time.

    Values stored by earlier writes count too, and an equal as-of time replaces.
    """
    deviations = month_run.history.deviations
    shown = [
        f"write {d.write_index} {d.key}: expected {describe(d.expected)}, "
        f"Redis {describe(d.stored)}"
        for d in deviations[:SHOWN]
    ]
    assert not deviations, f"{len(deviations)} stored values break the write rule: {shown}"


def test_redis_reads_serve_final_values(month_run: MonthRun, seed: int) -> None:
    """Reads through the store return the final stored values with the TTL applied:
    ``too_old`` just before the stored as-of time, ``ok`` or ``expired`` at it."""
    rng = random.Random(seed)
    history, online = month_run.history, month_run.online
    problems: list[str] = []
    for view in month_run.topology.feature_views:
        entities = sorted(entity for name, entity in history.stored if name == view.name)
        latest = online.read(view.name, entities, as_of=FAR_FUTURE)
        for entity, value in zip(entities, latest, strict=True):
            final = history.final(view.name, entity)
            assert final is not None
            if (value.as_of_ms, value.latest_event_ts_ms) != (
                final.as_of_ms,
                final.latest_event_ts_ms,
            ):
                problems.append(f"{view.name} {entity}: read {value}, stored {describe(final)}")
        for entity in rng.sample(entities, min(REDIS_CHECKS_PER_VIEW, len(entities))):
            problems.extend(_check_reads_at_final(month_run, view, entity))
    assert not problems, f"{len(problems)} problems (seed {seed}); first: {problems[:SHOWN]}"


def test_backfill_writes_same_records_as_stream(month_run: MonthRun) -> None:
    """Per (view, entity, event_ts), the newest version is the same in both archives.

    Records up to the worker's last emission clock must all be present in both. Later ones
    exist in the stream only where its slower partitions' clocks already reached them, so
    there the stream's records must be a subset of the backfill's.
    """
    bound_ms = month_run.history.final_clock_ms
    last_event_ms = max(
        local_ms_to_utc_ms(event["sched_dep_local"], ZONE) for event in month_run.events
    )
    problems: list[str] = []
    for view in month_run.topology.feature_views:
        stream = ArchiveRecords.read(month_run.topology, month_run.stream_archive, view)
        backfilled = ArchiveRecords.read(month_run.topology, month_run.backfill_archive, view)
        a, b = stream.final_records(), backfilled.final_records()
        logger.info("consistency_records view=%s stream=%d backfill=%d", view.name, len(a), len(b))
        only_stream = sorted(k for k in a.keys() - b.keys() if k[1] <= last_event_ms)
        only_backfill = sorted(k for k in b.keys() - a.keys() if k[1] <= bound_ms)
        problems += [f"{view.name} {k}: only in stream archive {a[k]}" for k in only_stream]
        problems += [f"{view.name} {k}: only in backfill archive {b[k]}" for k in only_backfill]
        for key in sorted(a.keys() & b.keys()):
            if not _same_content(a[key], b[key]):
                problems.append(f"{view.name} {key}: stream {a[key]}, backfill {b[key]}")
    assert not problems, f"{len(problems)} records differ; first: {problems[:SHOWN]}"


def _training_values(
    month_run: MonthRun, archive: Path, view: FeatureView, probes: list[Probe]
) -> list[dict[str, Any]]:
    """Join the probes as label rows to one archive; return their values per row."""
    (key,) = month_run.topology.entity(view.entity).join_keys
    labels = pd.DataFrame(
        {
            key: [probe.entity for probe in probes],
            "event_timestamp": pd.to_datetime([p.t_ms for p in probes], unit="ms", utc=True),
        }
    )
    joined = training_set(labels, month_run.topology, archive, features=[view.name])
    assert len(joined) == len(labels), f"{view.name}: the join returned {len(joined)} rows"
    names = [feature.name for feature in view.features]
    columns = {name: joined[feature_column(view.name, name)].tolist() for name in names}
    return [{name: plain(columns[name][i]) for name in names} for i in range(len(probes))]


def _compare(
    probe: Probe,
    view: FeatureView,
    served: ServedValue,
    places: Mapping[str, Mapping[str, Any] | None],
) -> list[Mismatch]:
    """Compare every feature across ``places``; a place holding None has every feature null."""
    found = []
    for feature in view.features:
        values = {
            place: None if row is None else row[feature.name] for place, row in places.items()
        }
        if not all(same_value(values[STREAM], other) for other in values.values()):
            found.append(Mismatch(probe, feature.name, values, served))
    return found


def _same_values(values: Mapping[str, Any] | None, row: Mapping[str, Any]) -> bool:
    """True when ``values`` (None: all null) equal ``row`` for every feature of ``row``."""
    return all(same_value(None if values is None else values[name], row[name]) for name in row)


def _same_content(a: tuple[int, dict[str, Any]], b: tuple[int, dict[str, Any]]) -> bool:
    return a[0] == b[0] and a[1].keys() == b[1].keys() and _same_values(a[1], b[1])


def _check_reads_at_final(
    month_run: MonthRun, view: FeatureView, entity: tuple[str, ...]
) -> list[str]:
    final = month_run.history.final(view.name, entity)
    assert final is not None
    at = datetime_from_ms(final.as_of_ms)
    (exact,) = month_run.online.read(view.name, [entity], as_of=at)
    (before,) = month_run.online.read(view.name, [entity], as_of=at - timedelta(milliseconds=1))
    expired = view.ttl_ms is not None and final.latest_event_ts_ms < final.as_of_ms - view.ttl_ms
    problems = []
    if before.status is not OnlineStatus.TOO_OLD:
        problems.append(f"{view.name} {entity} 1 ms before {at}: {before.status}, not too_old")
    if expired and exact.status is not OnlineStatus.EXPIRED:
        problems.append(f"{view.name} {entity} at {at}: {exact.status}, not expired")
    if not expired and (exact.status, exact.values) != (OnlineStatus.OK, final.values):
        problems.append(f"{view.name} {entity} at {at}: {exact}, stored {describe(final)}")
    return problems


def _describe(month_run: MonthRun, mismatches: list[Mismatch], probes: int, seed: int) -> str:
    kinds = Counter(
        (
            m.probe.view,
            m.probe.kind,
            tuple(sorted(p for p in m.values if not same_value(m.values[STREAM], m.values[p]))),
        )
        for m in mismatches
    )
    lines = [
        f"{len(mismatches)} feature values differ among {probes} probes (seed {seed}); "
        f"by (view, probe kind, places differing from the stream archive's join): {dict(kinds)}"
    ]
    for mismatch in mismatches[:SHOWN]:
        lines.append(_describe_one(month_run, mismatch))
    return "\n".join(lines)


def _describe_one(month_run: MonthRun, mismatch: Mismatch) -> str:
    probe = mismatch.probe
    view = month_run.topology.view(probe.view)
    entity = (probe.entity,)
    written = month_run.history.writes_near(probe.view, entity, probe.t_ms, view.window.hop_ms)
    served = mismatch.served
    archives = {
        name: ArchiveRecords.read(month_run.topology, folder, view).versions_at(
            probe.entity, probe.t_ms
        )
        for name, folder in (("A", month_run.stream_archive), ("B", month_run.backfill_archive))
    }
    moment = datetime_from_ms(probe.t_ms).isoformat()
    return "\n".join(
        [
            f"- {probe.view} {probe.entity!r} t={probe.t_ms} ({moment}, {probe.kind}) "
            f"feature {mismatch.feature}: {mismatch.values}",
            f"  online: {served.status.value} after write {served.write_index}, "
            f"Redis held {describe(served.stored)}",
            *(f"  online {line}" for line in written),
            *(f"  archive A: {line}" for line in archives["A"]),
            *(f"  archive B: {line}" for line in archives["B"]),
        ]
    )


def _utc_ms(wall: datetime) -> int:
    return local_ms_to_utc_ms((wall - datetime(1970, 1, 1)) // timedelta(milliseconds=1), ZONE)
