"""The public surface re-exported from the package root."""

import streamfeat


def test_public_names_are_importable_from_the_package():
    for name in streamfeat.__all__:
        assert getattr(streamfeat, name) is not None, name


def test_public_surface_is_pinned():
    # fmt: off
    assert sorted(streamfeat.__all__) == [
        "ConfigurationError", "Constraints", "DefinitionError", "Entity", "EventTime", "Feature",
        "FeatureRecord", "FeatureView", "Function", "OnlineStatus", "OnlineStoreError",
        "OnlineValue", "RedisOnlineStore", "SerializationError", "Source", "StreamfeatError",
        "Topology", "ValidRange", "Window", "backfill", "load_topology", "read_archive",
        "training_set",
    ]
    # fmt: on
