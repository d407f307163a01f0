"""Online reads of values the real worker wrote: R13 statuses, the TTL bound, request order."""

from __future__ import annotations

import pytest

from tests.aggregation.harness import ms
from tests.stream.conftest import CaseFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TXN = {
    "name": "txn",
    "entity": "user",
    "window": {"length": "1d"},
    "ttl": "1h",
    "features": [
        {"name": "txn_count", "function": "count"},
        {"name": "amount_sum", "function": "sum", "column": "amount"},
    ],
}


def test_online_ttl_counts_from_latest_event(stream_case: CaseFactory) -> None:
    case = stream_case(views=[TXN], entities={"user": ["entity_id"]}, allowed_lateness="2h")
    case.send("t1", entity_id="u1", ts="2025-02-03T10:00:00.000Z", amount=5.0)
    case.send("t2", entity_id="u3", ts="2025-02-03T09:15:00.000Z", amount=9.0)
    case.apply()

    single_reads = {
        "O1": ("u1", "2025-02-03T10:30:00.000Z", "ok", [1, 5.0]),
        "O2": ("u1", "2025-02-03T11:00:00.000Z", "ok", [1, 5.0]),
        "O3": ("u1", "2025-02-03T11:00:00.001Z", "expired", None),
        "O4": ("u2", "2025-02-03T10:30:00.000Z", "not_found", None),
        "O5": ("u3", "2025-02-03T10:15:00.000Z", "ok", [1, 9.0]),
        "O6": ("u3", "2025-02-03T10:15:00.001Z", "expired", None),
    }
    for read, (entity, as_of, status, values) in single_reads.items():
        row = case.online_row("txn", entity, as_of)
        assert (row[0], row[3]) == (status, values), read

    o7 = case.online("txn", ["u1", "u2", "u3"], "2025-02-03T10:30:00.000Z")
    assert [value.entity for value in o7] == [("u1",), ("u2",), ("u3",)]
    assert [value.status.value for value in o7] == ["ok", "not_found", "expired"]
    assert [value.values for value in o7] == [{"txn_count": 1, "amount_sum": 5.0}, None, None]

    case.send("t3", entity_id="zz-0", ts="2025-02-04T03:00:00.000Z", amount=1.0)
    case.apply()
    # The boundary record (count 0 as of midnight) still carries u1's latest event, 14 h old.
    assert case.online_row("txn", "u1", "2025-02-04T00:00:00.000Z") == (
        "expired",
        ms("2025-02-04T00:00:00.000Z"),
        ms("2025-02-03T10:00:00.000Z"),
        None,
    )

    assert case.dead_letters() == []
    log = case.feature_log()
    expected = {
        ("u1", "2025-02-03T09:59:59.999Z"): None,
        ("u1", "2025-02-03T10:00:00.000Z"): [1, 5.0],
        ("u1", "2025-02-03T11:00:00.000Z"): [1, 5.0],
        ("u1", "2025-02-03T11:00:00.001Z"): None,
        ("u1", "2025-02-03T23:59:59.999Z"): None,
        ("u1", "2025-02-04T00:00:00.000Z"): None,
        ("u1", "2025-02-04T01:00:00.000Z"): None,
        ("u3", "2025-02-03T09:15:00.000Z"): [1, 9.0],
        ("u3", "2025-02-03T10:15:00.000Z"): [1, 9.0],
        ("u3", "2025-02-03T10:15:00.001Z"): None,
        ("u2", "2025-02-03T10:30:00.000Z"): None,
    }
    for (entity, iso), values in expected.items():
        assert log.value_as_of("txn", entity, iso) == values, (entity, iso)
    assert log.final_records("txn", "u1") == [
        (ms("2025-02-03T10:00:00.000Z"), ms("2025-02-03T10:00:00.000Z"), [1, 5.0]),
        (ms("2025-02-04T00:00:00.000Z"), ms("2025-02-03T10:00:00.000Z"), [0, None]),
    ]
