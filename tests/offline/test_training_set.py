"""Point-in-time join: one row per label, latest version by event time, as known then, TTL."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from streamfeat.definitions.models import Topology
from streamfeat.errors import ConfigurationError
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.offline.training_set import training_set
from streamfeat.sink.writer import ArchiveWriter
from tests.aggregation.harness import ms


def topology(view_name, window, features, ttl=None):
    view = {
        "name": view_name,
        "entity": "account",
        "source": "ledger",
        "window": window,
        "features": features,
    }
    if ttl is not None:
        view["ttl"] = ttl
    return Topology.model_validate(
        {
            "name": "pit",
            "entities": [{"name": "account", "join_keys": ["account"]}],
            "sources": [
                {
                    "name": "ledger",
                    "topic": "ledger",
                    "schema": "x.avsc",
                    "event_time": {"field": "ts"},
                }
            ],
            "feature_views": [view],
        }
    )


def write(archive, topo, view, rows):
    records = [
        FeatureRecord(view, 1, (entity,), ms(event_ts), ms(latest), values, ms(available))
        for entity, event_ts, latest, values, available in rows
    ]
    ArchiveWriter(topo, archive).write_batch(0, 0, len(records) - 1, records)


def labels(rows, columns=("account", "event_timestamp")):
    frame = pd.DataFrame(rows, columns=list(columns))
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


BALANCE = [{"name": "n", "function": "count"}, {"name": "total", "function": "sum", "column": "a"}]


@pytest.fixture
def corrected_archive(tmp_path):
    topo = topology("balance", {"length": "7d", "hop": "1d"}, BALANCE)
    write(
        tmp_path,
        topo,
        "balance",
        [
            (
                "e1",
                "2025-02-03T10:00:00.000Z",
                "2025-02-03T10:00:00.000Z",
                {"n": 1, "total": 100.0},
                "2025-02-03T10:00:05.000Z",
            ),
            (
                "e1",
                "2025-02-03T11:00:00.000Z",
                "2025-02-03T11:00:00.000Z",
                {"n": 2, "total": 200.0},
                "2025-02-03T11:00:05.000Z",
            ),
            (
                "e1",
                "2025-02-03T10:30:00.000Z",
                "2025-02-03T10:30:00.000Z",
                {"n": 2, "total": 110.0},
                "2025-02-03T13:00:00.000Z",
            ),
            (
                "e1",
                "2025-02-03T11:00:00.000Z",
                "2025-02-03T11:00:00.000Z",
                {"n": 3, "total": 210.0},
                "2025-02-03T13:00:00.000Z",
            ),
            (
                "e1",
                "2025-02-03T10:45:00.000Z",
                "2025-02-03T10:45:00.000Z",
                {"n": 3, "total": 120.0},
                "2025-02-04T09:00:00.000Z",
            ),
            (
                "e1",
                "2025-02-03T11:00:00.000Z",
                "2025-02-03T11:00:00.000Z",
                {"n": 4, "total": 220.0},
                "2025-02-04T09:00:00.000Z",
            ),
        ],
    )
    return topo, tmp_path


LABEL_TIMES = [
    "2025-02-03T10:30:00.000Z",
    "2025-02-03T12:00:00.000Z",
    "2025-02-03T14:00:00.000Z",
    "2025-02-05T00:00:00.000Z",
    "2025-02-03T09:59:59.999Z",
    "2025-02-03T10:45:00.000Z",
    "2025-02-03T12:00:00.000Z",
]


def values(frame):
    rows = []
    for n, total in zip(frame["balance__n"], frame["balance__total"], strict=True):
        rows.append(None if pd.isna(n) else (int(n), float(total)))
    return rows


def test_join_by_event_time_takes_latest_version(corrected_archive):
    topo, archive = corrected_archive
    result = training_set(labels([("e1", t) for t in LABEL_TIMES]), topo, archive)
    assert values(result) == [
        (2, 110.0),
        (4, 220.0),
        (4, 220.0),
        (4, 220.0),
        None,
        (3, 120.0),
        (4, 220.0),
    ]


def test_join_as_known_then_never_sees_later_versions(corrected_archive):
    topo, archive = corrected_archive
    result = training_set(
        labels([("e1", t) for t in LABEL_TIMES]), topo, archive, as_known_then=True
    )
    assert values(result) == [
        (1, 100.0),
        (2, 200.0),
        (3, 210.0),
        (4, 220.0),
        None,
        (1, 100.0),
        (2, 200.0),
    ]


def test_training_set_keeps_every_label_row_in_order(tmp_path):
    topo = topology(
        "orders_7d",
        {"length": "7d", "hop": "1d"},
        [
            {"name": "n_orders", "function": "count"},
            {"name": "spend", "function": "sum", "column": "a"},
        ],
    )
    write(
        tmp_path,
        topo,
        "orders_7d",
        [
            (
                "u1",
                "2025-02-01T08:00:00.000Z",
                "2025-02-01T08:00:00.000Z",
                {"n_orders": 1, "spend": 10.0},
                "2025-02-01T08:00:01.000Z",
            ),
            (
                "u1",
                "2025-02-03T11:00:00.000Z",
                "2025-02-03T11:00:00.000Z",
                {"n_orders": 2, "spend": 30.0},
                "2025-02-03T11:00:01.000Z",
            ),
            (
                "u2",
                "2025-02-03T11:30:00.000Z",
                "2025-02-03T11:30:00.000Z",
                {"n_orders": 1, "spend": 7.0},
                "2025-02-03T11:30:01.000Z",
            ),
        ],
    )
    rows = [
        ("r-1", 1, "u1", "2025-02-03T12:00:00.000Z"),
        ("r-2", 0, "u1", "2025-02-03T12:00:00.000Z"),
        ("r-3", 1, "u2", "2025-02-03T12:00:00.000Z"),
        ("r-4", 0, "u1", "2025-02-03T12:00:00.000Z"),
        ("r-4", 0, "u1", "2025-02-03T12:00:00.000Z"),
        ("r-5", 1, "u3", "2025-02-03T12:00:00.000Z"),
        ("r-6", 0, "u1", "2025-02-01T07:59:59.999Z"),
        ("r-7", 1, "u2", "2025-02-03T11:30:00.000Z"),
        ("r-8", 0, "u1", "2025-02-02T00:00:00.000Z"),
    ]
    frame = labels(rows, columns=("request_id", "label", "account", "event_timestamp"))
    result = training_set(frame, topo, tmp_path)
    assert list(result["request_id"]) == [r[0] for r in rows]
    assert list(result["label"]) == [r[1] for r in rows]
    got = [
        None if pd.isna(n) else (int(n), float(s))
        for n, s in zip(result["orders_7d__n_orders"], result["orders_7d__spend"], strict=True)
    ]
    assert got == [
        (2, 30.0),
        (2, 30.0),
        (1, 7.0),
        (2, 30.0),
        (2, 30.0),
        None,
        None,
        (1, 7.0),
        (1, 10.0),
    ]


def test_join_applies_ttl_from_latest_event_not_from_record(tmp_path):
    topo = topology(
        "txn",
        {"length": "1d"},
        [
            {"name": "txn_count", "function": "count"},
            {"name": "amount_sum", "function": "sum", "column": "a"},
        ],
        ttl="1h",
    )
    write(
        tmp_path,
        topo,
        "txn",
        [
            (
                "u1",
                "2025-02-03T10:00:00.000Z",
                "2025-02-03T10:00:00.000Z",
                {"txn_count": 1, "amount_sum": 5.0},
                "2025-02-03T10:00:01.000Z",
            ),
            (
                "u1",
                "2025-02-04T00:00:00.000Z",
                "2025-02-03T10:00:00.000Z",
                {"txn_count": 0, "amount_sum": None},
                "2025-02-04T03:00:01.000Z",
            ),
        ],
    )
    times = [
        "2025-02-03T09:59:59.999Z",
        "2025-02-03T10:00:00.000Z",
        "2025-02-03T11:00:00.000Z",
        "2025-02-03T11:00:00.001Z",
        "2025-02-04T00:00:00.000Z",
        "2025-02-04T01:00:00.000Z",
    ]
    result = training_set(labels([("u1", t) for t in times]), topo, tmp_path)
    got = [None if pd.isna(n) else int(n) for n in result["txn__txn_count"]]
    assert got == [None, 1, 1, None, None, None]


def test_naive_label_times_are_rejected(corrected_archive):
    topo, archive = corrected_archive
    frame = pd.DataFrame({"account": ["e1"], "event_timestamp": [datetime(2025, 2, 3, 12)]})
    with pytest.raises(ConfigurationError, match="without a time zone"):
        training_set(frame, topo, archive)


def test_far_future_label_time_is_exact(tmp_path):
    topo = topology("valid", {"length": "1d"}, [{"name": "n", "function": "count"}])
    write(
        tmp_path,
        topo,
        "valid",
        [
            (
                "e4",
                "2580-01-01T00:00:00.001Z",
                "2580-01-01T00:00:00.001Z",
                {"n": 1},
                "2025-02-03T10:00:00.000Z",
            ),
        ],
    )
    frame = pd.DataFrame(
        {
            "account": ["e4", "e4"],
            "event_timestamp": [
                datetime(2580, 1, 1, tzinfo=UTC),
                datetime(2580, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
            ],
        }
    )
    result = training_set(frame, topo, tmp_path)
    assert [None if pd.isna(n) else int(n) for n in result["valid__n"]] == [None, 1]


def test_missing_archive_folder_is_an_error(corrected_archive, tmp_path):
    topo, _ = corrected_archive
    with pytest.raises(ConfigurationError, match="does not exist"):
        training_set(labels([("e1", LABEL_TIMES[0])]), topo, tmp_path / "nowhere")


def test_view_without_records_is_an_error(corrected_archive, tmp_path):
    topo, _ = corrected_archive
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="contains no records of view 'balance'"):
        training_set(labels([("e1", LABEL_TIMES[0])]), topo, tmp_path / "empty")


def test_unknown_view_is_a_configuration_error(corrected_archive):
    topo, archive = corrected_archive
    with pytest.raises(ConfigurationError, match="feature view 'nope' is not defined"):
        training_set(labels([("e1", LABEL_TIMES[0])]), topo, archive, features=["nope"])
