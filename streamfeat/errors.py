"""Exception hierarchy: every error streamfeat raises derives from StreamfeatError."""


class StreamfeatError(Exception):
    """Base class of every error streamfeat raises on purpose."""


class DefinitionError(StreamfeatError, ValueError):
    """A topology, source or feature view definition is invalid."""


class ConfigurationError(StreamfeatError, ValueError):
    """A setting, CLI argument or service configuration is invalid."""


class SerializationError(StreamfeatError, ValueError):
    """Bytes cannot be encoded or decoded with the declared schemas."""


class StackError(StreamfeatError, RuntimeError):
    """The local Kafka and Redis stack cannot be started, reached or stopped."""


class OnlineStoreError(StreamfeatError, LookupError):
    """An online read names a feature view or feature that does not exist."""


class DemoError(StreamfeatError, RuntimeError):
    """A process the demo started exited early or stopped making progress."""


class OnlineStoreUnavailable(OnlineStoreError):
    """The online store did not respond (connection refused, reset or timed out); retry later."""
