"""Online store: the latest feature values per (feature view, entity), served with statuses."""

from streamfeat.online.redis_store import DEFAULT_KEY_PREFIX, RedisOnlineStore
from streamfeat.online.store import OnlineStatus, OnlineStore, OnlineValue

__all__ = ["DEFAULT_KEY_PREFIX", "OnlineStatus", "OnlineStore", "OnlineValue", "RedisOnlineStore"]
