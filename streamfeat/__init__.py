"""streamfeat: streaming ML features, fresh in Redis and point-in-time correct in Parquet.

The public API: definitions (load a topology), the offline SDK (training sets, backfills, the
archive) and the online store. The worker, the sink and the local stack run from the
``streamfeat`` command.
"""

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
from streamfeat.offline.archive import read_archive
from streamfeat.offline.backfill import backfill
from streamfeat.offline.training_set import training_set
from streamfeat.online.redis_store import RedisOnlineStore
from streamfeat.online.store import OnlineStatus, OnlineValue

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
