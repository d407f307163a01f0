"""The same event delivered twice: a duplicate with an event id, two events without one."""

from __future__ import annotations

import pytest

from tests.stream.conftest import CaseFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

COUNT = {
    "name": "c1h",
    "window": {"length": "1h"},
    "features": [
        {"name": "n", "function": "count"},
        {"name": "total", "function": "sum", "column": "amount"},
    ],
}


def test_event_with_known_id_is_dead_lettered_as_duplicate(stream_case: CaseFactory) -> None:
    case = stream_case(views=[COUNT], event_id="group_id")
    case.send("a", entity_id="k", group_id="id-1", ts="2025-02-03T10:00:00.000Z", amount=1.0)
    case.send("b", entity_id="k", group_id="id-1", ts="2025-02-03T10:00:00.000Z", amount=1.0)
    case.send("c", entity_id="k", group_id="id-2", ts="2025-02-03T10:00:05.000Z", amount=2.0)
    case.send("d", entity_id="k", group_id=None, ts="2025-02-03T10:00:06.000Z", amount=4.0)
    case.send("e", entity_id="k", group_id=None, ts="2025-02-03T10:00:06.000Z", amount=4.0)
    case.apply()

    letters = case.dead_letters()
    assert [(letter.label, letter.reason) for letter in letters] == [("b", "duplicate")]
    assert case.feature_log().value_as_of("c1h", "k", "2025-02-03T10:00:06.000Z") == [4, 11.0]


def test_equal_events_without_id_field_are_two_events(stream_case: CaseFactory) -> None:
    case = stream_case(views=[COUNT])
    case.send("a", entity_id="k", ts="2025-02-03T10:00:00.000Z", amount=1.0)
    case.send("b", entity_id="k", ts="2025-02-03T10:00:00.000Z", amount=1.0)
    case.apply()

    assert case.dead_letters() == []
    assert case.feature_log().value_as_of("c1h", "k", "2025-02-03T10:00:00.000Z") == [2, 2.0]
