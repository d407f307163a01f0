"""Definition models: window checks, valid ranges and lookups by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import ValidRange, Window


def test_hop_error_points_at_hop() -> None:
    with pytest.raises(ValidationError) as caught:
        Window(length="7d", hop="5d")  # type: ignore[arg-type]

    error = caught.value.errors()[0]
    assert error["loc"] == ("hop",)
    assert "hop 5d does not divide length 1w" in error["msg"]
    assert "such as 84h or 1w" in error["msg"]


def test_sub_millisecond_length_is_rejected() -> None:
    with pytest.raises(ValidationError, match="positive whole number of milliseconds"):
        Window(length=timedelta(microseconds=1_500))


def test_sub_millisecond_hop_is_rejected() -> None:
    with pytest.raises(ValidationError, match="does not divide length 1h"):
        Window(length=timedelta(hours=1), hop=timedelta(milliseconds=1, microseconds=500))


def test_tumbling_window_hop_is_length() -> None:
    assert Window(length=timedelta(hours=1)).hop_ms == 3_600_000


def test_valid_range_end_before_start_is_rejected() -> None:
    with pytest.raises(ValidationError, match="is before start"):
        ValidRange(start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2019, 1, 1, tzinfo=UTC))


def test_unknown_entity_and_source_raise_key_error() -> None:
    topology = load_topology(Path(__file__).resolve().parents[2] / "topologies" / "flights.yml")

    assert topology.entity("plane").join_keys == ("tailnum",)
    with pytest.raises(KeyError, match="entity 'robot' is not defined; defined entities: airport"):
        topology.entity("robot")
    with pytest.raises(KeyError, match="source 'radar' is not defined; defined sources: flights"):
        topology.source("radar")
