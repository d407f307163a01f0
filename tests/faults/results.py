"""Compare what a faulted run left behind with the reference: archive records and online values.

The reference is a backfill of the same events. Up to the stream's bound (the lowest of the
source partitions' last event times) every record is due in the stream, so there the final
records (newest ``available_at`` per view, entity and event_ts) must match one to one. Past the
bound the stream has only the records its partitions' clocks reached: each must match the
reference, and every record at an event's own time must be there.

Redis must hold, per (view, entity), the stream's latest record, with the content the reference
gives that record.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from streamfeat.definitions.models import FeatureView, Function, Topology
from streamfeat.online.redis_store import DEFAULT_KEY_PREFIX, RedisOnlineStore
from streamfeat.online.store import OnlineStatus, datetime_from_ms
from tests.consistency.archives import ArchiveRecords, RecordContent, RecordKey, same_value
from tests.faults.archive_files import ArchivedVersions

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
SHOWN = 5
"""Problems quoted per view in a failure message."""

Records = dict[RecordKey, RecordContent]


@dataclass
class ViewCheck:
    """One view's comparison; the counters are what the summary table prints."""

    view: str
    required: int = 0
    """Reference records the stream must have: those up to the bound, and event-time ones."""
    stream: int = 0
    missing: int = 0
    unexpected: int = 0
    differing: int = 0
    counts_lost: int = 0
    """Sum over records of the events that count features have fewer than the reference."""
    counts_doubled: int = 0
    """Sum over records of the events that count features have more than the reference."""
    online: int = 0
    online_wrong: int = 0
    problems: list[str] = field(default_factory=list)
    differing_keys: list[RecordKey] = field(default_factory=list)
    reader_wrong: int = 0
    """Records whose newest version through ``read_archive`` is not the files' newest."""
    reader_problems: list[str] = field(default_factory=list)


def compare_run(
    topology: Topology,
    stream_archive: Path,
    reference_archive: Path,
    redis_url: str,
    bound_ms: int,
) -> list[ViewCheck]:
    """Compare every view of the stream's archive and Redis with the reference archive."""
    client = redis.Redis.from_url(redis_url)
    online = RedisOnlineStore(client, topology)
    checks = []
    try:
        for view in topology.feature_views:
            stream_versions = ArchivedVersions.read(topology, stream_archive, view)
            stream = stream_versions.final_records()
            reference = ArchivedVersions.read(topology, reference_archive, view).final_records()
            check = ViewCheck(view.name)
            _compare_records(view, stream, reference, bound_ms, check)
            for key in check.differing_keys[:SHOWN]:
                versions = stream_versions.describe(key)
                check.problems.append(f"{view.name} {key}: versions in the stream {versions}")
            _compare_reader(topology, stream_archive, view, stream, stream_versions, check)
            _compare_online(view, online, stream, reference, check)
            extra = _stored_keys(client, view) - check.online
            if extra:
                check.online_wrong += extra
                check.problems.append(f"{view.name}: Redis holds {extra} keys of unknown entities")
            checks.append(check)
    finally:
        client.close()
    return checks


def _compare_records(
    view: FeatureView, stream: Records, reference: Records, bound_ms: int, check: ViewCheck
) -> None:
    counted = [f.name for f in view.features if f.function is Function.COUNT]
    check.stream = len(stream)
    for key, content in sorted(reference.items()):
        latest_ms, _ = content
        required = key[1] <= bound_ms or latest_ms == key[1]
        check.required += required
        found = stream.get(key)
        if found is None:
            if required:
                check.missing += 1
                check.counts_lost += sum(_count(content, name) for name in counted)
                check.problems.append(f"{view.name} {key}: missing, reference {content}")
            continue
        if not _same_content(found, content):
            check.differing += 1
            check.differing_keys.append(key)
            check.problems.append(f"{view.name} {key}: stream {found}, reference {content}")
        for name in counted:
            difference = _count(found, name) - _count(content, name)
            check.counts_lost += max(0, -difference)
            check.counts_doubled += max(0, difference)
    for key in sorted(stream.keys() - reference.keys()):
        check.unexpected += 1
        check.problems.append(f"{view.name} {key}: only in the stream, {stream[key]}")


