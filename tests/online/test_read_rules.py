"""Read rules and batch reduction of the online store, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from streamfeat.featurelog.record import FeatureRecord
from streamfeat.online.store import (
    OnlineStatus,
    StoredValue,
    datetime_from_ms,
    newest_per_key,
    read_result,
    to_epoch_ms,
)

HOUR_MS = 3_600_000
STORED = StoredValue(
    {"n": 1, "s": 2.5}, as_of_ms=10 * HOUR_MS, latest_event_ts_ms=9 * HOUR_MS, version=2
)


def status_at(as_of_ms: int, ttl_ms: int | None = HOUR_MS) -> OnlineStatus:
    return read_result(("k",), STORED, as_of_ms, ttl_ms, ["n", "s"]).status


def test_read_status_follows_ttl_and_as_of() -> None:
    assert status_at(10 * HOUR_MS) is OnlineStatus.OK
    assert status_at(10 * HOUR_MS + 1) is OnlineStatus.EXPIRED
    assert status_at(10 * HOUR_MS, ttl_ms=HOUR_MS * 2) is OnlineStatus.OK
    assert status_at(11 * HOUR_MS, ttl_ms=HOUR_MS * 2) is OnlineStatus.OK
    assert status_at(11 * HOUR_MS + 1, ttl_ms=HOUR_MS * 2) is OnlineStatus.EXPIRED
    assert status_at(10 * HOUR_MS - 1, ttl_ms=None) is OnlineStatus.TOO_OLD
    assert status_at(10**15, ttl_ms=None) is OnlineStatus.OK


def test_too_old_wins_over_expired() -> None:
    assert status_at(10 * HOUR_MS - 1, ttl_ms=1) is OnlineStatus.TOO_OLD


def test_missing_stored_feature_reads_as_null() -> None:
    result = read_result(("k",), STORED, 10 * HOUR_MS, None, ["s", "added_later"])

    assert result.values == {"s": 2.5, "added_later": None}


def test_newest_per_key_keeps_later_tie() -> None:
    def record(entity: str, ts_ms: int, n: int) -> FeatureRecord:
        return FeatureRecord("v", 1, (entity,), ts_ms, ts_ms, {"n": n}, 0)

    records = [
        record("a", 5, 1),
        record("a", 7, 2),
        record("b", 1, 3),
        record("a", 7, 4),
        record("a", 6, 5),
    ]

    newest = newest_per_key(records, lambda r: r.entity[0])

    assert newest == {"a": records[3], "b": records[2]}


def test_epoch_ms_exact_for_all_years() -> None:
    for moment in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2107, 4, 1, 0, 0, 0, 445_000, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ):
        epoch_ms = to_epoch_ms(moment)
        assert datetime_from_ms(epoch_ms) == moment.replace(
            microsecond=moment.microsecond // 1000 * 1000
        )
    assert to_epoch_ms(datetime(2107, 4, 1, 0, 0, 0, 445_000, tzinfo=UTC)) == 4331059200445
    assert to_epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1


def test_epoch_ms_honours_the_offset() -> None:
    plus_two = timezone(timedelta(hours=2))

    assert to_epoch_ms(datetime(1970, 1, 1, 2, tzinfo=plus_two)) == 0
