"""Checks of one decoded event against its source definition.

``check_event`` covers the verdicts that depend on the event alone (keys, valid range, finite
numbers, constraints); duplicates and lateness depend on partition state and are judged by the
caller, in that order, after these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamfeat.definitions.durations import to_ms
from streamfeat.definitions.models import DEFAULT_RANGE_SLACK, Source
from streamfeat.featurelog.record import EntityKey
from streamfeat.quality.reasons import Reason


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of the event-level checks.

    ``reason`` is set when no view can use the event; ``keys`` maps each view that can use it
    to its entity key; ``missing_key_views`` names the views that cannot for lack of a key.
    """

    reason: Reason | None
    detail: str
    keys: dict[str, EntityKey]
    missing_key_views: tuple[str, ...]


def entity_key(event: Mapping[str, Any], join_keys: Sequence[str]) -> EntityKey | None:
    """Return an event's entity key, or None when a join key is null or empty ("0" is a key)."""
    values = []
    for name in join_keys:
        value = event.get(name)
        if value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        if text == "":
            return None
        values.append(text)
    return tuple(values)


class EventChecker:
    """Applies the event-level checks of one source."""

    def __init__(self, source: Source, view_join_keys: Mapping[str, Sequence[str]]) -> None:
        self.source = source
        self.view_join_keys = dict(view_join_keys)
        self.range_start_ms = _epoch_ms(source.valid_range.start)
        end = source.valid_range.end
        self.range_end_ms = None if end is None else _epoch_ms(end)
        self.slack_ms = to_ms(DEFAULT_RANGE_SLACK)
        self.constraints = source.constraints

    def check(self, event: Mapping[str, Any], event_ms: int | None, processing_ms: int) -> Verdict:
        """Judge one decoded event whose event time is ``event_ms`` (None when absent)."""
        keys: dict[str, EntityKey] = {}
        missing: list[str] = []
        for view, join_keys in self.view_join_keys.items():
            key = entity_key(event, join_keys)
            if key is None:
                missing.append(view)
            else:
                keys[view] = key
        if not keys:
            return Verdict(Reason.MISSING_KEY, "no view has its entity key", {}, tuple(missing))
        failure = self._event_failure(event, event_ms, processing_ms)
        if failure is not None:
            reason, detail = failure
            return Verdict(reason, detail, {}, tuple(missing))
        return Verdict(None, "", keys, tuple(missing))

    def _event_failure(
        self, event: Mapping[str, Any], event_ms: int | None, processing_ms: int
    ) -> tuple[Reason, str] | None:
        field = self.source.event_time.field
        if event_ms is None:
            return Reason.OUT_OF_RANGE, f"event time field {field!r} is null"
        end_ms = (
            self.range_end_ms if self.range_end_ms is not None else processing_ms + self.slack_ms
        )
        if not self.range_start_ms <= event_ms <= end_ms:
            valid = f"{self.range_start_ms}..{end_ms} ms"
            return Reason.OUT_OF_RANGE, f"event time {event_ms} ms is outside {valid}"
        for name, value in event.items():
            if isinstance(value, float) and not math.isfinite(value):
                return Reason.NOT_FINITE, f"field {name!r} is {value}"
        return self._constraint_failure(event)

    def _constraint_failure(self, event: Mapping[str, Any]) -> tuple[Reason, str] | None:
        constraints = self.constraints
        for name in constraints.required:
            if event.get(name) is None:
                return Reason.CONSTRAINT, f"required field {name!r} is null"
        for name, bounds in constraints.ranges.items():
            value = event.get(name)
            if value is None:
                continue
            if (bounds.min is not None and value < bounds.min) or (
                bounds.max is not None and value > bounds.max
            ):
                return (
                    Reason.CONSTRAINT,
                    f"field {name!r} = {value} is outside [{bounds.min}, {bounds.max}]",
                )
        for name, allowed in constraints.allowed_values.items():
            value = event.get(name)
            if value is not None and value not in allowed:
                return (
                    Reason.CONSTRAINT,
                    f"field {name!r} = {value!r} is not one of the allowed values",
                )
        for name, limit in constraints.max_length.items():
            value = event.get(name)
            if value is not None and len(value) > limit:
                return (
                    Reason.CONSTRAINT,
                    f"field {name!r} is {len(value)} long, above the limit {limit}",
                )
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1_000 + delta.microseconds // 1_000
