"""Where the sink cuts a partition's messages into batches, without a broker."""

from __future__ import annotations

from streamfeat.sink.batches import Batch, PartitionBatches


def messages(*offsets: int) -> tuple[list[int], list[bytes | None]]:
    return list(offsets), [f"m{offset}".encode() for offset in offsets]


def ranges(closed: list[tuple[Batch, int]]) -> list[tuple[int, int]]:
    return [(batch.start_offset, last) for batch, last in closed]


def test_batches_cut_at_max_messages() -> None:
    partition = PartitionBatches(next_start=None, known_ranges={})

    closed = partition.add(*messages(0, 1, 2, 3, 4, 5, 6), max_messages=3)

    assert ranges(closed) == [(0, 2), (3, 5)]
    assert partition.batch is not None
    assert partition.batch.offsets == [6]
    assert closed[1][0].values == [b"m3", b"m4", b"m5"]


def test_batch_fills_across_runs() -> None:
    partition = PartitionBatches(next_start=None, known_ranges={})

    first = partition.add(*messages(0, 1), max_messages=3)
    second = partition.add(*messages(2, 3), max_messages=3)

    assert first == []
    assert ranges(second) == [(0, 2)]


def test_archived_range_fixes_the_cut() -> None:
    partition = PartitionBatches(next_start=0, known_ranges={0: 4})

    closed = partition.add(*messages(0, 1, 2, 3, 4, 5, 6), max_messages=3)

    assert ranges(closed) == [(0, 4)]
    assert partition.batch is not None
    assert partition.batch.offsets == [5, 6]


def test_batch_ends_before_next_archived_range() -> None:
    partition = PartitionBatches(next_start=0, known_ranges={5: 9})

    closed = partition.add(*messages(0, 1, 2, 3, 4, 5), max_messages=100)

    assert ranges(closed) == [(0, 4)]
    assert partition.batch is not None
    assert partition.batch.forced


def test_compacted_gap_closes_at_limit() -> None:
    partition = PartitionBatches(next_start=0, known_ranges={0: 4})

    closed = partition.add(*messages(0, 2, 7), max_messages=100)

    assert ranges(closed) == [(0, 4)]
    assert partition.next_start == 5
    assert partition.batch is not None
    assert partition.batch.start_offset == 5
    assert partition.batch.offsets == [7]


def test_tombstones_count_but_keep_no_value() -> None:
    partition = PartitionBatches(next_start=None, known_ranges={})

    closed = partition.add([0, 1, 2], [b"a", None, b"c"], max_messages=3)

    [(batch, last)] = closed
    assert last == 2
    assert batch.messages == 3
    assert batch.values == [b"a", b"c"]
    assert batch.offsets == [0, 2]
