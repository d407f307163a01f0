"""The local development stack: a Kafka broker and a Redis server on loopback ports.

``LocalStack().up()`` resolves the Apache Kafka jars with Maven, starts a single-node KRaft
broker on the machine's Java and Debian's ``redis-server``, and waits until both respond.
``streamfeat stack up`` / ``down`` / ``status`` wrap it. Ports and the folder for jars, data
and logs come from ``STREAMFEAT_KAFKA_PORT``, ``STREAMFEAT_KAFKA_CONTROLLER_PORT``,
``STREAMFEAT_REDIS_PORT`` and ``STREAMFEAT_HOME`` (see ``StackSettings.from_env``).
"""

from streamfeat.devstack._service import ServiceStatus
from streamfeat.devstack._settings import StackSettings
from streamfeat.devstack._stack import (
    DEFAULT_DOWN_TIMEOUT,
    DEFAULT_UP_TIMEOUT,
    LocalStack,
    ServiceChange,
)

__all__ = [
    "DEFAULT_DOWN_TIMEOUT",
    "DEFAULT_UP_TIMEOUT",
    "LocalStack",
    "ServiceChange",
    "ServiceStatus",
    "StackSettings",
]
