"""Counter-based random numbers keyed by (seed, tick, cell id, purpose).

Every random decision in a run is a pure function of its key, so results do not
depend on the number of threads, on the order in which a parallel loop visits
cells, or on how many draws other cells made before.  The generator is the
SplitMix64 finaliser (Steele, Lea & Flood 2014, "Fast splittable pseudorandom
number generators", OOPSLA) applied to the key words in turn; each finaliser
round is a bijection of 64-bit words with full avalanche, and the chained form
is the one used by counter-based "hash" generators.  Statistical checks are in
``tests/test_random.py``.

Usage inside a kernel::

    stream = stream_key(seed, tick, cell_id, PURPOSE_DIVIDE)
    u0 = uniform(stream, 0)   # first draw of that purpose
    u1 = uniform(stream, 1)   # second, independent draw
"""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53

# Purposes: one constant per kind of decision, so two decisions of one cell in
# one tick never share a stream.
PURPOSE_ORDER = 1
PURPOSE_DEATH = 2
PURPOSE_KILL = 3
PURPOSE_DIVIDE = 4
PURPOSE_TRANSFORM = 5
PURPOSE_MOVE = 6
PURPOSE_RECRUIT = 7
PURPOSE_PLACE = 8
PURPOSE_VESSEL = 9
PURPOSE_VESSEL_PLACE = 10
PURPOSE_TRANSFER = 11
PURPOSE_DEPLETE = 12
PURPOSE_TEST = 99


@numba.njit(inline="always", cache=True)
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser: a bijective 64-bit mixing function."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(inline="always", cache=True)
def tick_key(seed: int, tick: int) -> np.uint64:
    """The first two rounds of :func:`stream_key`, shared by every draw of one tick."""
    h = mix64(np.uint64(seed) + _GOLDEN)
    return mix64(h ^ (np.uint64(tick) * _GOLDEN + np.uint64(1)))


@numba.njit(inline="always", cache=True)
def cell_key(tick_hash: np.uint64, cell_id: int) -> np.uint64:
    """The third round of :func:`stream_key`: one cell's key in one tick."""
    return mix64(tick_hash ^ (np.uint64(cell_id) * _M1 + np.uint64(2)))


@numba.njit(inline="always", cache=True)
def purpose_stream(cell_hash: np.uint64, purpose: int) -> np.uint64:
    """The last round of :func:`stream_key`: one purpose's stream of one cell.

    ``purpose_stream(cell_key(tick_key(seed, tick), cell_id), purpose)`` equals
    ``stream_key(seed, tick, cell_id, purpose)``; kernels that draw for several
    purposes per cell compute the shared rounds once (3 of 4 mixes saved).
    """
    return mix64(cell_hash ^ (np.uint64(purpose) * _M2 + np.uint64(3)))


@numba.njit(inline="always", cache=True)
def stream_key(seed: int, tick: int, cell_id: int, purpose: int) -> np.uint64:
    """Hash the four key words into one 64-bit stream key.

    Parameters
    ----------
    seed, tick, cell_id, purpose
        Non-negative integers (cell ids and ticks may exceed 2**32).
    """
    return purpose_stream(cell_key(tick_key(seed, tick), cell_id), purpose)


@numba.njit(inline="always", cache=True)
def bits(stream: np.uint64, k: int) -> np.uint64:
    """The k-th 64-bit word of a stream."""
    # the explicit cast keeps the arithmetic in uint64 even if a caller passes
    # an int64 (numba would otherwise promote int64 + uint64 to float64)
    return mix64(np.uint64(stream) + (np.uint64(k) + np.uint64(1)) * _GOLDEN)


@numba.njit(inline="always", cache=True)
def uniform(stream: np.uint64, k: int) -> float:
    """The k-th uniform draw in [0, 1) of a stream, with 53 random bits."""
    return float(bits(stream, k) >> _S11) * _TWO_M53


@numba.njit(inline="always", cache=True)
def randint(stream: np.uint64, k: int, n: int) -> int:
    """The k-th integer draw, uniform on 0..n-1 (n >= 1; bias < n / 2**53)."""
    return min(int(uniform(stream, k) * n), n - 1)


@numba.njit(cache=True)
def uniform_array(seed: int, tick: int, ids: np.ndarray, purpose: int, k: int) -> np.ndarray:
    """Draw ``uniform(stream_key(seed, tick, ids[i], purpose), k)`` for every id."""
    out = np.empty(ids.shape[0], dtype=np.float64)
    tk = tick_key(seed, tick)  # the rounds shared by every id
    for i in range(ids.shape[0]):
        out[i] = uniform(purpose_stream(cell_key(tk, ids[i]), purpose), k)
    return out
