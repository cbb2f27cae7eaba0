"""Spatial metrics of one lattice snapshot: where immune cells sit relative to the tumour.

The job of this module is to turn a cell-type lattice (int8 codes, ``-1`` =
empty site; ``(ny, nx)`` in 2D, ``(nz, ny, nx)`` in 3D) and, optionally, the
snapshot's per-cell rows into numbers a biologist would measure on a stained
section: CD8 density in the tumour core and at the invasive margin (the
"immune contexture" of Galon et al. 2006, Science 313:1960), tumour-CD8
contacts, the CD8/Treg ratio, and STAT3-high fractions by distance from the
tumour edge.

Conventions used throughout
---------------------------
* The lattice is bounded: sites outside it do not exist (they are neither
  tumour nor immune cells); Moore neighbourhoods have 8 sites in 2D and 26 in
  3D, fewer at edges and corners.
* Distances are in µm, between site centres, with isotropic spacing
  ``site_um``; densities are per mm² for 2D lattices and per mm³ for 3D ones.
* Cell roles are taken from type names (see :func:`codes_for_role`):
  ``tumour``, ``cd8`` (with its states such as ``cd8_exhausted``) and
  ``treg``.  A role with no type in the scenario gives NaN metrics, never an
  exception.

Only numpy, scipy.ndimage and (for two functions) pandas and
:mod:`tme_abm.io` are used; Mesa, numba and the model are not imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "SNAPSHOT_METRICS",
    "cd8_core_margin_density",
    "cd8_treg_ratio",
    "codes_for_role",
    "distance_from_tumour_edge_um",
    "infiltrating_cd8",
    "neighbour_any",
    "run_metrics",
    "snapshot_metrics",
    "stat3_high_fraction_by_distance",
    "tumour_cd8_contact_fraction",
    "tumour_region",
]

#: Keys of :func:`snapshot_metrics` (and :func:`run_metrics`), in order.
SNAPSHOT_METRICS = (
    "cd8_core_density",
    "cd8_margin_density",
    "cd8_core_margin_ratio",
    "tumour_cd8_contact_fraction",
    "infiltrating_cd8",
    "stat3_high_fraction_tumour",
    "stat3_high_fraction_cd8",
    "stat3_high_fraction_treg",
)

_ROLES = ("tumour", "cd8", "treg")


# ------------------------------------------------------------------ helpers


def _snapshot_lattice(lattice: np.ndarray) -> np.ndarray:
    """``lattice`` as an array, checked to be one snapshot: (ny, nx) or (nz, ny, nx)."""
    arr = np.asarray(lattice)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"expected one snapshot's lattice, (ny, nx) or (nz, ny, nx); got shape {arr.shape}"
        )
    return arr


def _check_site_um(site_um: float) -> float:
    value = float(site_um)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"site_um must be a positive number, got {site_um!r}")
    return value


def _is_in(lattice: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    return np.isin(lattice, np.asarray(list(codes), dtype=np.int64))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; NaN when either is NaN or the denominator is 0."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


# ------------------------------------------------------------------ roles


def codes_for_role(type_codes: Mapping[str, int], role: str) -> list[int]:
    """Lattice codes of the cell types that play ``role``.

    A type plays ``role`` when its name is ``role`` or starts with
    ``role + "_"``: role ``"cd8"`` covers ``cd8`` and ``cd8_exhausted`` (an
    exhausted CD8 T cell still stains CD8), the same rule as
    ``tools/validate.py``'s ``cd8_type_names``.

    Parameters
    ----------
    type_codes
        Cell-type name -> lattice code (``"empty"``, if present, is ignored).
    role
        A type name such as ``"tumour"``, ``"cd8"`` or ``"treg"``.

    Returns
    -------
    list of int
        The codes, sorted; empty when no type plays the role.
    """
    return sorted(
        int(code)
        for name, code in type_codes.items()
        if name != "empty" and (name == role or name.startswith(role + "_"))
    )


# ------------------------------------------------------------------ neighbours


def neighbour_any(mask: np.ndarray, spatial_ndim: int = 2) -> np.ndarray:
    """True where at least one Moore neighbour (not the site itself) is True.

    ``mask`` is boolean with the spatial axes last (``spatial_ndim`` of them;
    leading axes, e.g. snapshots, are kept). The lattice is bounded (sites
    outside it count as False): 8 neighbours in 2D, 26 in 3D, fewer at edges.
    """
    mask = np.asarray(mask, dtype=bool)
    lead = mask.ndim - spatial_ndim
    pad = [(0, 0)] * lead + [(1, 1)] * spatial_ndim
    p = np.pad(mask, pad, constant_values=False)
    out = np.zeros_like(mask)
    shape = mask.shape[lead:]
    for offset in np.ndindex(*(3,) * spatial_ndim):
        if all(o == 1 for o in offset):
            continue  # the site itself
        window = tuple(slice(o, o + s) for o, s in zip(offset, shape, strict=True))
        out |= p[(Ellipsis, *window)]
    return out


def infiltrating_cd8(
    lattice: np.ndarray,
    cd8_codes: Sequence[int],
    tumour_codes: Sequence[int],
    spatial_ndim: int = 2,
) -> np.ndarray:
    """Number of CD8 cells with at least one tumour cell among their Moore neighbours.

    ``lattice`` holds cell-type codes (-1 empty) with the spatial axes last; the
    count is taken over them, so a (T, ny, nx) stack gives T counts and a single
    (ny, nx) lattice a 0-d array.
    """
    lattice = np.asarray(lattice)
    cd8 = np.isin(lattice, np.asarray(cd8_codes))
    near_tumour = neighbour_any(np.isin(lattice, np.asarray(tumour_codes)), spatial_ndim)
    axes = tuple(range(lattice.ndim - spatial_ndim, lattice.ndim))
    return np.count_nonzero(cd8 & near_tumour, axis=axes)


def tumour_cd8_contact_fraction(
    lattice: np.ndarray, cd8_codes: Sequence[int], tumour_codes: Sequence[int]
) -> float:
    """Fraction of tumour cells with at least one CD8 cell among their Moore neighbours.

    Parameters
    ----------
    lattice
        One snapshot's cell-type codes, (ny, nx) or (nz, ny, nx); -1 empty.
    cd8_codes, tumour_codes
        Codes counted as CD8 and as tumour cells.

    Returns
    -------
    float
        ``(tumour cells touching >= 1 CD8 cell) / (tumour cells)``, in [0, 1];
        NaN when there is no tumour cell. Neighbourhood: the 8 (2D) or 26 (3D)
        Moore neighbours within the bounded lattice.
    """
    lattice = _snapshot_lattice(lattice)
    tumour = _is_in(lattice, tumour_codes)
    n_tumour = int(np.count_nonzero(tumour))
    if n_tumour == 0:
        return math.nan
    touching = tumour & neighbour_any(_is_in(lattice, cd8_codes), lattice.ndim)
    return int(np.count_nonzero(touching)) / n_tumour


def cd8_treg_ratio(
    lattice: np.ndarray, cd8_codes: Sequence[int], treg_codes: Sequence[int]
) -> float:
    """CD8 cells per Treg cell on the lattice.

    Parameters
    ----------
    lattice
        One snapshot's cell-type codes, (ny, nx) or (nz, ny, nx); -1 empty.
    cd8_codes, treg_codes
        Codes counted as CD8 and as regulatory T cells.

    Returns
    -------
    float
        ``count(CD8) / count(Treg)`` over the whole lattice; NaN when there is
        no Treg cell.
    """
    lattice = _snapshot_lattice(lattice)
    n_treg = int(np.count_nonzero(_is_in(lattice, treg_codes)))
    if n_treg == 0:
        return math.nan
    return int(np.count_nonzero(_is_in(lattice, cd8_codes))) / n_treg


# ------------------------------------------------------------------ tumour geometry


def tumour_region(lattice: np.ndarray, tumour_codes: Sequence[int]) -> np.ndarray:
    """Boolean mask of the tumour mass: tumour sites with their holes filled.

    A hole is a set of non-tumour sites (empty or holding any other cell)
    that is not face-connected to the lattice border through non-tumour
    sites (``scipy.ndimage.binary_fill_holes`` with its default face
    connectivity, the digital-topology complement of the 8/26-connected
    tumour). Immune cells and empty sites enclosed by tumour thus count as
    inside the tumour. The lattice border counts as outside: a tumour open
    towards the border encloses nothing on that side.

    Parameters
    ----------
    lattice
        One snapshot's cell-type codes, (ny, nx) or (nz, ny, nx); -1 empty.
    tumour_codes
        Codes counted as tumour cells.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as ``lattice``; all False without tumour cells.
    """
    lattice = _snapshot_lattice(lattice)
    return np.asarray(ndimage.binary_fill_holes(_is_in(lattice, tumour_codes)), dtype=bool)


def distance_from_tumour_edge_um(
    lattice: np.ndarray, tumour_codes: Sequence[int], site_um: float
) -> np.ndarray:
    """Signed distance of every site from the edge of the tumour region, in µm.

    With ``R`` = :func:`tumour_region` and ``edt`` the exact Euclidean distance
    (in sites, centre to centre) to the nearest site on the other side of the
    edge (``scipy.ndimage.distance_transform_edt``)::

        d = +(edt_to_nearest_outside_site - 1/2) * site_um   for sites in R
        d = -(edt_to_nearest_inside_site  - 1/2) * site_um   for sites outside R

    so the edge (d = 0) lies halfway between the centres of face-adjacent
    inside and outside sites: the outermost tumour sites have ``+site_um/2``,
    their face neighbours outside ``-site_um/2``.  For a straight edge along
    a lattice axis this is exactly the distance from the site centre to the
    edge; elsewhere it is the centre-to-centre distance less half a site.
    The definition is symmetric: swapping inside and outside flips the sign
    exactly, and it is invariant under flips and transposes of the lattice.
    The lattice border is not an edge: distances are measured to sites
    within the lattice only.

    Parameters
    ----------
    lattice
        One snapshot's cell-type codes, (ny, nx) or (nz, ny, nx); -1 empty.
    tumour_codes
        Codes counted as tumour cells.
    site_um
        Lattice spacing in µm (the run file's root attribute ``site_um``).

    Returns
    -------
    numpy.ndarray of float64
        Same shape as ``lattice``: positive inside the tumour region, negative
        outside; all NaN when there is no edge (no tumour, or every site in
        the tumour region).
    """
    lattice = _snapshot_lattice(lattice)
    site_um = _check_site_um(site_um)
    region = tumour_region(lattice, tumour_codes)
    if not region.any() or region.all():
        return np.full(lattice.shape, np.nan)
    to_outside = ndimage.distance_transform_edt(region)  # 0 outside R
    to_inside = ndimage.distance_transform_edt(~region)  # 0 inside R
    return np.where(region, to_outside - 0.5, -(to_inside - 0.5)) * site_um


def cd8_core_margin_density(
    lattice: np.ndarray,
    cd8_codes: Sequence[int],
    tumour_codes: Sequence[int],
    site_um: float,
    margin_um: float = 100.0,
) -> dict[str, float]:
    """CD8 cell density in the tumour core and at the invasive margin.

    After Galon et al. 2006 (Science 313:1960), who scored CD3/CD8 cells
    separately in the centre of the tumour (CT) and at the invasive margin
    (IM).  With ``d`` = :func:`distance_from_tumour_edge_um`:

    * core: ``d > margin_um`` (inside the tumour region, deeper than the margin);
    * margin: ``-margin_um <= d <= margin_um`` (a band of total width
      ``2 * margin_um`` centred on the edge, inside and outside; the
      Immunoscore uses a 1 mm band, i.e. ``margin_um=500``; the default 100 µm
      suits the small simulated lattices).

    A zone's size counts every site in it (empty or occupied) that lies
    within the lattice.

    Parameters
    ----------
    lattice
        One snapshot's cell-type codes, (ny, nx) or (nz, ny, nx); -1 empty.
    cd8_codes, tumour_codes
        Codes counted as CD8 and as tumour cells.
    site_um
        Lattice spacing in µm.
    margin_um
        Half-width of the margin band in µm (>= 0).

    Returns
    -------
    dict of str to float
        ``cd8_core_density`` and ``cd8_margin_density``: CD8 cells per mm² of
        the zone on a 2D lattice, per mm³ on a 3D one (NaN when the zone has
        no site: no tumour, or a tumour no thicker than the margin);
        ``cd8_core_margin_ratio``: core / margin density (NaN when either is
        NaN or the margin density is 0); ``n_cd8_core``, ``n_cd8_margin``:
        CD8 cells in each zone; ``core_sites``, ``margin_sites``: sites in
        each zone.
    """
    lattice = _snapshot_lattice(lattice)
    site_um = _check_site_um(site_um)
    margin_um = float(margin_um)
    if not (margin_um >= 0 and math.isfinite(margin_um)):
        raise ValueError(f"margin_um must be a finite number >= 0, got {margin_um!r}")
    d = distance_from_tumour_edge_um(lattice, tumour_codes, site_um)
    with np.errstate(invalid="ignore"):  # NaN compares False: no zone without a tumour
        core = d > margin_um
        margin = np.abs(d) <= margin_um
    cd8 = _is_in(lattice, cd8_codes)
    site_size_mm = (site_um / 1000.0) ** lattice.ndim  # mm^2 (2D) or mm^3 (3D)
    out: dict[str, float] = {}
    for zone, mask in (("core", core), ("margin", margin)):
        n_sites = int(np.count_nonzero(mask))
        n_cd8 = int(np.count_nonzero(cd8 & mask))
        out[f"cd8_{zone}_density"] = n_cd8 / (n_sites * site_size_mm) if n_sites else math.nan
        out[f"n_cd8_{zone}"] = float(n_cd8)
        out[f"{zone}_sites"] = float(n_sites)
    out["cd8_core_margin_ratio"] = _ratio(out["cd8_core_density"], out["cd8_margin_density"])
    return out


# ------------------------------------------------------------------ STAT3


def _cell_columns(cells: Mapping[str, Any], n_sites: int) -> tuple[np.ndarray, ...] | None:
    """(type, site, stat3) of a snapshot's cells, or None if a column is missing."""
    if not all(k in cells for k in ("type", "site", "stat3")):
        return None
    types = cells["type"]
    types = getattr(getattr(types, "cat", None), "codes", types)  # open_run's names: codes
    types = np.asarray(types).astype(np.int64).ravel()
    sites = np.asarray(cells["site"]).astype(np.int64).ravel()
    stat3 = np.asarray(cells["stat3"], dtype=np.float64).ravel()
    if not types.size == sites.size == stat3.size:
        raise ValueError("cells columns type, site and stat3 differ in length")
    if sites.size and (sites.min() < 0 or sites.max() >= n_sites):
        raise ValueError(f"cells site index outside the lattice (0..{n_sites - 1})")
    return types, sites, stat3


def stat3_high_fraction_by_distance(
    lattice: np.ndarray,
    cells: Mapping[str, Any],
    tumour_codes: Sequence[int],
    site_um: float,
    bin_edges_um: Sequence[float],
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Fraction of STAT3-high cells per cell type and per distance from the tumour edge.

    Each cell's distance is :func:`distance_from_tumour_edge_um` at its site
    (positive inside the tumour region).  Bins are half-open,
    ``bin_low_um <= d < bin_high_um``; use ``-inf``/``inf`` edges to catch
    everything.  A cell is STAT3-high when ``stat3 >= threshold`` (STAT3
    knock-out cells included, with their stored STAT3).

    Parameters
    ----------
    lattice
        The snapshot's cell-type codes, (ny, nx) or (nz, ny, nx); -1 empty.
    cells
        The snapshot's per-cell columns (``read_snapshot(...)["cells"]``);
        needs ``type``, ``site`` (flat index ``(z*ny + y)*nx + x``) and ``stat3``.
    tumour_codes
        Codes counted as tumour cells (they define the edge).
    site_um
        Lattice spacing in µm.
    bin_edges_um
        Strictly increasing bin edges in µm (at least two).
    threshold
        STAT3 level at or above which a cell is STAT3-high.

    Returns
    -------
    pandas.DataFrame
        One row per (cell type code present in ``cells``, bin), types
        ascending then bins in order, with columns ``type`` (code),
        ``bin_low_um``, ``bin_high_um``, ``n_cells``, ``n_high`` and
        ``fraction_high`` (``n_high / n_cells``, NaN for an empty bin).
        Without a tumour every distance is NaN and every bin is empty; with
        a cells table lacking a needed column the frame has no rows.
    """
    import pandas as pd

    lattice = _snapshot_lattice(lattice)
    edges = np.asarray(bin_edges_um, dtype=np.float64).ravel()
    if edges.size < 2 or np.isnan(edges).any() or not np.all(np.diff(edges) > 0):
        raise ValueError(f"bin_edges_um must be >= 2 strictly increasing values, got {edges}")
    columns = ["type", "bin_low_um", "bin_high_um", "n_cells", "n_high", "fraction_high"]
    got = _cell_columns(cells, lattice.size)
    if got is None:
        return pd.DataFrame({c: [] for c in columns})
    types, sites, stat3 = got
    d = distance_from_tumour_edge_um(lattice, tumour_codes, site_um).ravel()[sites]
    high = stat3 >= threshold
    rows: list[dict[str, Any]] = []
    for code in np.unique(types):
        of_type = types == code
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            with np.errstate(invalid="ignore"):
                in_bin = of_type & (d >= lo) & (d < hi)
            n = int(np.count_nonzero(in_bin))
            n_high = int(np.count_nonzero(in_bin & high))
            rows.append({"type": int(code), "bin_low_um": float(lo), "bin_high_um": float(hi),
                         "n_cells": n, "n_high": n_high,
                         "fraction_high": n_high / n if n else math.nan})
    return pd.DataFrame(rows, columns=columns)


def _stat3_high_fraction(
    cells: Mapping[str, Any], n_sites: int, codes: Sequence[int], threshold: float
) -> float:
    got = _cell_columns(cells, n_sites)
    if got is None or not codes:
        return math.nan
    types, _, stat3 = got
    of_role = np.isin(types, np.asarray(list(codes), dtype=np.int64))
    n = int(np.count_nonzero(of_role))
    return int(np.count_nonzero(of_role & (stat3 >= threshold))) / n if n else math.nan


# ------------------------------------------------------------------ summaries


def snapshot_metrics(
    snapshot: Mapping[str, Any],
    type_codes: Mapping[str, int],
    site_um: float,
    margin_um: float = 100.0,
    stat3_threshold: float = 0.5,
) -> dict[str, float]:
    """The spatial summary scalars of one snapshot (the keys of :data:`SNAPSHOT_METRICS`).

    Roles come from type names (:func:`codes_for_role`): tumour = ``tumour``
    (and ``tumour_*``), CD8 = ``cd8`` and ``cd8_*`` (e.g. ``cd8_exhausted``),
    Treg = ``treg`` (and ``treg_*``).

    Parameters
    ----------
    snapshot
        A dict like :func:`tme_abm.io.read_snapshot`'s: ``cell_type`` (the
        lattice) and ``cells`` (per-cell columns; may be empty).
    type_codes
        Cell-type name -> lattice code.
    site_um
        Lattice spacing in µm.
    margin_um
        Half-width of the invasive-margin band (:func:`cd8_core_margin_density`).
    stat3_threshold
        STAT3 level at or above which a cell is STAT3-high.

    Returns
    -------
    dict of str to float
        ``cd8_core_density``, ``cd8_margin_density`` (per mm² in 2D, per mm³
        in 3D), ``cd8_core_margin_ratio``, ``tumour_cd8_contact_fraction``,
        ``infiltrating_cd8`` (CD8 cells touching a tumour cell), and
        ``stat3_high_fraction_tumour``/``_cd8``/``_treg`` (fraction of that
        role's cells with STAT3 >= ``stat3_threshold``, from the cells table).
        Every value is NaN when a role it needs has no type in
        ``type_codes``, and the STAT3 fractions are NaN without a cells table
        or without cells of the role.
    """
    lattice = _snapshot_lattice(snapshot["cell_type"])
    cells = snapshot.get("cells") or {}
    codes = {role: codes_for_role(type_codes, role) for role in _ROLES}
    tumour, cd8 = codes["tumour"], codes["cd8"]
    out = dict.fromkeys(SNAPSHOT_METRICS, math.nan)
    if tumour and cd8:
        zones = cd8_core_margin_density(lattice, cd8, tumour, site_um, margin_um)
        for key in ("cd8_core_density", "cd8_margin_density", "cd8_core_margin_ratio"):
            out[key] = zones[key]
        out["tumour_cd8_contact_fraction"] = tumour_cd8_contact_fraction(lattice, cd8, tumour)
        out["infiltrating_cd8"] = float(infiltrating_cd8(lattice, cd8, tumour, lattice.ndim))
    for role in _ROLES:
        out[f"stat3_high_fraction_{role}"] = _stat3_high_fraction(
            cells, lattice.size, codes[role], stat3_threshold
        )
    return out


def run_metrics(
    path: str | Path,
    index: int = -1,
    margin_um: float = 100.0,
    stat3_threshold: float = 0.5,
) -> dict[str, float]:
    """:func:`snapshot_metrics` of one snapshot of a run file.

    Type names and codes come from ``/lattice/cell_type``'s ``flag_values``
    and ``flag_meanings``, the spacing from the root attribute ``site_um``.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.
    index
        Snapshot number; negative counts from the last complete snapshot.
    margin_um, stat3_threshold
        As for :func:`snapshot_metrics`.

    Returns
    -------
    dict of str to float
        The :data:`SNAPSHOT_METRICS`; all NaN when the file holds no
        complete snapshot.

    Raises
    ------
    tme_abm.io.RunFileError
        If the file is not a readable tme-abm run file.
    IndexError
        If the file holds snapshots but not ``index``.
    """
    from tme_abm.io import read_snapshot

    try:
        snapshot = read_snapshot(path, index)
    except IndexError:
        if _run_layout(path)[0] == 0:
            return dict.fromkeys(SNAPSHOT_METRICS, math.nan)
        raise
    _, site_um, type_codes = _run_layout(path)
    return snapshot_metrics(snapshot, type_codes, site_um, margin_um, stat3_threshold)


def _run_layout(path: str | Path) -> tuple[int, float, dict[str, int]]:
    """(complete snapshots, ``site_um``, cell-type name -> code) of a run file.

    Codes come from the lattice's ``flag_values``/``flag_meanings`` attributes.
    """
    import h5py

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    with h5py.File(path, "r", locking=False) as f:
        attrs = f["lattice/cell_type"].attrs
        names = text(attrs["flag_meanings"]).split()
        values = [int(v) for v in np.asarray(attrs["flag_values"]).ravel()]
        n = int(f["time"].shape[0])
        site_um = float(f.attrs["site_um"])
    codes = {name: v for name, v in zip(names, values, strict=True) if name != "empty"}
    return n, site_um, codes
