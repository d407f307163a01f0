"""Done and stall detection of the demo, from made-up offsets and a hand-driven clock."""

from __future__ import annotations

from datetime import timedelta

from streamfeat.demo.completion import (
    CompletionWatch,
    OffsetSnapshot,
    PartitionOffsets,
    TopicPartitionKey,
    Verdict,
)

SOURCE = "flights"
REPARTITION = "streamfeat.flights.flights.by-plane"
LOG = "streamfeat.flights.feature-log"


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


def offsets(topic: str, pair: tuple[int | None, int]) -> dict[TopicPartitionKey, PartitionOffsets]:
    committed, end = pair
    return {(topic, 0): PartitionOffsets(committed=committed, low=0, end=end)}


def snapshot(
    *,
    source: tuple[int | None, int] = (100, 100),
    repartition: tuple[int | None, int] = (100, 100),
    log: tuple[int | None, int] = (300, 300),
) -> OffsetSnapshot:
    """Build a one-partition-per-topic snapshot from (committed, end) pairs."""

    def offsets(
        topic: str, pair: tuple[int | None, int]
    ) -> dict[TopicPartitionKey, PartitionOffsets]:
        committed, end = pair
        return {(topic, 0): PartitionOffsets(committed=committed, low=0, end=end)}

    return OffsetSnapshot(
        worker={**offsets(SOURCE, source), **offsets(REPARTITION, repartition)},
        sink=offsets(LOG, log),
        source_topics=(SOURCE,),
    )


def watch(clock: FakeClock, stall_s: float = 120) -> CompletionWatch:
    return CompletionWatch(timedelta(seconds=stall_s), monotonic_s=clock)


def test_snapshot_caught_up_when_every_group_at_end() -> None:
    assert snapshot().caught_up


def test_snapshot_behind_on_any_topic() -> None:
    assert not snapshot(source=(99, 100)).caught_up
    assert not snapshot(repartition=(10, 100)).caught_up
    assert not snapshot(log=(None, 300)).caught_up


def test_partition_without_commit_counts_from_low() -> None:
    empty = PartitionOffsets(committed=None, low=0, end=0)
    trimmed = PartitionOffsets(committed=None, low=5, end=8)

    assert empty.caught_up
    assert empty.position == 0
    assert not trimmed.caught_up
    assert trimmed.position == 5


def test_snapshot_counts_per_stage() -> None:
    current = snapshot(source=(40, 100), repartition=(7, 90), log=(250, 300))

    assert current.events_processed == 40
    assert current.events_total == 100
    assert current.forwarded_aggregated == 7
    assert current.forwarded_total == 90
    assert current.records_archived == 250
    assert current.records_total == 300


def test_done_after_two_caught_up_checks() -> None:
    clock = FakeClock()
    completion = watch(clock)

    assert completion.observe(snapshot()) is Verdict.WAITING
    assert completion.observe(snapshot()) is Verdict.DONE


def test_lagging_check_between_resets_confirmation() -> None:
    clock = FakeClock()
    completion = watch(clock)

    assert completion.observe(snapshot()) is Verdict.WAITING
    # A clock mark arrived on the repartition topic and is not committed yet.
    assert completion.observe(snapshot(repartition=(100, 112))) is Verdict.WAITING
    assert completion.observe(snapshot(repartition=(112, 112))) is Verdict.WAITING
    assert completion.observe(snapshot(repartition=(112, 112))) is Verdict.DONE


def test_stalled_when_no_offset_moves_for_timeout() -> None:
    clock = FakeClock()
    completion = watch(clock, stall_s=120)
    behind = snapshot(source=(50, 100))

    assert completion.observe(behind) is Verdict.WAITING
    clock.now_s += 119
    assert completion.observe(behind) is Verdict.WAITING
    clock.now_s += 1
    assert completion.observe(behind) is Verdict.STALLED


def test_moving_offset_restarts_stall_timer() -> None:
    clock = FakeClock()
    completion = watch(clock, stall_s=120)

    assert completion.observe(snapshot(source=(50, 100))) is Verdict.WAITING
    clock.now_s += 100
    assert completion.observe(snapshot(source=(51, 100))) is Verdict.WAITING
    clock.now_s += 100
    assert completion.observe(snapshot(source=(51, 100))) is Verdict.WAITING
    assert completion.seconds_without_progress == 100


def test_sink_progress_alone_counts_as_progress() -> None:
    clock = FakeClock()
    completion = watch(clock, stall_s=120)

    assert completion.observe(snapshot(log=(10, 300))) is Verdict.WAITING
    clock.now_s += 119
    assert completion.observe(snapshot(log=(20, 300))) is Verdict.WAITING
    clock.now_s += 119
    assert completion.observe(snapshot(log=(20, 300))) is Verdict.WAITING
