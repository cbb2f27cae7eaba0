"""Immune composition of the tumour sample (tme_abm.analysis.composition)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tme_abm.analysis.composition import immune_composition, tumour_sample

CODES = {"tumour": 0, "cd8": 1, "treg": 2, "mdsc": 3, "m1": 4, "m2": 5}
SITE_UM = 20.0


def _disc(n: int = 41, radius: float = 8.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    lattice = np.full((n, n), -1, dtype=np.int8)
    lattice[(yy - n // 2) ** 2 + (xx - n // 2) ** 2 <= radius**2] = CODES["tumour"]
    return lattice


def test_counts_cells_in_the_tumour_and_its_margin_only():
    lat = _disc()
    c = 41 // 2
    lat[c, c] = CODES["cd8"]  # inside the tumour
    lat[c, c + 11] = CODES["treg"]  # 3 sites beyond the edge (radius 8): 50 um < 100
    lat[c, c + 16] = CODES["m1"]  # 8 sites beyond: 150 um, outside the sample
    lat[2, 2] = CODES["mdsc"]  # far corner
    n_tumour = int(np.count_nonzero(lat == CODES["tumour"]))
    out = immune_composition(lat, CODES, SITE_UM, margin_um=100.0, groups={"t": ["cd8", "treg"]})
    assert out["counts"]["cd8"] == 1 and out["counts"]["treg"] == 1
    assert out["counts"]["m1"] == 0 and out["counts"]["mdsc"] == 0
    assert out["counts"]["t"] == 2 and out["immune_share"]["t"] == 1.0
    assert out["n_tumour"] == n_tumour and out["n_immune"] == 2
    assert out["immune_share"]["cd8"] == 0.5 and out["immune_share"]["mdsc"] == 0.0
    assert out["immune_fraction"] == pytest.approx(2 / (n_tumour + 2))
    assert out["cd8_per_treg"] == 1.0
    # a wider margin takes the macrophage in; none takes the Treg out
    assert immune_composition(lat, CODES, SITE_UM, margin_um=200.0)["counts"]["m1"] == 1
    assert immune_composition(lat, CODES, SITE_UM, margin_um=0.0)["counts"]["treg"] == 0


def test_sample_is_the_region_plus_a_band_of_the_margin_width():
    lat = _disc(n=61, radius=10.0)
    sample = tumour_sample(lat, [CODES["tumour"]], SITE_UM, margin_um=100.0)
    yy, xx = np.mgrid[:61, :61]
    r = np.hypot(yy - 30, xx - 30)
    assert sample[r <= 10].all()  # the whole disc
    assert sample[r <= 14.5].all()  # 4 sites out is within 100 um of the edge
    assert not sample[r >= 16.5].any()  # 6 or more sites out is not


def test_no_tumour_gives_an_empty_sample_and_nan_shares():
    lat = np.full((20, 20), -1, dtype=np.int8)
    lat[3, 3] = CODES["cd8"]
    out = immune_composition(lat, CODES, SITE_UM)
    assert out["sample_sites"] == 0 and out["n_immune"] == 0
    assert math.isnan(out["immune_fraction"]) and math.isnan(out["immune_share"]["cd8"])
    assert math.isnan(out["cd8_per_treg"])


def test_rejects_a_negative_margin():
    with pytest.raises(ValueError, match="margin_um"):
        tumour_sample(_disc(), [0], SITE_UM, margin_um=-1.0)
