"""The counter-based generator: uniformity, independence, reproducibility."""

import numba
import numpy as np
from scipy import stats

from tme_abm.core.random import (
    PURPOSE_DIVIDE,
    PURPOSE_MOVE,
    randint,
    stream_key,
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
