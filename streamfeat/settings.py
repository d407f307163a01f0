"""Connection settings shared by every command, read from the environment.

``STREAMFEAT_KAFKA_BOOTSTRAP`` (default ``127.0.0.1:19092``) and ``STREAMFEAT_REDIS_URL``
(default ``redis://127.0.0.1:16379/0``) match the local stack's ports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:16379/0"


@dataclass(frozen=True)
class Settings:
    """Where Kafka and Redis listen."""

    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    redis_url: str = DEFAULT_REDIS_URL

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            kafka_bootstrap=os.environ.get("STREAMFEAT_KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP),
            redis_url=os.environ.get("STREAMFEAT_REDIS_URL", DEFAULT_REDIS_URL),
        )
