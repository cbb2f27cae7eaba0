"""The counter-based generator: uniformity, independence, reproducibility."""

import numba
import numpy as np
from scipy import stats

from tme_abm.core.random import (
    PURPOSE_DIVIDE,
    PURPOSE_MOVE,
    cell_key,
    purpose_stream,
    randint,
    stream_key,
    tick_key,
    uniform,
    uniform_array,
)

IDS = np.arange(200_000, dtype=np.int64)


def test_same_key_same_number_and_range():
    a = uniform_array(3, 10, IDS, PURPOSE_MOVE, 0)
    b = uniform_array(3, 10, IDS, PURPOSE_MOVE, 0)
    assert np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() < 1.0


def test_uniformity_chi_square():
    u = uniform_array(1, 0, IDS, PURPOSE_MOVE, 0)
    counts, _ = np.histogram(u, bins=100, range=(0, 1))
    # 99 degrees of freedom: a p-value below 1e-4 would mean a visibly non-uniform generator
    assert stats.chisquare(counts).pvalue > 1e-4
    assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_neighbouring_keys_are_uncorrelated():
    base = uniform_array(1, 5, IDS, PURPOSE_MOVE, 0)
    variants = {
        "next id": uniform_array(1, 5, IDS + 1, PURPOSE_MOVE, 0),
        "next tick": uniform_array(1, 6, IDS, PURPOSE_MOVE, 0),
        "next seed": uniform_array(2, 5, IDS, PURPOSE_MOVE, 0),
        "other purpose": uniform_array(1, 5, IDS, PURPOSE_DIVIDE, 0),
        "next draw": uniform_array(1, 5, IDS, PURPOSE_MOVE, 1),
    }
    # |r| for independent samples of 2e5 has sd 0.0022; 0.012 is > 5 sd
    for name, other in variants.items():
        r = np.corrcoef(base, other)[0, 1]
        assert abs(r) < 0.012, name
        assert not np.array_equal(base, other), name


@numba.njit
def _randints(n, m):
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = randint(stream_key(9, 1, i, PURPOSE_MOVE), 0, m)
    return out


@numba.njit
def _scalar_uniform(seed, tick, cell_id, purpose, k):
    return uniform(stream_key(seed, tick, cell_id, purpose), k)


def test_randint_is_uniform_over_its_range():
    draws = _randints(60_000, 7)
    assert draws.min() == 0 and draws.max() == 6
    counts = np.bincount(draws, minlength=7)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_uniform_matches_scalar_path():
    vals = uniform_array(4, 2, IDS[:10], PURPOSE_MOVE, 3)
    for i in range(10):
        assert vals[i] == _scalar_uniform(4, 2, i, PURPOSE_MOVE, 3)


def _splitmix_reference(seed, tick, cell_id, purpose, k):
    """The documented chain in plain Python integers (mod 2**64)."""
    mask = (1 << 64) - 1
    golden, m1, m2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

    def mix(z):
        z = ((z ^ (z >> 30)) * m1) & mask
        z = ((z ^ (z >> 27)) * m2) & mask
        return z ^ (z >> 31)

    h = mix((seed + golden) & mask)
    h = mix(h ^ ((tick * golden + 1) & mask))
    h = mix(h ^ ((cell_id * m1 + 2) & mask))
    h = mix(h ^ ((purpose * m2 + 3) & mask))
    return (mix((h + (k + 1) * golden) & mask) >> 11) * 2.0**-53


@numba.njit
def _split_uniform(seed, tick, cell_id, purpose, k):
    return uniform(purpose_stream(cell_key(tick_key(seed, tick), cell_id), purpose), k)


def test_streams_match_the_documented_splitmix_chain():
    # the kernels compute the shared rounds once per tick and per cell; both
    # paths must give the numbers of the plain four-round chain
    for seed, tick, cell_id, purpose, k in [
        (0, 0, 0, PURPOSE_MOVE, 0),
        (7, 123, 2**40 + 5, PURPOSE_DIVIDE, 3),
        (2**31 - 1, 10**6, 99, PURPOSE_MOVE, 1),
    ]:
        expected = _splitmix_reference(seed, tick, cell_id, purpose, k)
        assert _scalar_uniform(seed, tick, cell_id, purpose, k) == expected
        assert _split_uniform(seed, tick, cell_id, purpose, k) == expected
