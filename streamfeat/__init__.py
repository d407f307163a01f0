"""streamfeat: streaming ML features, fresh in Redis and point-in-time correct in Parquet.

The public API: definitions (load a topology), the offline SDK (training sets, backfills, the
archive) and the online store. The worker, the sink and the local stack run from the
``streamfeat`` command.
"""

import importlib
from typing import TYPE_CHECKING, Any

from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import (
    Constraints,
    Entity,
    EventTime,
    Feature,
    FeatureView,
    Function,
    Source,
    Topology,
    ValidRange,
    Window,
)
from streamfeat.errors import (
    ConfigurationError,
    DefinitionError,
    OnlineStoreError,
    SerializationError,
    StreamfeatError,
)
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.online.store import OnlineStatus, OnlineValue

if TYPE_CHECKING:
    from streamfeat.offline.archive import read_archive
    from streamfeat.offline.backfill import backfill
    from streamfeat.offline.training_set import training_set

_OFFLINE = {
    "read_archive": "streamfeat.offline.archive",
    "backfill": "streamfeat.offline.backfill",
    "training_set": "streamfeat.offline.training_set",
}
"""The offline SDK, imported on first use: it loads pandas, DuckDB and pyarrow's dataset
module, about 100 MB that a worker process never needs."""


def __getattr__(name: str) -> Any:
    module = _OFFLINE.get(name)
    if module is None:
        raise AttributeError(f"module 'streamfeat' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ConfigurationError",
    "Constraints",
    "DefinitionError",
    "Entity",
    "EventTime",
    "Feature",
    "FeatureRecord",
    "FeatureView",
    "Function",
    "OnlineStatus",
    "OnlineStoreError",
    "OnlineValue",
    "RedisOnlineStore",
    "SerializationError",
    "Source",
    "StreamfeatError",
    "Topology",
    "ValidRange",
    "Window",
    "backfill",
    "load_topology",
    "read_archive",
    "training_set",
]
