"""Topology loading: YAML, pydantic errors with paths, and checks against the Avro schemas."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamfeat.definitions.loader import check_schemas, load_topology
from streamfeat.definitions.models import (
    Entity,
    EventTime,
    Feature,
    FeatureView,
    Function,
    Source,
    Topology,
    Window,
)
from streamfeat.errors import DefinitionError

REPO = Path(__file__).resolve().parents[2]

READING = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "sensor", "type": "string"},
        {"name": "site", "type": ["null", "string"], "default": None},
        {"name": "reading_id", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "observed_at", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "observed_text", "type": "string"},
        {"name": "maybe_at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        {"name": "value", "type": ["null", "double"], "default": None},
        {"name": "count", "type": "int"},
        {"name": "ok", "type": "boolean"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}

TOPOLOGY: dict[str, Any] = {
    "name": "sensors",
    "schemas_dir": "schemas",
    "entities": [{"name": "sensor", "join_keys": ["sensor"]}],
    "sources": [
        {
            "name": "readings",
            "topic": "readings",
            "schema": "reading.avsc",
            "event_time": {"field": "at"},
            "event_id": "reading_id",
        }
    ],
    "feature_views": [
        {
            "name": "sensor_1h",
            "entity": "sensor",
            "source": "readings",
            "window": {"length": "1h", "hop": "5m"},
            "features": [{"name": "n", "function": "count"}],
        },
        {
            "name": "sensor_1d",
            "entity": "sensor",
            "source": "readings",
            "window": {"length": "1d", "hop": "1h"},
            "features": [
                {"name": "mean_value", "function": "mean", "column": "value"},
                {"name": "latest", "function": "max", "column": "at"},
            ],
        },
    ],
}

Writer = Callable[..., Path]


@pytest.fixture
def write_topology(tmp_path: Path) -> Writer:
    """Write the sample topology, changed by ``change(topology)``, with its schema folder."""

    def write(
        change: Callable[[dict[str, Any]], None] | None = None, text: str | None = None
    ) -> Path:
        (tmp_path / "schemas").mkdir(exist_ok=True)
        (tmp_path / "schemas" / "reading.avsc").write_text(json.dumps(READING))
        topology = copy.deepcopy(TOPOLOGY)
        if change is not None:
            change(topology)
        file = tmp_path / "sensors.yml"
        file.write_text(text if text is not None else yaml.safe_dump(topology, sort_keys=False))
        return file

    return write


def _error(file: Path) -> str:
    with pytest.raises(DefinitionError) as caught:
        load_topology(file)
    return str(caught.value)


def test_sample_topology_loads(write_topology: Writer) -> None:
    topology = load_topology(write_topology())

    assert topology.view("sensor_1d").window.hop_ms == 3_600_000
    assert topology.view("sensor_1d").ttl == timedelta(days=1)


def test_flights_topology_loads() -> None:
    topology = load_topology(REPO / "topologies" / "flights.yml")
    source = topology.source("flights")

    assert [v.name for v in topology.feature_views] == ["airport_1h", "carrier_24h", "plane_7d"]
    assert source.partitions == 4
    assert source.event_time.zone == "America/New_York"
    assert source.event_id == "flight_id"
    assert topology.view("plane_7d").window.length == timedelta(days=7)


def test_bad_hop_names_file_path_and_fix(write_topology: Writer) -> None:
    def change(topology: dict[str, Any]) -> None:
        topology["feature_views"][1]["window"]["hop"] = "7h"

    file = write_topology(change)
    message = _error(file)

    assert message == (
        f"{file}: feature_views[1].window.hop: hop 7h does not divide length 1d; use a hop "
        "that divides 1d, such as 6h or 8h, or a length that is a multiple of 7h, such as 28h"
    )


def test_missing_field_says_add_it(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["sources"][0].pop("topic"))

    assert _error(file) == f"{file}: sources[0].topic is missing; add it"


def test_unknown_field_lists_allowed(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["sources"][0].update(topik="x"))

    message = _error(file)

    assert message.startswith(f"{file}: sources[0].topik is not a known field; remove it")
    assert "name, topic, schema, partitions, event_time" in message


def test_type_error_shows_value_without_url(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["feature_views"][0].update(version="two"))

    message = _error(file)

    assert message.startswith(f"{file}: feature_views[0].version is invalid: Input should be")
    assert "got 'two'" in message
    assert "pydantic.dev" not in message


def test_several_problems_list_other_paths(write_topology: Writer) -> None:
    def change(topology: dict[str, Any]) -> None:
        topology["feature_views"][0]["version"] = 0
        topology["feature_views"][1]["features"][0]["function"] = "median"

    message = _error(write_topology(change))

    assert "feature_views[0].version is invalid" in message
    assert "(more problems at: feature_views[1].features[0].function)" in message


def test_undefined_entity_is_named(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["feature_views"][0].update(entity="robot"))

    assert "feature view 'sensor_1h' names entity 'robot', which is not defined" in _error(file)


def test_invalid_yaml_names_line(write_topology: Writer) -> None:
    file = write_topology(text="name: x\nentities: [\n")

    message = _error(file)

    assert message.startswith(f"{file}: line 3, column 1: invalid YAML")


def test_repeated_key_is_rejected(write_topology: Writer) -> None:
    file = write_topology(text="name: a\nname: b\n")

    assert (
        _error(file) == f"{file}: line 2: key 'name' appears twice in one mapping; keep one of them"
    )


def test_non_mapping_file_is_rejected(write_topology: Writer) -> None:
    file = write_topology(text="- a\n- b\n")

    assert "must contain a mapping" in _error(file)


def test_missing_file_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.yml")

    assert "nope.yml: cannot read the topology file" in message


def test_missing_schema_file_is_named(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["sources"][0].update(schema="other.avsc"))

    assert "sources[0].schema: schema file 'other.avsc' not found in" in _error(file)


def _event_time(field: str, zone: str | None = None) -> Callable[[dict[str, Any]], None]:
    def change(topology: dict[str, Any]) -> None:
        topology["sources"][0]["event_time"] = {"field": field, "zone": zone}

    return change


def test_local_event_time_without_zone_fails(write_topology: Writer) -> None:
    file = write_topology(_event_time("observed_at"))

    assert _error(file) == (
        f"{file}: sources[0].event_time.zone: source 'readings': field 'observed_at' holds local "
        "times without a zone; declare event_time.zone, such as 'UTC' or 'Europe/Budapest'"
    )


def test_string_event_time_needs_zone(write_topology: Writer) -> None:
    file = write_topology(_event_time("observed_text"))

    assert "field 'observed_text' holds local times without a zone" in _error(file)


@pytest.mark.parametrize(
    ("field", "zone"),
    [("at", None), ("observed_at", "Europe/Budapest"), ("observed_text", "UTC")],
)
def test_event_time_kinds_accepted(write_topology: Writer, field: str, zone: str | None) -> None:
    topology = load_topology(write_topology(_event_time(field, zone)))

    assert topology.sources[0].event_time.field == field


def test_zone_on_utc_instant_is_rejected(write_topology: Writer) -> None:
    file = write_topology(_event_time("at", "UTC"))

    assert "holds UTC instants (timestamp-millis), so zone 'UTC' would be ignored" in _error(file)


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ("count", "field 'count' has type int, not a time"),
        ("maybe_at", "field 'maybe_at' is nullable"),
        ("nope", "field 'nope' is not in the schema; use one of: sensor, site"),
    ],
)
def test_bad_event_time_field(write_topology: Writer, field: str, problem: str) -> None:
    file = write_topology(_event_time(field))

    message = _error(file)

    assert message.startswith(f"{file}: sources[0].event_time.field: source 'readings': ")
    assert problem in message


def test_missing_event_id_field(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["sources"][0].update(event_id="uuid"))

    assert "sources[0].event_id: source 'readings': field 'uuid' is not in the schema" in _error(
        file
    )


def test_missing_join_key(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["entities"][0].update(join_keys=["sensor", "room"]))

    message = _error(file)

    assert (
        "feature_views[0].entity: source 'readings': join key 'room' of entity 'sensor'" in message
    )


def test_complex_join_key_is_rejected(write_topology: Writer) -> None:
    file = write_topology(lambda t: t["entities"][0].update(join_keys=["tags"]))

    assert "join key 'tags' has type array" in _error(file)


def _feature(function: str, column: str) -> Callable[[dict[str, Any]], None]:
    def change(topology: dict[str, Any]) -> None:
        topology["feature_views"][1]["features"][1] = {
            "name": "f",
            "function": function,
            "column": column,
            **({"quantile": 0.5} if function == "percentile" else {}),
        }

    return change


@pytest.mark.parametrize("function", ["sum", "mean", "variance", "stddev", "percentile"])
def test_numeric_function_rejects_string(write_topology: Writer, function: str) -> None:
    file = write_topology(_feature(function, "sensor"))

    assert _error(file) == (
        f"{file}: feature_views[1].features[1].column: source 'readings': "
        f"{function} needs a numeric column, but 'sensor' has type string"
    )


@pytest.mark.parametrize("function", ["sum", "mean", "min", "max", "stddev", "percentile"])
def test_numeric_function_accepts_nullable_number(write_topology: Writer, function: str) -> None:
    load_topology(write_topology(_feature(function, "value")))


@pytest.mark.parametrize("function", ["min", "max", "last"])
def test_timestamp_column_allowed_for_min_max_last(write_topology: Writer, function: str) -> None:
    load_topology(write_topology(_feature(function, "observed_at")))


def test_mean_of_timestamp_is_rejected(write_topology: Writer) -> None:
    file = write_topology(_feature("mean", "at"))

    assert "mean needs a numeric column, but 'at' has type instant" in _error(file)


def test_min_of_string_is_rejected(write_topology: Writer) -> None:
    file = write_topology(_feature("min", "sensor"))

    assert "min needs a numeric or timestamp column, but 'sensor' has type string" in _error(file)


@pytest.mark.parametrize(("function", "column"), [("last", "sensor"), ("distinct_count", "ok")])
def test_any_type_for_last_and_distinct(write_topology: Writer, function: str, column: str) -> None:
    load_topology(write_topology(_feature(function, column)))


def test_missing_column_is_named(write_topology: Writer) -> None:
    file = write_topology(_feature("max", "temperature"))

    assert "features[1].column: source 'readings': field 'temperature' is not in" in _error(file)


@pytest.mark.parametrize(
    ("constraints", "problem"),
    [
        (
            {"required": ["room"]},
            "sources[0].constraints.required: source 'readings': field 'room'",
        ),
        ({"ranges": {"sensor": {"min": 0}}}, "type string, but ranges need a numeric field"),
        ({"allowed_values": {"room": ["a"]}}, "constraints.allowed_values.room"),
        ({"max_length": {"count": 3}}, "type int, but max_length needs a string"),
    ],
)
def test_constraint_fields_are_checked(
    write_topology: Writer, constraints: dict[str, Any], problem: str
) -> None:
    file = write_topology(lambda t: t["sources"][0].update(constraints=constraints))

    assert problem in _error(file)


def _python_topology(column: str) -> Topology:
    return Topology(
        name="sensors",
        entities=(Entity(name="sensor", join_keys=("sensor",)),),
        sources=(
            Source(
                name="readings",
                topic="readings",
                schema="reading.avsc",
                event_time=EventTime(field="at"),
            ),
        ),
        feature_views=(
            FeatureView(
                name="sensor_1h",
                entity="sensor",
                source="readings",
                window=Window(length=timedelta(hours=1), hop=timedelta(minutes=5)),
                features=(Feature(name="s", function=Function.SUM, column=column),),
            ),
        ),
    )


def test_python_topology_checks_against_schemas(tmp_path: Path) -> None:
    (tmp_path / "reading.avsc").write_text(json.dumps(READING))

    check_schemas(_python_topology("value"), tmp_path)
    with pytest.raises(DefinitionError, match=r"^feature_views\[0\]\.features\[0\]\.column: "):
        check_schemas(_python_topology("sensor"), tmp_path)


def test_python_topology_defaults_ttl_to_window() -> None:
    view = _python_topology("value").view("sensor_1h")

    assert view.ttl == timedelta(hours=1)