def _compare_reader(
    topology: Topology,
    archive: Path,
    view: FeatureView,
    final: Records,
    versions: ArchivedVersions,
    check: ViewCheck,
) -> None:
    """The newest version per record that ``read_archive`` returns must be the files' newest."""
    through_reader = ArchiveRecords.read(topology, archive, view).final_records()
    for key, content in sorted(final.items()):
        found = through_reader.get(key)
        if found is None or not _same_content(found, content):
            check.reader_wrong += 1
            if check.reader_wrong <= SHOWN:
                check.reader_problems.append(
                    f"{view.name} {key}: read_archive's newest {found}, the files' newest "
                    f"{content}; versions {versions.describe(key)}"
                )


def _compare_online(
    view: FeatureView,
    online: RedisOnlineStore,
    stream: Records,
    reference: Records,
    check: ViewCheck,
) -> None:
    """Redis must hold each entity's latest stream record, as the reference has it."""
    latest: dict[str, int] = {}
    for entity, event_ms in stream:
        latest[entity] = max(event_ms, latest.get(entity, event_ms))
    entities = sorted({entity for entity, _ in reference} | set(latest))
    check.online = len(entities)
    found = online.read(view.name, [(entity,) for entity in entities], as_of=FAR_FUTURE)
    for entity, value in zip(entities, found, strict=True):
        expected_ms = latest.get(entity)
        if value.as_of_ms is None or value.as_of_ms != expected_ms:
            check.online_wrong += 1
            check.problems.append(
                f"{view.name} {entity!r}: Redis holds as of {value.as_of_ms}, "
                f"the stream's latest record is at {expected_ms}"
            )
            continue
        content = reference.get((entity, expected_ms))
        problem = _online_problem(view, online, entity, expected_ms, content)
        if problem is not None:
            check.online_wrong += 1
            check.problems.append(problem)


def _online_problem(
    view: FeatureView,
    online: RedisOnlineStore,
    entity: str,
    as_of_ms: int,
    content: RecordContent | None,
) -> str | None:
    """Read the entity as of its stored time and compare with the reference record there."""
    if content is None:
        return f"{view.name} {entity!r}: the reference has no record at {as_of_ms}"
    latest_ms, values = content
    (value,) = online.read(view.name, [(entity,)], as_of=datetime_from_ms(as_of_ms))
    expired = view.ttl_ms is not None and latest_ms < as_of_ms - view.ttl_ms
    expected_status = OnlineStatus.EXPIRED if expired else OnlineStatus.OK
    if value.status is not expected_status or value.latest_event_ts_ms != latest_ms:
        return (
            f"{view.name} {entity!r} at {as_of_ms}: Redis {value.status.value} "
            f"latest={value.latest_event_ts_ms}, reference latest={latest_ms} "
            f"({expected_status.value})"
        )
    if not expired and not _same_values(value.values or {}, values):
        return f"{view.name} {entity!r} at {as_of_ms}: Redis {value.values}, reference {values}"
    return None


def _stored_keys(client: redis.Redis, view: FeatureView) -> int:
    pattern = f"{DEFAULT_KEY_PREFIX}:{{{view.name}|*"
    return sum(1 for _ in client.scan_iter(match=pattern, count=1_000))


def _count(content: RecordContent, name: str) -> int:
    value = content[1].get(name)
    return 0 if value is None else int(value)


def _same_values(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(same_value(a[name], b[name]) for name in a)


def _same_content(a: RecordContent, b: RecordContent) -> bool:
    return a[0] == b[0] and _same_values(a[1], b[1])


def problems_of(checks: list[ViewCheck]) -> list[str]:
    """The first problems of each view, for an assertion message."""
    return [problem for check in checks for problem in check.problems[:SHOWN]]


_COLUMNS = (
    ("view", "view"),
    ("required", "reference"),
    ("stream", "stream"),
    ("missing", "missing"),
    ("unexpected", "unexpected"),
    ("differing", "differing"),
    ("counts_lost", "lost"),
    ("counts_doubled", "doubled"),
    ("online", "online"),
    ("online_wrong", "online wrong"),
    ("reader_wrong", "read_archive wrong"),
)


def results_table(checks: list[ViewCheck]) -> str:
    """Return a fixed-width table of the checks, one row per view.

    ``lost`` and ``doubled`` add up, over every compared record, how many events the count
    features have fewer or more than the reference. An event missing from a window therefore
    shows in each record of that window.
    """
    rows = [[header for _, header in _COLUMNS]]
    rows += [[str(getattr(check, name)) for name, _ in _COLUMNS] for check in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )


def report(title: str, lines: list[str]) -> None:
    """Write a block of results to standard output, which pytest shows with ``-s``."""
    sys.stdout.write(f"\n== {title}\n" + "\n".join(lines) + "\n")
    sys.stdout.flush()
