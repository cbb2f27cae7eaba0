"""Immune composition of the simulated tumour, counted as flow cytometry would.

The job of this module is to count cells of each type in a *tumour sample*:
the tumour region (:func:`tme_abm.analysis.spatial.tumour_region`, tumour
sites with enclosed holes) plus a band of ``margin_um`` outside its edge, the
tissue a dissection would take with the tumour.  Immune cells far from the
tumour, in the rest of the simulated slab, are not in the sample, just as
they would not be in a dissociated tumour.  From the counts come the shares
that papers report: each immune type as a fraction of all immune (CD45+)
cells in the sample, immune cells as a fraction of all cells, and the CD8 to
Treg ratio.

Only numpy and scipy (through :mod:`tme_abm.analysis.spatial`) are used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tme_abm.analysis.spatial import (
    _run_layout,
    _snapshot_lattice,
    codes_for_role,
    distance_from_tumour_edge_um,
    tumour_region,
)

__all__ = ["immune_composition", "run_composition", "tumour_sample"]


def tumour_sample(
    lattice: np.ndarray, tumour_codes: Sequence[int], site_um: float, margin_um: float = 100.0
) -> np.ndarray:
    """Boolean mask of the tumour sample: the tumour region and ``margin_um`` around it.

    A site is in the sample when its signed distance from the tumour edge
    (:func:`~tme_abm.analysis.spatial.distance_from_tumour_edge_um`) is at
    least ``-margin_um``.  With no tumour cell the sample is empty; when the
    tumour region fills the lattice it is every site.
    """
    lattice = _snapshot_lattice(lattice)
    if not math.isfinite(margin_um) or margin_um < 0:
        raise ValueError(f"margin_um must be a finite number >= 0, got {margin_um!r}")
    region = tumour_region(lattice, tumour_codes)
    if not region.any() or region.all():
        return region
    d = distance_from_tumour_edge_um(lattice, tumour_codes, site_um)
    return d >= -float(margin_um)


def immune_composition(
    lattice: np.ndarray,
    type_codes: Mapping[str, int],
    site_um: float,
    margin_um: float = 100.0,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Cell counts and immune shares in the tumour sample of one snapshot.

    Tumour cells are the types playing role ``tumour``
    (:func:`~tme_abm.analysis.spatial.codes_for_role`); every other type is
    counted as an immune cell.

    Parameters
    ----------
    lattice
        One snapshot's cell-type codes, (ny, nx) or (nz, ny, nx); -1 empty.
    type_codes
        Cell-type name -> lattice code.
    site_um
        Lattice spacing, µm.
    margin_um
        Width of the band outside the tumour edge that belongs to the sample.
    groups
        Optional name -> list of type names, e.g. ``{"macrophage": ["m1", "m2"]}``;
        each group's count and immune share are added (names not in
        ``type_codes`` are ignored).

    Returns
    -------
    dict
        ``counts`` (type or group -> cells in the sample), ``immune_share``
        (type or group -> fraction of immune cells, NaN with none),
        ``n_tumour``, ``n_immune``, ``immune_fraction`` (immune / all cells
        in the sample), ``cd8_per_treg`` (role ``cd8`` over role ``treg``;
        NaN without Tregs) and ``sample_sites``.
    """
    lattice = _snapshot_lattice(lattice)
    tumour = codes_for_role(type_codes, "tumour")
    sample = tumour_sample(lattice, tumour, site_um, margin_um)
    inside = lattice[sample]
    counts: dict[str, int] = {}
    for name, code in type_codes.items():
        if name != "empty":
            counts[name] = int(np.count_nonzero(inside == code))
    immune_types = [n for n in counts if int(type_codes[n]) not in tumour]
    n_tumour = sum(counts[n] for n in counts if n not in immune_types)
    n_immune = sum(counts[n] for n in immune_types)
    for gname, members in (groups or {}).items():
        counts[gname] = sum(counts.get(m, 0) for m in members if m in type_codes)

    def share(n: int) -> float:
        return n / n_immune if n_immune else math.nan

    immune_share = {
        n: share(c) for n, c in counts.items() if n in immune_types or n in (groups or {})
    }
    cd8 = sum(counts[n] for n in immune_types if n in _role_names(type_codes, "cd8"))
    treg = sum(counts[n] for n in immune_types if n in _role_names(type_codes, "treg"))
    total = n_tumour + n_immune
    return {
        "counts": counts,
        "immune_share": immune_share,
        "n_tumour": n_tumour,
        "n_immune": n_immune,
        "immune_fraction": n_immune / total if total else math.nan,
        "cd8_per_treg": cd8 / treg if treg else math.nan,
        "sample_sites": int(np.count_nonzero(sample)),
    }


def _role_names(type_codes: Mapping[str, int], role: str) -> set[str]:
    codes = set(codes_for_role(type_codes, role))
    return {n for n, c in type_codes.items() if n != "empty" and int(c) in codes}


def run_composition(
    path: str | Path,
    index: int = -1,
    margin_um: float = 100.0,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """:func:`immune_composition` of one snapshot of a run file.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.
    index
        Snapshot number; negative counts from the last complete snapshot.
    margin_um, groups
        As for :func:`immune_composition`.
    """
    from tme_abm.io import read_snapshot

    snapshot = read_snapshot(path, index)
    _, site_um, type_codes = _run_layout(path)
    return immune_composition(snapshot["cell_type"], type_codes, site_um, margin_um, groups)
