"""Archive layout: folders, file names and the columns every file has.

``<archive>/<view>/event_date=YYYY-MM-DD/p<partition>-o<first offset>-o<last offset>.parquet``,
with the UTC date of each record's event time, and the partition and offset range of the
feature-log batch the file came from. Offsets are zero-padded to 12 digits so that names sort
by offset.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

EVENT_DATE = "event_date"
EVENT_TS = "event_ts"
LATEST_EVENT_TS = "latest_event_ts"
AVAILABLE_AT = "available_at"
VERSION = "version"
TIMESTAMP_COLUMNS = (EVENT_TS, LATEST_EVENT_TS, AVAILABLE_AT)
RECORD_COLUMNS = (*TIMESTAMP_COLUMNS, VERSION)
"""Columns every archive file has besides the join keys and the features."""

TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")

JOIN_KEYS_METADATA = b"streamfeat.join_keys"
FEATURES_METADATA = b"streamfeat.features"
"""Parquet schema metadata: JSON lists naming the join-key and feature columns, in order."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FILE_NAME = re.compile(r"^p(\d+)-o(\d+)-o(\d+)\.parquet$")


def event_date(event_ts_ms: int) -> str:
    """Return the UTC date of an epoch-millisecond time as ``YYYY-MM-DD``."""
    return (_EPOCH + timedelta(milliseconds=event_ts_ms)).date().isoformat()


def date_folder(archive_dir: Path, view: str, date: str) -> Path:
    """Return the folder of one view's records of one UTC date."""
    return archive_dir / view / f"{EVENT_DATE}={date}"


def file_name(partition: int, first_offset: int, last_offset: int) -> str:
    """Return the name of the file holding a batch of one feature-log partition."""
    return f"p{partition}-o{first_offset:012d}-o{last_offset:012d}.parquet"


def parse_file_name(name: str) -> tuple[int, int, int] | None:
    """Return (partition, first offset, last offset) of an archive file name, else None."""
    match = _FILE_NAME.match(name)
    if match is None:
        return None
    partition, first_offset, last_offset = (int(group) for group in match.groups())
    return partition, first_offset, last_offset
