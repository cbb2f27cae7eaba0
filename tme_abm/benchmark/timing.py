"""Timing helpers: repeated blocks of calls, medians."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence


def timed_blocks(
    call: Callable[[], object],
    repeats: int,
    min_block_s: float,
    max_calls: int = 50,
) -> tuple[list[float], int]:
    """Seconds per call, measured in ``repeats`` blocks of equal length.

    One untimed call first measures how long a call takes; each block then
    makes enough calls to last about ``min_block_s`` (1 to ``max_calls``), so
    that short calls are not lost in timer noise.

    Parameters
    ----------
    call
        What to time; called ``1 + repeats * calls_per_block`` times.
    repeats
        Number of timed blocks.
    min_block_s
        Wanted length of one block, seconds.
    max_calls
        Most calls per block.

    Returns
    -------
    samples, calls_per_block
        Mean seconds per call in each block, and the calls in each block.
    """
    t0 = time.perf_counter()
    call()
    first = max(time.perf_counter() - t0, 1e-9)
    per = max(1, min(max_calls, math.ceil(min_block_s / first)))
    samples = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _ in range(per):
            call()
        samples.append((time.perf_counter() - t0) / per)
    return samples, per


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))
