"""Ports and home folder of the local stack, with their environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streamfeat.errors import ConfigurationError

LOOPBACK = "127.0.0.1"

HOME_ENV = "STREAMFEAT_HOME"
KAFKA_PORT_ENV = "STREAMFEAT_KAFKA_PORT"
KAFKA_CONTROLLER_PORT_ENV = "STREAMFEAT_KAFKA_CONTROLLER_PORT"
REDIS_PORT_ENV = "STREAMFEAT_REDIS_PORT"

DEFAULT_KAFKA_PORT = 19092
DEFAULT_REDIS_PORT = 16379

_MAX_PORT = 65535


def default_home() -> Path:
    """Return ``.local/`` in the source checkout, or a per-user folder for an installed package.

    A checkout is recognised by the ``pyproject.toml`` beside the ``streamfeat`` package.
    """
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".local"
    return Path.home() / ".local" / "share" / "streamfeat"


@dataclass(frozen=True)
class StackSettings:
    """Home folder and loopback ports of one local stack."""

    home: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    kafka_controller_port: int = DEFAULT_KAFKA_PORT + 1
    redis_port: int = DEFAULT_REDIS_PORT

    def __post_init__(self) -> None:
        ports = {
            "Kafka broker": self.kafka_port,
            "Kafka controller": self.kafka_controller_port,
            "Redis": self.redis_port,
        }
        for role, port in ports.items():
            if not 1 <= port <= _MAX_PORT:
                raise ConfigurationError(
                    f"The {role} port {port} is invalid; choose a port from 1 to {_MAX_PORT}."
                )
        if len(set(ports.values())) < len(ports):
            listing = ", ".join(f"{role} {port}" for role, port in ports.items())
            raise ConfigurationError(
                f"The local stack needs three different ports but got {listing}; "
                f"set {KAFKA_PORT_ENV}, {KAFKA_CONTROLLER_PORT_ENV} and {REDIS_PORT_ENV} "
                "to distinct values."
            )

    @property
    def bootstrap_servers(self) -> str:
        """Kafka ``bootstrap.servers`` value for clients of the local broker."""
        return f"{LOOPBACK}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """URL of database 0 on the local Redis server."""
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackSettings:
        """Read the settings from ``STREAMFEAT_*`` variables, with defaults for unset ones.

        The controller port defaults to the broker port plus one, so moving the broker with
        ``STREAMFEAT_KAFKA_PORT`` alone moves both Kafka ports.
        """
        env = os.environ if environ is None else environ
        home_value = env.get(HOME_ENV, "")
        home = Path(home_value).expanduser().absolute() if home_value else default_home()
        kafka_port = _port_from_env(env, KAFKA_PORT_ENV, DEFAULT_KAFKA_PORT)
        return cls(
            home=home,
            kafka_port=kafka_port,
            kafka_controller_port=_port_from_env(env, KAFKA_CONTROLLER_PORT_ENV, kafka_port + 1),
            redis_port=_port_from_env(env, REDIS_PORT_ENV, DEFAULT_REDIS_PORT),
        )


def _port_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    if not value:
        return default
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= _MAX_PORT:
        raise ConfigurationError(
            f"{name}={value!r} is not a valid port; set it to a number from 1 to {_MAX_PORT}."
        )
    return port
