"""Definitions users write: entities, sources, feature views and the topology that holds them.

The models are pydantic; YAML files in ``topologies/`` and Python code build the same objects.
Durations accept ``timedelta`` or strings such as ``5m``; ``ttl: none`` means no TTL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from streamfeat.definitions.durations import format_duration, parse_duration, to_ms

MIN_EVENT_TIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
DEFAULT_RANGE_START = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_RANGE_SLACK = timedelta(days=1)
"""By default an event time may lie at most this far past the processing clock."""

NO_TTL = "none"


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Definition):
    """A thing features describe, identified by its join keys (a plane: ``tailnum``)."""

    name: str = Field(min_length=1)
    join_keys: tuple[str, ...] = Field(min_length=1)
    description: str = ""


class EventTime(_Definition):
    """The field that carries an event's time, and the zone of naive local values in it."""

    field: str = Field(min_length=1)
    zone: str | None = None

    @field_validator("zone")
    @classmethod
    def _zone_exists(cls, zone: str | None) -> str | None:
        if zone is None:
            return None
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {zone!r}; use an IANA zone name "
                "such as 'America/New_York' or 'UTC'"
            ) from None
        return zone


class ValidRange(_Definition):
    """Event times a source accepts, both ends inclusive; outside it an event is ``out_of_range``.

    ``end=None`` means the processing clock plus one day, evaluated per event.
    """

    start: datetime = DEFAULT_RANGE_START
    end: datetime | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware_and_bounded(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"{value.isoformat()} has no time zone; write it with one, such as 'Z'"
            )
        if not MIN_EVENT_TIME <= value <= MAX_EVENT_TIME:
            raise ValueError(
                f"{value.isoformat()} is outside "
                "0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z"
            )
        return value

    @model_validator(mode="after")
    def _start_not_after_end(self) -> ValidRange:
        if self.end is not None and self.end < self.start:
            raise ValueError(
                f"end {self.end.isoformat()} is before start {self.start.isoformat()}; "
                "swap them or widen the range"
            )
        return self


class NumericRange(_Definition):
    """Inclusive bounds for a numeric field; either end may be open."""

    min: float | None = None
    max: float | None = None


class Constraints(_Definition):
    """Data-quality rules; an event that breaks one is a dead letter with reason ``constraint``."""

    required: tuple[str, ...] = ()
    ranges: dict[str, NumericRange] = Field(default_factory=dict)
    allowed_values: dict[str, tuple[str | int, ...]] = Field(default_factory=dict)
    max_length: dict[str, int] = Field(default_factory=dict)


class Source(_Definition):
    """A Kafka topic of Avro events and how to read time and quality from them."""

    name: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    schema_file: str = Field(alias="schema", min_length=1)
    partitions: int = Field(default=1, ge=1)
    event_time: EventTime
    event_id: str | None = None
    allowed_lateness: Duration = timedelta(0)
    idle_timeout: Duration = timedelta(seconds=30)
    valid_range: ValidRange = ValidRange()
    constraints: Constraints = Constraints()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("allowed_lateness", "idle_timeout")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError(f"{value} is negative; use 0s or more")
        return value


class Function(StrEnum):
    """Aggregation functions; every one merges partial aggregates."""

    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    VARIANCE = "variance"
    STDDEV = "stddev"
    DISTINCT_COUNT = "distinct_count"
    PERCENTILE = "percentile"


_NEEDS_COLUMN = {f for f in Function if f is not Function.COUNT}


class Feature(_Definition):
    """One aggregation of a view: a function over a column (``count`` may omit the column)."""

    name: str = Field(min_length=1)
    function: Function
    column: str | None = None
    quantile: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _column_and_quantile(self) -> Feature:
        if self.function in _NEEDS_COLUMN and self.column is None:
            raise ValueError(f"feature {self.name!r}: {self.function.value} needs a 'column'")
        if (self.function is Function.PERCENTILE) != (self.quantile is not None):
            raise ValueError(
                f"feature {self.name!r}: set 'quantile' (between 0 and 1) for percentile "
                "and only for percentile"
            )
        return self


class Window(_Definition):
    """A window of ``length`` sliding by ``hop`` (tumbling when hop equals length)."""

    length: Duration
    hop: Duration | None = None

    @property
    def length_ms(self) -> int:
        return to_ms(self.length)

    @property
    def hop_ms(self) -> int:
        return to_ms(self.hop if self.hop is not None else self.length)

    @field_validator("length")
    @classmethod
    def _length_whole_ms(cls, length: timedelta) -> timedelta:
        if length <= timedelta(0) or length % _ONE_MS:
            raise ValueError(f"length {length} must be a positive whole number of milliseconds")
        return length

    @field_validator("hop")
    @classmethod
    def _hop_divides_length(cls, hop: timedelta | None, info: ValidationInfo) -> timedelta | None:
        # A field validator, not a model one, so that errors point at ``window.hop``.
        length = info.data.get("length")
        if hop is None or length is None:
            return hop
        length_ms, hop_ms = to_ms(length), to_ms(hop)
        if hop % _ONE_MS or hop_ms <= 0 or hop_ms > length_ms or length_ms % hop_ms != 0:
            raise ValueError(_hop_advice(length_ms, hop_ms))
        return hop


