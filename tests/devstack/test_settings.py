"""StackSettings: ports and home folder from STREAMFEAT_* variables, and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfeat.devstack import StackSettings
from streamfeat.devstack._settings import default_home
from streamfeat.errors import ConfigurationError


def test_from_env_without_variables_uses_default_ports() -> None:
    settings = StackSettings.from_env({})

    assert settings.kafka_port == 19092
    assert settings.kafka_controller_port == 19093
    assert settings.redis_port == 16379
    assert settings.home == default_home()
    assert settings.bootstrap_servers == "127.0.0.1:19092"
    assert settings.redis_url == "redis://127.0.0.1:16379/0"


def test_default_home_is_dot_local_in_checkout() -> None:
    checkout = Path(__file__).resolve().parents[2]

    assert default_home() == checkout / ".local"


def test_controller_port_follows_broker_port() -> None:
    settings = StackSettings.from_env({"STREAMFEAT_KAFKA_PORT": "29092"})

    assert settings.kafka_port == 29092
    assert settings.kafka_controller_port == 29093


def test_from_env_reads_every_variable(tmp_path: Path) -> None:
    settings = StackSettings.from_env(
        {
            "STREAMFEAT_HOME": str(tmp_path),
            "STREAMFEAT_KAFKA_PORT": "29092",
            "STREAMFEAT_KAFKA_CONTROLLER_PORT": "29999",
            "STREAMFEAT_REDIS_PORT": "26379",
        }
    )

    assert settings == StackSettings(
        home=tmp_path, kafka_port=29092, kafka_controller_port=29999, redis_port=26379
    )


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    settings = StackSettings.from_env({"STREAMFEAT_HOME": "stack"})

    assert settings.home == tmp_path / "stack"


@pytest.mark.parametrize("value", ["abc", "0", "65536", "-5", "19092.5"])
def test_invalid_port_variable_is_rejected(value: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"STREAMFEAT_REDIS_PORT='{value}'"):
        StackSettings.from_env({"STREAMFEAT_REDIS_PORT": value})


def test_same_port_twice_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"three different ports.*Redis 19092"):
        StackSettings(home=tmp_path, redis_port=19092)
