"""Range queries over one array for many half-open ranges ``[lo, hi)`` at once.

Minima and maxima come from a sparse table. Sums come from prefix sums when those are exact
(integral values whose absolute sum stays below 2**53), and otherwise from scans inside aligned
blocks, which add up only values inside the range, as a window's own partial sums do.
Prefix-sum differences over a long history would carry the rounding error of every earlier
value, which can swamp a small window after a large one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

_EXACT_LIMIT = 2.0**53
"""Below this, every integral float64 partial sum is exact."""


def range_counts(present: npt.NDArray[np.bool_], lo: Ints, hi: Ints) -> Ints:
    """Count the true values of ``present`` in each range."""
    prefix = np.zeros(len(present) + 1, dtype=np.int64)
    np.cumsum(present, out=prefix[1:])
    return prefix[hi] - prefix[lo]


def range_sums(values: Floats, lo: Ints, hi: Ints) -> Floats:
    """Sum ``values`` over each range; an empty range sums to 0."""
    if _prefix_sums_are_exact(values):
        prefix = np.zeros(len(values) + 1, dtype=np.float64)
        np.cumsum(values, out=prefix[1:])
        return prefix[hi] - prefix[lo]
    return _disjoint_sums(values, lo, hi)


def range_extremes(
    values: npt.NDArray[np.generic],
    lo: Ints,
    hi: Ints,
    pick: Callable[..., npt.NDArray[np.generic]],
) -> npt.NDArray[np.generic]:
    """Minimum or maximum (``pick`` is ``np.minimum`` or ``np.maximum``) over each range.

    Level ``k`` of the table contains the extreme of every run of ``2**k`` values, and a range
    is covered by two overlapping runs of its level. An empty range gives a meaningless value,
    which the caller masks.
    """
    span = np.maximum(hi - lo, 1)
    levels = _bit_length(span) - 1
    top = int(levels.max()) if len(levels) else 0
    tables = [values]
    for k in range(1, top + 1):
        previous = tables[-1]
        width = 1 << (k - 1)
        tables.append(pick(previous[:-width], previous[width:]))
    result = np.empty(len(lo), dtype=values.dtype)
    for k in np.unique(levels).tolist():
        rows = np.flatnonzero(levels == k)
        table = tables[k]
        left = np.clip(lo[rows], 0, len(table) - 1)
        right = np.clip(hi[rows] - (1 << k), 0, len(table) - 1)
        result[rows] = pick(table[left], table[right])
    return result


def _prefix_sums_are_exact(values: Floats) -> bool:
    return bool(np.all(values == np.floor(values)) and np.abs(values).sum() < _EXACT_LIMIT)


def _disjoint_sums(values: Floats, lo: Ints, hi: Ints) -> Floats:
    """Range sums from scans inside aligned blocks, each adding up only values in the range.

    For a range ``[l, r]`` (inclusive), the block size is ``2 ** (bit_length(l ^ r) - 1)``,
    capped at the smallest power of two that is not shorter than the longest range. Then ``l``
    and ``r`` lie in neighbouring aligned blocks. The sum is the scan from ``l`` to the end of
    its block plus the scan from the start of ``r``'s block to ``r``.
    """
    result = np.zeros(len(lo), dtype=np.float64)
    last = hi - 1
    single = lo == last
    result[single] = values[lo[single]]
    several = np.flatnonzero(lo < last)
    if len(several) == 0:
        return result
    left, right = lo[several], last[several]
    longest = int((right - left).max()) + 1
    top = int(_bit_length(np.array([longest - 1]))[0])
    exponents = np.minimum(_bit_length(left ^ right) - 1, top)
    for exponent in np.unique(exponents).tolist():
        rows = np.flatnonzero(exponents == exponent)
        from_start, to_end = _block_scans(values, 1 << exponent)
        result[several[rows]] = to_end[left[rows]] + from_start[right[rows]]
    return result


def _block_scans(values: Floats, size: int) -> tuple[Floats, Floats]:
    """Cumulative sums inside aligned blocks of ``size``, from each block's start and to its end."""
    padded = np.zeros(-(-len(values) // size) * size, dtype=np.float64)
    padded[: len(values)] = values
    blocks = padded.reshape(-1, size)
    from_start = np.cumsum(blocks, axis=1).reshape(-1)
    to_end = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    return from_start, to_end


def _bit_length(numbers: Ints) -> Ints:
    """Return ``int.bit_length`` of each non-negative value below 2**53."""
    _, exponents = np.frexp(numbers.astype(np.float64))
    return exponents.astype(np.int64)