_ONE_MS = timedelta(milliseconds=1)


def _divisors(number: int) -> list[int]:
    small = [d for d in range(1, int(number**0.5) + 1) if number % d == 0]
    return sorted({*small, *(number // d for d in small)})


def _hop_advice(length_ms: int, hop_ms: int) -> str:
    divisors = _divisors(length_ms)
    smaller = max((d for d in divisors if d < hop_ms), default=None)
    larger = min((d for d in divisors if d > hop_ms), default=None)
    examples = [format_duration(timedelta(milliseconds=d)) for d in (smaller, larger) if d]
    length = format_duration(timedelta(milliseconds=length_ms))
    hop = format_duration(timedelta(milliseconds=max(hop_ms, 0)))
    advice = f"hop {hop} does not divide length {length}; use a hop that divides {length}"
    if examples:
        advice += ", such as " + " or ".join(examples)
    if 0 < hop_ms < length_ms:
        multiple = format_duration(timedelta(milliseconds=-(-length_ms // hop_ms) * hop_ms))
        advice += f", or a length that is a multiple of {hop}, such as {multiple}"
    return advice


class FeatureView(_Definition):
    """Features of one entity computed from one source over one window, with a TTL and a version."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    entity: str
    source: str
    window: Window
    features: tuple[Feature, ...] = Field(min_length=1)
    ttl: Duration | None = None
    version: int = Field(default=1, ge=1)
    owner: str = ""
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_ttl(cls, data: Any) -> Any:
        """A missing TTL is the window length; ``ttl: none`` (or None) means no TTL."""
        if isinstance(data, dict):
            if "ttl" not in data and "window" in data:
                window = data["window"]
                data = {
                    **data,
                    "ttl": window.length if isinstance(window, Window) else window.get("length"),
                }
            elif isinstance(data.get("ttl"), str) and data["ttl"].strip().lower() == NO_TTL:
                data = {**data, "ttl": None}
        return data

    @field_validator("ttl")
    @classmethod
    def _ttl_positive(cls, ttl: timedelta | None) -> timedelta | None:
        if ttl is not None and ttl <= timedelta(0):
            raise ValueError(f"ttl {ttl} must be positive; write 'none' for no TTL")
        return ttl

    @field_validator("features")
    @classmethod
    def _unique_feature_names(cls, features: tuple[Feature, ...]) -> tuple[Feature, ...]:
        names = [f.name for f in features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"feature names must be unique in a view; repeated: {', '.join(duplicates)}"
            )
        return features

    @property
    def ttl_ms(self) -> int | None:
        return None if self.ttl is None else to_ms(self.ttl)


class Topology(_Definition):
    """Everything one worker deployment computes: entities, sources and feature views."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    entities: tuple[Entity, ...] = Field(min_length=1)
    sources: tuple[Source, ...] = Field(min_length=1)
    feature_views: tuple[FeatureView, ...] = Field(min_length=1)
    schemas_dir: str = "../schemas"
    feature_log_topic: str | None = None
    dead_letter_topic: str | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> Topology:
        entities = {e.name for e in self.entities}
        sources = {s.name for s in self.sources}
        for kind, names in (
            ("entity", [e.name for e in self.entities]),
            ("source", [s.name for s in self.sources]),
            ("feature view", [v.name for v in self.feature_views]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(repeated)}")
        for view in self.feature_views:
            if view.entity not in entities:
                raise ValueError(
                    f"feature view {view.name!r} names entity {view.entity!r}, "
                    "which is not defined; "
                    f"defined entities: {', '.join(sorted(entities))}"
                )
            if view.source not in sources:
                raise ValueError(
                    f"feature view {view.name!r} names source {view.source!r}, "
                    "which is not defined; "
                    f"defined sources: {', '.join(sorted(sources))}"
                )
        return self

    @property
    def feature_log(self) -> str:
        """Name of the compacted feature-log topic."""
        return self.feature_log_topic or f"streamfeat.{self.name}.feature-log"

    @property
    def dead_letters(self) -> str:
        """Name of the dead-letter topic."""
        return self.dead_letter_topic or f"streamfeat.{self.name}.dead-letters"

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        known = ", ".join(e.name for e in self.entities)
        raise KeyError(f"entity {name!r} is not defined; defined entities: {known}")

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources)
        raise KeyError(f"source {name!r} is not defined; defined sources: {known}")

    def view(self, name: str) -> FeatureView:
        for view in self.feature_views:
            if view.name == name:
                return view
        known = ", ".join(v.name for v in self.feature_views)
        raise KeyError(f"feature view {name!r} is not defined; defined views: {known}")

    def views_of(self, source: str) -> tuple[FeatureView, ...]:
        return tuple(v for v in self.feature_views if v.source == source)
