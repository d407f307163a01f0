"""Contract of every online store backend, run against the real local Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from streamfeat.definitions.models import Topology
from streamfeat.errors import ConfigurationError, OnlineStoreError
from streamfeat.featurelog.record import FeatureRecord, FeatureValue
from streamfeat.online import OnlineStatus, OnlineStore, RedisOnlineStore
from streamfeat.settings import Settings

pytestmark = pytest.mark.integration

T10 = datetime(2025, 2, 3, 10, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // MS


def txn(
    user: str,
    as_of: datetime,
    *,
    count: int = 1,
    amount: float | None = 5.0,
    latest: datetime | None = None,
    note: FeatureValue = None,
    version: int = 1,
) -> FeatureRecord:
    return FeatureRecord(
        view="txn",
        version=version,
        entity=(user,),
        event_ts_ms=ms(as_of),
        latest_event_ts_ms=ms(latest if latest is not None else as_of),
        values={"txn_count": count, "amount_sum": amount, "last_note": note},
        available_at_ms=ms(as_of) + 5_000,
    )


def read_one(store: OnlineStore, user: str, as_of: datetime) -> tuple[OnlineStatus, object]:
    [result] = store.read("txn", [(user,)], as_of)
    return result.status, result.values


def test_written_value_reads_ok(store: OnlineStore) -> None:
    store.write([txn("u1", T10, count=2, amount=7.5, version=3)])

    [result] = store.read("txn", [("u1",)], T10 + timedelta(minutes=30))

    assert result.status is OnlineStatus.OK
    assert result.values == {"txn_count": 2, "amount_sum": 7.5, "last_note": None}
    assert result.as_of_ms == ms(T10)
    assert result.as_of == T10
    assert result.latest_event_ts_ms == ms(T10)
    assert result.version == 3
    assert result.entity == ("u1",)
    assert result.message is None


@pytest.mark.parametrize(
    "value",
    [0, -1, 2**62, 1.0, 0.1, -0.0, 1e300, True, False, "", "0", "naïve ☃", None],
    ids=repr,
)
def test_values_round_trip_types(store: OnlineStore, value: FeatureValue) -> None:
    store.write([txn("u1", T10, note=value)])

    [result] = store.read("txn", [("u1",)], T10)

    assert result.values is not None
    stored = result.values["last_note"]
    assert stored == value
    assert type(stored) is type(value)


def test_older_write_never_replaces_newer(store: OnlineStore) -> None:
    store.write([txn("u1", T10, count=2)])

    replaced = store.write([txn("u1", T10 - MS, count=1)])

    assert replaced == 0
    assert read_one(store, "u1", T10)[1] == {"txn_count": 2, "amount_sum": 5.0, "last_note": None}


def test_write_with_same_as_of_replaces(store: OnlineStore) -> None:
    store.write([txn("u1", T10, count=2)])

    replaced = store.write([txn("u1", T10, count=3, latest=T10 - timedelta(minutes=5))])

    [result] = store.read("txn", [("u1",)], T10)
    assert replaced == 1
    assert result.values == {"txn_count": 3, "amount_sum": 5.0, "last_note": None}
    assert result.latest_event_ts_ms == ms(T10 - timedelta(minutes=5))


def test_newer_write_replaces_older(store: OnlineStore) -> None:
    store.write([txn("u1", T10, count=2)])

    store.write([txn("u1", T10 + MS, count=4)])

    [result] = store.read("txn", [("u1",)], T10 + MS)
    assert result.values == {"txn_count": 4, "amount_sum": 5.0, "last_note": None}
    assert result.as_of_ms == ms(T10 + MS)


def test_newest_in_batch_wins(store: OnlineStore) -> None:
    store.write(
        [
            txn("u1", T10 + timedelta(minutes=2), count=3),
            txn("u1", T10, count=1),
            txn("u1", T10 + timedelta(minutes=1), count=2),
        ]
    )

    [result] = store.read("txn", [("u1",)], T10 + timedelta(minutes=2))
    assert result.values is not None
    assert result.values["txn_count"] == 3
    assert result.as_of_ms == ms(T10 + timedelta(minutes=2))


def test_batch_tie_goes_to_later(store: OnlineStore) -> None:
    store.write([txn("u1", T10, count=1), txn("u1", T10, count=2), txn("u2", T10, count=9)])

    [u1, u2] = store.read("txn", [("u1",), ("u2",)], T10)

    assert u1.values is not None
    assert u1.values["txn_count"] == 2
    assert u2.values is not None
    assert u2.values["txn_count"] == 9


def test_older_batch_changes_nothing(store: OnlineStore) -> None:
    store.write([txn("u1", T10, count=5)])

    replaced = store.write([txn("u1", T10 - timedelta(hours=1), count=1), txn("u1", T10 - MS)])

    assert replaced == 0
    assert read_one(store, "u1", T10)[1] == {"txn_count": 5, "amount_sum": 5.0, "last_note": None}


def test_ttl_bound_is_inclusive(store: OnlineStore) -> None:
    store.write([txn("u1", T10)])

    at_bound = read_one(store, "u1", T10 + timedelta(hours=1))
    past_bound = read_one(store, "u1", T10 + timedelta(hours=1) + MS)

    assert at_bound == (OnlineStatus.OK, {"txn_count": 1, "amount_sum": 5.0, "last_note": None})
    assert past_bound == (OnlineStatus.EXPIRED, None)


def test_ttl_counts_from_latest_event(store: OnlineStore) -> None:
    # A slot-boundary value at midnight still carries the 10:00 event: 14 h old, so expired.
    midnight = datetime(2025, 2, 4, tzinfo=UTC)
    store.write([txn("u1", midnight, count=0, amount=None, latest=T10)])

    [result] = store.read("txn", [("u1",)], midnight)

    assert result.status is OnlineStatus.EXPIRED
    assert result.values is None
    assert result.as_of_ms == ms(midnight)
    assert result.latest_event_ts_ms == ms(T10)
    assert result.version == 1


def test_view_without_ttl_never_expires(store: OnlineStore) -> None:
    record = FeatureRecord("route_stats", 1, ("JFK", "LAX"), ms(T10), ms(T10), {"n": 4}, ms(T10))
    store.write([record])

    [result] = store.read("route_stats", [("JFK", "LAX")], datetime(9999, 12, 31, tzinfo=UTC))

    assert result.status is OnlineStatus.OK
    assert result.values == {"n": 4}


def test_never_written_entity_is_not_found(store: OnlineStore) -> None:
    store.write([txn("0", T10)])

    results = store.read("txn", [("u2",), ("",), ("None",), ("null",), ("0",)], T10)

    assert [r.status for r in results] == [OnlineStatus.NOT_FOUND] * 4 + [OnlineStatus.OK]
    assert results[0].values is None
    assert results[0].as_of_ms is None
    assert results[0].latest_event_ts_ms is None
    assert results[0].version is None


def test_value_later_than_as_of_is_too_old(store: OnlineStore) -> None:
    store.write([txn("u1", T10)])

    [result] = store.read("txn", [("u1",)], T10 - MS)

    assert result.status is OnlineStatus.TOO_OLD
    assert result.values is None
    assert result.as_of_ms == ms(T10)
    assert result.message is not None
    assert "point-in-time join" in result.message


def test_results_come_in_request_order(store: OnlineStore) -> None:
    store.write([txn("u1", T10), txn("u3", datetime(2025, 2, 3, 9, 15, tzinfo=UTC), amount=9.0)])

    results = store.read("txn", [("u1",), ("u2",), ("u3",), ("u1",)], T10 + timedelta(minutes=30))

    assert [r.entity for r in results] == [("u1",), ("u2",), ("u3",), ("u1",)]
    assert [r.status for r in results] == [
        OnlineStatus.OK,
        OnlineStatus.NOT_FOUND,
        OnlineStatus.EXPIRED,
        OnlineStatus.OK,
    ]
    assert results[0].values == {"txn_count": 1, "amount_sum": 5.0, "last_note": None}


def test_composite_keys_with_commas_stay_distinct(store: OnlineStore) -> None:
    store.write(
        [
            FeatureRecord("route_stats", 1, ("a,b", "c"), ms(T10), ms(T10), {"n": 1}, ms(T10)),
            FeatureRecord("route_stats", 1, ("a", "b,c"), ms(T10), ms(T10), {"n": 2}, ms(T10)),
        ]
    )

    first, second = store.read("route_stats", [("a,b", "c"), ("a", "b,c")], T10)

    assert first.values == {"n": 1}
    assert second.values == {"n": 2}


def test_read_of_chosen_features(store: OnlineStore) -> None:
    store.write([txn("u1", T10, count=2)])

    [result] = store.read("txn", [("u1",)], T10, features=["amount_sum"])

    assert result.values == {"amount_sum": 5.0}


def test_default_as_of_is_now(store: OnlineStore) -> None:
    now = datetime.now(UTC)
    store.write([txn("u1", now - timedelta(minutes=1)), txn("u2", now + timedelta(hours=1))])

    fresh, future = store.read("txn", [("u1",), ("u2",)])

    assert fresh.status is OnlineStatus.OK
    assert future.status is OnlineStatus.TOO_OLD


def test_unknown_view_names_known_views(store: OnlineStore) -> None:
    with pytest.raises(OnlineStoreError, match=r"'txns'.*route_stats, txn"):
        store.read("txns", [("u1",)], T10)


def test_unknown_feature_names_known_features(store: OnlineStore) -> None:
    with pytest.raises(OnlineStoreError, match=r"'amount'.*txn_count, amount_sum, last_note"):
        store.read("txn", [("u1",)], T10, features=["txn_count", "amount"])


def test_wrong_key_count_is_error(store: OnlineStore) -> None:
    with pytest.raises(OnlineStoreError, match=r"\['JFK'\].*origin, dest"):
        store.read("route_stats", [("JFK",)], T10)


def test_naive_as_of_is_an_error(store: OnlineStore) -> None:
    with pytest.raises(ConfigurationError, match="2025-02-03T10:00:00 has no time zone"):
        store.read("txn", [("u1",)], datetime(2025, 2, 3, 10))


def test_write_of_unknown_view_is_an_error(store: OnlineStore) -> None:
    record = FeatureRecord("nope", 1, ("u1",), ms(T10), ms(T10), {}, ms(T10))

    with pytest.raises(OnlineStoreError, match="'nope'"):
        store.write([record])


def test_write_with_wrong_key_count_is_error(store: OnlineStore) -> None:
    record = FeatureRecord("route_stats", 1, ("JFK",), ms(T10), ms(T10), {"n": 1}, ms(T10))

    with pytest.raises(OnlineStoreError, match=r"\['JFK'\].*origin, dest"):
        store.write([record])


def test_empty_write_and_read_need_no_server(topology: Topology) -> None:
    unreachable = RedisOnlineStore.from_url("redis://127.0.0.1:1/0", topology)

    assert unreachable.write([]) == 0
    assert unreachable.read("txn", [], T10) == []


def test_write_reloads_lost_script(store: OnlineStore, redis_client: redis.Redis) -> None:
    store.write([txn("u1", T10, count=1)])
    redis_client.script_flush()

    store.write([txn("u1", T10 + MS, count=2)])

    assert read_one(store, "u1", T10 + MS)[1] == {
        "txn_count": 2,
        "amount_sum": 5.0,
        "last_note": None,
    }


def test_redis_key_has_hash_tag(topology: Topology) -> None:
    backend = RedisOnlineStore.from_url(Settings.from_env().redis_url, topology)

    assert backend.key("route_stats", ("JFK", "LAX")) == 'sf:{route_stats|["JFK","LAX"]}'


class CountingRedis(redis.Redis):
    """A Redis client that counts requests sent to the server (a pipeline counts once)."""

    round_trips = 0

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipeline = super().pipeline(transaction, shard_hint)
        send = pipeline.execute

        def counted_execute(raise_on_error: bool = True) -> Any:
            self.round_trips += 1
            return send(raise_on_error)

        pipeline.execute = counted_execute  # type: ignore[method-assign]
        return pipeline

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return super().execute_command(*args, **options)


def test_batch_write_and_read_take_one_round_trip(topology: Topology) -> None:
    client = CountingRedis.from_url(Settings.from_env().redis_url)
    prefix = f"sftest-{uuid.uuid4().hex[:12]}"
    backend = RedisOnlineStore(client, topology, key_prefix=prefix)
    users = [f"u{i}" for i in range(20)]
    backend.write([txn("warm-up", T10)])  # loads the script when the server lacks it
    client.round_trips = 0

    backend.write([txn(user, T10 + MS * i) for i in range(3) for user in users])
    writes = client.round_trips
    results = backend.read("txn", [(user,) for user in users], T10 + timedelta(minutes=1))
    reads = client.round_trips - writes

    assert writes == 1
    assert reads == 1
    assert [r.as_of_ms for r in results] == [ms(T10 + 2 * MS)] * 20
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    backend.close()
