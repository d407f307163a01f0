"""The local Redis server: Debian's ``redis-server`` on a loopback port, without persistence."""

from __future__ import annotations

import redis

from streamfeat.devstack._process import require_executable
from streamfeat.devstack._service import LocalService, PortClaim
from streamfeat.devstack._settings import LOOPBACK, REDIS_PORT_ENV, StackSettings

_INSTALL_HINT = "sudo apt-get install redis-server"


class RedisServer(LocalService):
    """A ``redis-server`` process whose files live in ``<home>/redis``.

    Nothing is saved to disk (no RDB snapshots, no append-only file): the online store of a
    development stack starts empty after each restart.
    """

    name = "Redis server"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings.home / "redis", "redis")
        self._settings = settings

    @property
    def address(self) -> str:
        return self._settings.redis_url

    @property
    def ports(self) -> tuple[PortClaim, ...]:
        return (PortClaim(self._settings.redis_port, "Redis", REDIS_PORT_ENV),)

    def check_tools(self) -> None:
        require_executable("redis-server", _INSTALL_HINT)

    def probe(self, timeout_s: float) -> bool:
        client = redis.Redis(
            host=LOOPBACK,
            port=self._settings.redis_port,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _prepare(self) -> list[str]:
        executable = require_executable("redis-server", _INSTALL_HINT)
        return [
            executable,
            "--bind",
            LOOPBACK,
            "--port",
            str(self._settings.redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            # Redis would otherwise rewrite its command line to "redis-server ADDRESS",
            # which drops the arguments that _markers() looks for.
            "--set-proc-title",
            "no",
        ]

    def _markers(self) -> tuple[str, ...]:
        return ("--dir", str(self.directory))
