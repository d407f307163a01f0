"""Archive sink: the feature-log topic written to Parquet, one folder per view and date."""

from streamfeat.sink.runner import ArchiveSink, SinkStats
from streamfeat.sink.source_types import load_source_types
from streamfeat.sink.writer import ArchiveWriter

__all__ = ["ArchiveSink", "ArchiveWriter", "SinkStats", "load_source_types"]
