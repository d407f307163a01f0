"""The demo's closing figures: dead letters counted from headers, archive rows, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamfeat.demo.summary import (
    DemoSummary,
    Headers,
    count_archive_rows,
    count_rejections,
)


def dead_letter(reason: str | None, views: str | None) -> Headers:
    headers: list[tuple[str, str | bytes | None]] = [
        ("streamfeat.source", b"flights"),
        ("streamfeat.offset", b"17"),
    ]
    if reason is not None:
        headers.append(("streamfeat.reason", reason.encode()))
    if views is not None:
        headers.append(("streamfeat.views", views.encode()))
    return headers


def test_rejections_count_each_named_view() -> None:
    letters = [dead_letter("missing_key", "plane_7d")] * 3 + [
        dead_letter("constraint", "airport_1h,carrier_24h,plane_7d")
    ]

    counts = count_rejections(letters)

    assert counts == {
        "airport_1h": {"constraint": 1},
        "carrier_24h": {"constraint": 1},
        "plane_7d": {"constraint": 1, "missing_key": 3},
    }


def test_rejections_without_headers_count_as_unknown() -> None:
    counts = count_rejections([None, dead_letter(None, "plane_7d"), dead_letter("late", "")])

    assert counts == {"plane_7d": {"unknown": 1}, "unknown": {"late": 1, "unknown": 1}}


def test_rejections_accept_text_header_values() -> None:
    letters: list[Headers] = [[("streamfeat.reason", "late"), ("streamfeat.views", "plane_7d")]]

    assert count_rejections(letters) == {"plane_7d": {"late": 1}}


def test_no_dead_letters_give_empty_counts() -> None:
    assert count_rejections([]) == {}


def write_rows(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"n": list(range(rows))}), path)


def test_archive_rows_sum_every_file_of_a_view(tmp_path: Path) -> None:
    write_rows(tmp_path / "plane_7d" / "event_date=2013-01-01" / "p0-o1-o2.parquet", 3)
    write_rows(tmp_path / "plane_7d" / "event_date=2013-01-02" / "p1-o1-o2.parquet", 4)
    write_rows(tmp_path / "airport_1h" / "event_date=2013-01-01" / "p0-o1-o2.parquet", 5)
    (tmp_path / "plane_7d" / "event_date=2013-01-02" / ".p2-o1-o2.parquet.tmp").write_bytes(b"")

    rows = count_archive_rows(tmp_path, ["plane_7d", "airport_1h", "carrier_24h"])

    assert rows == {"plane_7d": 7, "airport_1h": 5, "carrier_24h": 0}


def test_summary_prints_one_json_line(tmp_path: Path) -> None:
    summary = DemoSummary(
        events_in=336_776,
        rejected={"plane_7d": {"missing_key": 2_512}},
        online_keys=4_060,
        archive_rows={"plane_7d": 10},
        seconds=300.04,
        events_per_second=1_234.56,
    )

    line = summary.json_line()
    summary.write(tmp_path / "out" / "summary.json")

    assert "\n" not in line
    assert json.loads(line) == {
        "events_in": 336_776,
        "rejected": {"plane_7d": {"missing_key": 2_512}},
        "online_keys": 4_060,
        "archive_rows": {"plane_7d": 10},
        "seconds": 300.0,
        "events_per_second": 1_234.6,
    }
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == json.loads(line)
