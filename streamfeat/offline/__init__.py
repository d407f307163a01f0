"""Offline access: the Parquet archive of feature records, for training sets and exploration."""

from streamfeat.offline.archive import read_archive

__all__ = ["read_archive"]
