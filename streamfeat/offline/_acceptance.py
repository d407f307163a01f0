"""Duplicates and lateness of checked events, judged in delivery order as one partition does.

An event that passed the event-level checks is a ``duplicate`` when its id was accepted before
and is still remembered (while the watermark is below that event time plus the longest window),
else ``late`` when it is below the watermark. The watermark is the highest accepted event time
so far minus the allowed lateness.

Neither late events nor duplicates move the watermark, and a late event lies below the highest
accepted time anyway. So the watermark before each event is a running maximum over the events
that are not duplicates, which numpy computes in one pass. Only events whose id occurs more than
once can be duplicates. Those are judged one by one, and the running maximum is recomputed until
the verdicts stop changing. Each round settles at least the earliest event still judged wrongly,
because a verdict depends only on earlier events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

NO_TIME = np.iinfo(np.int64).min
"""Running maximum before the first accepted event."""


@dataclass(frozen=True)
class Acceptance:
    """Verdicts on the events that passed the event-level checks, row by row."""

    duplicate: Mask
    late: Mask
    accepted: Mask
    watermark_ms: Ints
    """Watermark just before each row; ``NO_TIME`` before the first accepted event."""
    emission_ms: int | None
    """The partition's emission clock after the last event (its final watermark)."""


def judge_order(
    ts_ms: Ints,
    passed: Mask,
    event_ids: pa.Array | None,
    allowed_lateness_ms: int,
    id_memory_ms: int,
) -> Acceptance:
    """Judge duplicates and lateness of the rows in ``passed``, in row (delivery) order.

    ``event_ids`` contains each row's event id as text (null when it has none), or is None when
    the source declares no id field.
    """
    repeated, id_codes = _repeated_ids(event_ids, passed)
    duplicate = np.zeros(len(ts_ms), dtype=bool)
    for _ in range(len(repeated) + 1):
        highest = _previous_maximum(ts_ms, passed & ~duplicate)
        below = (highest != NO_TIME) & (ts_ms < highest - allowed_lateness_ms)
        judged = _duplicates(
            repeated, id_codes, ts_ms, highest, below, allowed_lateness_ms, id_memory_ms
        )
        if np.array_equal(judged, duplicate):
            break
        duplicate = judged
    late = passed & ~duplicate & below
    accepted = passed & ~duplicate & ~late
    watermark = np.where(highest == NO_TIME, NO_TIME, highest - allowed_lateness_ms)
    emission = int(ts_ms[accepted].max()) - allowed_lateness_ms if accepted.any() else None
    return Acceptance(duplicate, late, accepted, watermark, emission)


def _previous_maximum(ts_ms: Ints, counted: Mask) -> Ints:
    """Highest time among the counted rows before each row (``NO_TIME`` when none)."""
    running = np.maximum.accumulate(np.where(counted, ts_ms, NO_TIME)) if len(ts_ms) else ts_ms
    previous = np.empty_like(running)
    if len(running):
        previous[0] = NO_TIME
        previous[1:] = running[:-1]
    return previous


def _repeated_ids(event_ids: pa.Array | None, passed: Mask) -> tuple[Ints, Ints]:
    """Rows that passed and carry an id shared with another such row; every row's id code."""
    none = np.zeros(0, dtype=np.int64)
    if event_ids is None or len(event_ids) == 0:
        return none, none
    candidate_ids = event_ids.filter(pa.array(passed)).drop_null()
    # Ids are usually unique, and counting distinct values is cheaper than numbering them.
    if len(pc.unique(candidate_ids)) == len(candidate_ids):
        return none, none
    encoded = pc.dictionary_encode(event_ids)
    valid = np.asarray(encoded.indices.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    candidates = passed & valid
    counts = np.bincount(codes[candidates], minlength=len(encoded.dictionary) + 1)
    repeated = np.flatnonzero(candidates & (counts[np.maximum(codes, 0)] > 1))
    return repeated.astype(np.int64), codes


def _duplicates(
    repeated: Ints,
    id_codes: Ints,
    ts_ms: Ints,
    highest: Ints,
    below: Mask,
    allowed_lateness_ms: int,
    id_memory_ms: int,
) -> Mask:
    """Judge the rows with a repeated id one by one, given the running maximum before each."""
    duplicate = np.zeros(len(ts_ms), dtype=bool)
    remembered: dict[int, int] = {}
    for row in repeated.tolist():
        code = int(id_codes[row])
        seen_ms = remembered.get(code)
        watermark = None if highest[row] == NO_TIME else int(highest[row]) - allowed_lateness_ms
        if seen_ms is not None and (watermark is None or watermark < seen_ms + id_memory_ms):
            duplicate[row] = True
        elif not below[row]:
            remembered[code] = int(ts_ms[row])
    return duplicate
