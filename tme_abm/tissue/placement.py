"""Putting the cells of a cell table on the lattice, deterministically, with a report.

The job of this module is the geometry between a tissue section and the
model's lattice: crop the table to a window, scale it to µm, flip and rotate
it, centre it on the lattice, map its labels to the scenario's cell types (or
to vessel sites), and give every cell a site.  Where two cells fall on one
site, the one nearest the site's centre keeps it (ties: the earlier row) and
the others move to the nearest free site within ``max_shift_um``, taken in
table order, nearest site first (ties in a fixed order of offsets); a cell
with no free site in reach is dropped.  Nothing is random and nothing is
dropped unreported: :class:`TissueReport` counts every row by what became of
it, and every label the mapping does not name is an error unless it is listed
as ignored.

The same placement turns a real section into a lattice snapshot for
:mod:`tme_abm.tissue.compare`, so metrics see real and simulated tissue alike.
This module imports numpy and numba only (and :mod:`tme_abm.tissue.table`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from tme_abm.tissue.table import CellTable, TissueError

__all__ = ["PlacedTissue", "TissueReport", "place_cell_table", "place_spec_table",
           "shift_offsets", "stat3_from_values", "table_positions_um", "window_mask"]


@dataclass(frozen=True)
class TissueReport:
    """What became of every row of a cell table (counts), and how far cells moved."""

    rows: int
    placed: dict[str, int]
    vessels: int
    vessel_sites: int
    ignored: dict[str, int]
    outside_window: int
    outside_domain: int
    moved: int
    dropped_crowded: dict[str, int]
    max_shift_um: float
    mean_shift_um: float
    stat3_range: tuple[float, float] | None = None
    extent_um: tuple[tuple[float, float], ...] = field(default_factory=tuple)
    reach_um: float = 0.0

    @property
    def n_placed(self) -> int:
        """Cells put on the lattice."""
        return sum(self.placed.values())

    @property
    def n_dropped_crowded(self) -> int:
        """Cells that found no free site within reach."""
        return sum(self.dropped_crowded.values())

    def to_dict(self) -> dict:
        """A JSON-able dict (the run file stores it as ``tissue_report``)."""
        return {
            "rows": self.rows, "placed": self.placed, "vessels": self.vessels,
            "vessel_sites": self.vessel_sites, "ignored": self.ignored,
            "outside_window": self.outside_window, "outside_domain": self.outside_domain,
            "moved": self.moved, "dropped_crowded": self.dropped_crowded,
            "max_shift_um": self.max_shift_um, "mean_shift_um": self.mean_shift_um,
            "stat3_range": list(self.stat3_range) if self.stat3_range else None,
            "extent_um": [list(e) for e in self.extent_um],
            "reach_um": self.reach_um,
        }

    def lines(self) -> list[str]:
        """The report as short sentences, for the command line."""
        placed = ", ".join(f"{n} {t}" for t, n in self.placed.items() if n) or "none"
        out = [f"{self.rows} rows: {self.n_placed} cells placed ({placed})"]
        if self.vessels:
            out.append(f"{self.vessels} vessel rows -> {self.vessel_sites} vessel sites")
        if self.ignored:
            ign = ", ".join(f"{n} {label!r}" for label, n in self.ignored.items())
            out.append(f"ignored by ignore_labels: {ign}")
        if self.outside_window:
            out.append(f"{self.outside_window} rows outside the window")
        if self.outside_domain:
            out.append(f"{self.outside_domain} rows outside the lattice, dropped "
                       "(outside = 'drop')")
        if self.moved:
            out.append(f"{self.moved} cells moved to a free site nearby because theirs was "
                       f"taken (mean {self.mean_shift_um:.3g} um, at most "
                       f"{self.max_shift_um:.3g} um)")
        if self.n_dropped_crowded:
            dropped = ", ".join(f"{n} {t}" for t, n in self.dropped_crowded.items() if n)
            if self.reach_um > 0:
                out.append(f"{self.n_dropped_crowded} cells dropped: no free site within "
                           f"max_shift_um = {self.reach_um:g} um ({dropped}); a smaller "
                           "domain.site_um or a larger max_shift_um keeps more")
            else:
                out.append(f"{self.n_dropped_crowded} cells left out: one agent per site "
                           f"(max_shift_um = 0), and another cell was nearer its site's "
                           f"centre ({dropped})")
        if self.stat3_range is not None:
            lo, hi = self.stat3_range
            out.append(f"initial STAT3 = (value - {lo:.4g}) / ({hi:.4g} - {lo:.4g}), "
                       "clipped to [0, 1]")
        return out


@dataclass(frozen=True)
class PlacedTissue:
    """Cells on the lattice: flat site indices, type codes, initial STAT3; vessel sites.

    ``stat3`` is None when the table gave no STAT3 column (each type's
    default applies).  ``vessel_sites`` is None when the table marks no
    vessels (the scenario's random vessels apply), else a sorted array.
    ``rows`` is each placed cell's row in the file (0-based), and
    ``position_um`` its position on the lattice after the transform
    (``(n, 3)``: z, y, x; z is 0 in 2D).
    """

    sites: np.ndarray
    types: np.ndarray
    stat3: np.ndarray | None
    vessel_sites: np.ndarray | None
    rows: np.ndarray
    position_um: np.ndarray
    report: TissueReport


def shift_offsets(radius_sites: float, ndim: int) -> np.ndarray:
    """(dz, dy, dx) offsets within ``radius_sites``, nearest first, the origin excluded.

    Ties in distance are broken by (dz, dy, dx) ascending, so the search
    order, and with it the placement, is fixed.
    """
    r = int(math.floor(radius_sites))
    zs = range(-r, r + 1) if ndim == 3 else (0,)
    rows = [(dz, dy, dx) for dz in zs for dy in range(-r, r + 1) for dx in range(-r, r + 1)
            if 0 < dz * dz + dy * dy + dx * dx <= radius_sites * radius_sites + 1e-9]
    rows.sort(key=lambda o: (o[0] ** 2 + o[1] ** 2 + o[2] ** 2, o))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


@numba.njit(cache=True)
def _resolve(order, cz, cy, cx, dims, offsets, occupied, out_site):  # pragma: no cover - jit
    """Give each cell (in ``order``) its own site if free, else the nearest free one."""
    nz, ny, nx = dims[0], dims[1], dims[2]
    n_moved = 0
    # first pass: each cell in priority order takes its own site if still free
    for k in range(order.size):
        i = order[k]
        s = (cz[i] * ny + cy[i]) * nx + cx[i]
        if not occupied[s]:
            occupied[s] = True
            out_site[i] = s
    # second pass, in row order: the rest look for the nearest free site
    for i in range(cz.size):
        if out_site[i] >= 0:
            continue
        for j in range(offsets.shape[0]):
            z = cz[i] + offsets[j, 0]
            y = cy[i] + offsets[j, 1]
            x = cx[i] + offsets[j, 2]
            if z < 0 or z >= nz or y < 0 or y >= ny or x < 0 or x >= nx:
                continue
            s = (z * ny + y) * nx + x
            if not occupied[s]:
                occupied[s] = True
                out_site[i] = s
                n_moved += 1
                break
    return n_moved


def window_mask(table: CellTable, window: Sequence[float] | None, z_slab) -> np.ndarray:
    """Rows inside ``window`` (table units, ``[x0, x1, y0, y1(, z0, z1)]``) and ``z_slab``."""
    keep = np.ones(table.n, dtype=bool)
    if window is not None:
        x0, x1, y0, y1 = window[:4]
        keep &= (table.x >= x0) & (table.x < x1) & (table.y >= y0) & (table.y < y1)
        if len(window) == 6 and table.z is not None:
            keep &= (table.z >= window[4]) & (table.z < window[5])
    if z_slab is not None:
        keep &= (table.z >= z_slab[0]) & (table.z < z_slab[1])
    return keep


def table_positions_um(
    table: CellTable, keep: np.ndarray, dims: tuple[int, int, int], ndim: int, site_um: float,
    scale_um: float, rotate_deg: float, flip_y: bool, window: Sequence[float] | None,
    centre_um: Sequence[float] | None, z_um: float | None, use_z: bool,
    keep_coordinates: bool = False, frame: np.ndarray | None = None,
) -> np.ndarray:
    """Lattice positions (n, 3) in µm (z, y, x) of the kept rows, by the geometry of
    :func:`place_cell_table`; the table's centre is that of ``frame``'s rows
    (default: the kept rows) when no window is given."""
    x, y = table.x[keep], table.y[keep]
    fx = table.x[frame] if frame is not None else x
    fy = table.y[frame] if frame is not None else y
    if keep_coordinates:  # already lattice coordinates (e.g. an exported snapshot)
        pos = np.empty((x.size, 3), dtype=np.float64)
        pos[:, 2], pos[:, 1] = x * scale_um, y * scale_um
        if ndim == 2:
            pos[:, 0] = 0.5 * site_um
        elif use_z:
            pos[:, 0] = table.z[keep] * scale_um
        else:
            pos[:, 0] = 0.5 * dims[0] * site_um if z_um is None else z_um
        return pos
    if window is not None:
        cx, cy = 0.5 * (window[0] + window[1]), 0.5 * (window[2] + window[3])
    else:
        cx = 0.5 * (fx.min() + fx.max()) if fx.size else 0.0
        cy = 0.5 * (fy.min() + fy.max()) if fy.size else 0.0
    ux, uy = (x - cx) * scale_um, (y - cy) * scale_um
    if flip_y:
        uy = -uy
    theta = math.radians(rotate_deg)
    c, s = math.cos(theta), math.sin(theta)
    rx, ry = c * ux - s * uy, s * ux + c * uy
    extent = [n * site_um for n in dims]  # z, y, x
    if centre_um is None:
        centre = [0.5 * e for e in extent]
    else:
        centre = [0.5 * extent[0], *centre_um] if ndim == 2 else list(centre_um)
    pos = np.empty((x.size, 3), dtype=np.float64)
    pos[:, 2] = rx + centre[2]
    pos[:, 1] = ry + centre[1]
    if ndim == 2:
        pos[:, 0] = 0.5 * site_um
    elif use_z:
        z = table.z[keep]
        fz = table.z[frame] if frame is not None else z
        if len(window or ()) == 6:
            cz = 0.5 * (window[4] + window[5])
        else:
            cz = 0.5 * (fz.min() + fz.max()) if fz.size else 0.0
        pos[:, 0] = (z - cz) * scale_um + centre[0]
    else:
        pos[:, 0] = centre[0] if z_um is None else z_um
    return pos


def stat3_from_values(values: np.ndarray, stat3_range: Sequence[float] | None) -> tuple:
    """STAT3 in [0, 1] from a column: ``(values - low) / (high - low)``, clipped, with
    ``(low, high)`` = ``stat3_range`` or the values' 1st and 99th percentiles."""
    if stat3_range is None:
        lo, hi = (float(v) for v in np.percentile(values, [1.0, 99.0])) if values.size else (0, 1)
    else:
        lo, hi = float(stat3_range[0]), float(stat3_range[1])
    if not hi > lo:
        raise TissueError(
            "stat3_range",
            f"the STAT3 column's 1st and 99th percentiles are both {lo:g}: it cannot be "
            "rescaled; give stat3_range = [low, high] or drop stat3_column",
        )
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0), (lo, hi)


def place_cell_table(
    table: CellTable,
    *,
    dims: tuple[int, int, int],
    ndim: int,
    site_um: float,
    labels: Mapping[str, str],
    type_codes: Mapping[str, int],
    vessel_labels: Sequence[str] = (),
    ignore_labels: Sequence[str] = (),
    scale_um: float = 1.0,
    rotate_deg: float = 0.0,
    flip_y: bool = False,
    window: Sequence[float] | None = None,
    centre_um: Sequence[float] | None = None,
    keep_coordinates: bool = False,
    z_slab: Sequence[float] | None = None,
    z_um: float | None = None,
    outside: str = "error",
    max_shift_um: float | None = None,
    stat3_range: Sequence[float] | None = None,
) -> PlacedTissue:
    """Place a cell table's cells on a lattice.

    Parameters
    ----------
    table
        From :func:`tme_abm.tissue.read_cell_table`.
    dims, ndim, site_um
        The lattice: ``(nz, ny, nx)`` (``nz = 1`` in 2D), 2 or 3, spacing in µm.
    labels
        Table label -> cell-type name.
    type_codes
        Cell-type name -> code.
    vessel_labels
        Labels whose rows mark vessel sites instead of cells.
    ignore_labels
        Labels left out on purpose (counted in the report).
    scale_um
        µm per table unit (the pixel size for pixel coordinates).
    rotate_deg
        Anticlockwise rotation about the table's centre, after ``flip_y``.
    flip_y
        Mirror y (image rows grow downwards).
    window
        ``[x_min, x_max, y_min, y_max]`` (``[..., z_min, z_max]`` for a 3D
        table) in table units: only rows inside are used.
    centre_um
        Where the table's centre (the window's, else the bounding box's of
        all its rows, ignored ones included) lands, in the order of the
        lattice's shape (``[y, x]`` or ``[z, y, x]``); default the lattice
        centre.
    keep_coordinates
        Take positions as lattice coordinates (µm from the lattice's corner,
        after ``scale_um``): no centring, flipping or rotating.  For tables
        already in the lattice's frame, such as an exported snapshot.
    z_slab
        For a 3D table on a 2D lattice: the ``[z_min, z_max)`` slab of rows
        to use (table units), flattened onto the plane.
    z_um
        For a 2D table on a 3D lattice: the plane's z (µm); default the middle.
    outside
        ``"error"``: a row outside the lattice is an error; ``"drop"``: it is
        dropped and counted.
    max_shift_um
        How far a cell may move from its position to a free site when its
        own site is taken (default 2.5 sites).
    stat3_range
        ``[low, high]`` of the table's STAT3 column mapped to 0 and 1
        (clipped); default its 1st and 99th percentiles over placed cells.

    Returns
    -------
    PlacedTissue

    Raises
    ------
    TissueError
        A label the mapping does not name, a label mapped to an unknown type,
        rows outside the lattice (with ``outside = "error"``), a 3D table for
        a 2D lattice without ``z_slab``, or an empty selection.
    """
    type_names = list(type_codes)
    for label, tname in labels.items():
        if tname not in type_codes:
            raise TissueError(f"labels.{label}", f"unknown cell type {tname!r}; defined "
                              f"types: {', '.join(type_names)}")
    use_z = table.z is not None
    if ndim == 2 and table.z_unnamed is not None and np.unique(table.z_unnamed[1]).size > 1:
        name = table.z_unnamed[0]
        raise TissueError(
            "z_column",
            f"{table.path} looks 3D ({name!r} holds {np.unique(table.z_unnamed[1]).size} "
            "distinct values) but the scenario is 2D; set z_column and choose a slab with "
            "z_slab = [z_min, z_max] (table units), or use a 3D domain.shape",
        )
    if ndim == 2 and use_z and z_slab is None:
        raise TissueError(
            "z_column", "a 3D table (z_column is set) on a 2D lattice needs z_slab = "
            "[z_min, z_max] (table units): the slab of cells flattened onto the plane",
        )
    if z_slab is not None and not use_z:
        raise TissueError("z_slab", "needs z_column: the table's z coordinate")
    if ndim == 2:
        use_z = False
    names = np.asarray(table.labels, dtype=object)
    uniq, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    vessel_set, ignore_set = set(vessel_labels), set(ignore_labels)
    flagged = table.vessel if table.vessel is not None else np.zeros(table.n, dtype=bool)
    # a label only needs mapping where it labels a row not flagged as a vessel
    needed = np.bincount(inverse[~flagged], minlength=uniq.size) > 0
    unknown = [(str(u), int(c)) for u, c, need in zip(uniq, counts, needed, strict=True)
               if need and u not in labels and u not in vessel_set and u not in ignore_set]
    if unknown:
        unknown.sort(key=lambda uc: -uc[1])
        shown = ", ".join(f"{u!r} ({c} rows)" for u, c in unknown[:12])
        more = f" and {len(unknown) - 12} more" if len(unknown) > 12 else ""
        raise TissueError(
            "labels", f"{len(unknown)} label(s) of {table.path} are not mapped: {shown}{more}; "
            "map each to a cell type in labels, mark vessels in vessel_labels, or leave them "
            "out on purpose in ignore_labels",
        )
    label_code = np.array([type_codes[labels[u]] if u in labels else (-2 if u in vessel_set
                           else -1) for u in uniq], dtype=np.int64)
    code = label_code[inverse]  # type code, -2 vessel, -1 ignored
    code[flagged] = -2
    ignored_counts = np.bincount(inverse[code == -1], minlength=uniq.size)
    ignored = {str(u): int(c) for u, c in zip(uniq, ignored_counts, strict=True) if c}

    in_window = window_mask(table, window, z_slab)
    keep = in_window & (code != -1)
    pos = table_positions_um(table, keep, dims, ndim, site_um, scale_um, rotate_deg, flip_y, window,
                     centre_um, z_um, use_z, keep_coordinates, frame=in_window)
    kept_rows = np.flatnonzero(keep)
    kept_code = code[keep]
    extent = np.array([n * site_um for n in dims])
    inside = np.all((pos >= 0.0) & (pos < extent), axis=1)
    n_outside = int(np.count_nonzero(~inside))
    if n_outside and outside == "error":
        lo, hi = pos.min(axis=0), pos.max(axis=0)
        axes = "zyx"[3 - ndim:] if ndim == 3 else "yx"
        got = ", ".join(f"{a} {lo[k]:.0f}..{hi[k]:.0f}" for a, k in
                        zip(axes, range(3 - len(axes), 3), strict=True))
        lattice = ", ".join(f"{a} 0..{extent[k]:.0f}" for a, k in
                            zip(axes, range(3 - len(axes), 3), strict=True))
        raise TissueError(
            "outside",
            f"{n_outside} of {kept_rows.size} cells fall outside the lattice (cells at {got} "
            f"um; lattice {lattice} um); enlarge domain.shape, crop with window, move with "
            "centre_um, or set outside = \"drop\"",
        )
    pos, kept_rows, kept_code = pos[inside], kept_rows[inside], kept_code[inside]
    idx = np.floor(pos / site_um).astype(np.int64)
    np.clip(idx, 0, np.array(dims) - 1, out=idx)  # rounding at the far edge

    vessel = kept_code == -2
    vessel_sites = None
    if vessel_set or table.vessel is not None:
        vi = idx[vessel]
        vessel_sites = np.unique((vi[:, 0] * dims[1] + vi[:, 1]) * dims[2] + vi[:, 2])
    cells = ~vessel
    c_idx, c_rows, c_code, c_pos = idx[cells], kept_rows[cells], kept_code[cells], pos[cells]
    if c_rows.size == 0:
        raise TissueError("labels", f"no cell of {table.path} is left to place (after the "
                          "window, the mapping and the lattice bounds)")
    centre_dist = np.linalg.norm(c_pos - (c_idx + 0.5) * site_um, axis=1)
    # priority: nearest its site's centre first, then the earlier row
    order = np.lexsort((c_rows, centre_dist)).astype(np.int64)
    reach = 2.5 * site_um if max_shift_um is None else float(max_shift_um)
    offsets = shift_offsets(reach / site_um, ndim)
    occupied = np.zeros(int(np.prod(dims)), dtype=np.bool_)
    out_site = np.full(c_rows.size, -1, dtype=np.int64)
    dims_arr = np.asarray(dims, dtype=np.int64)
    n_moved = int(_resolve(order, c_idx[:, 0].copy(), c_idx[:, 1].copy(), c_idx[:, 2].copy(),
                           dims_arr, offsets, occupied, out_site))
    ok = out_site >= 0
    own = (c_idx[:, 0] * dims[1] + c_idx[:, 1]) * dims[2] + c_idx[:, 2]
    moved = ok & (out_site != own)
    shift = np.zeros(0)
    if moved.any():
        s = out_site[moved]
        zyx = np.stack([s // (dims[1] * dims[2]), (s // dims[2]) % dims[1], s % dims[2]], axis=1)
        shift = np.linalg.norm((zyx + 0.5) * site_um - c_pos[moved], axis=1)
    stat3 = None
    s3_range = None
    if table.values is not None:
        stat3, s3_range = stat3_from_values(table.values[c_rows[ok]], stat3_range)
    placed_codes = c_code[ok]
    code_name = {c: n for n, c in type_codes.items()}
    report = TissueReport(
        rows=table.n,
        placed={n: int(np.count_nonzero(placed_codes == c)) for n, c in type_codes.items()
                if np.any(placed_codes == c)},
        vessels=int(np.count_nonzero(vessel)),
        vessel_sites=0 if vessel_sites is None else int(vessel_sites.size),
        ignored=ignored,
        outside_window=int(np.count_nonzero(~in_window & (code != -1))),
        outside_domain=n_outside,
        moved=n_moved,
        dropped_crowded={code_name[int(c)]: int(n) for c, n in
                         zip(*np.unique(c_code[~ok], return_counts=True), strict=True)},
        max_shift_um=float(shift.max()) if shift.size else 0.0,
        mean_shift_um=float(shift.mean()) if shift.size else 0.0,
        stat3_range=s3_range,
        reach_um=reach,
        extent_um=tuple((float(a), float(b)) for a, b in
                        zip(pos.min(axis=0), pos.max(axis=0), strict=True)) if pos.size else (),
    )
    return PlacedTissue(
        sites=out_site[ok], types=placed_codes, stat3=stat3, vessel_sites=vessel_sites,
        rows=c_rows[ok], position_um=c_pos[ok], report=report,
    )


def place_spec_table(
    table: CellTable,
    spec: Any,
    *,
    dims: tuple[int, int, int],
    ndim: int,
    site_um: float,
    type_codes: Mapping[str, int],
    **overrides: Any,
) -> PlacedTissue:
    """:func:`place_cell_table` with the geometry a ``[tissue]`` spec gives (any object
    with its attributes: ``labels``, ``vessel_labels``, ``ignore_labels``,
    ``scale_um``, ``rotate_deg``, ``flip_y``, ``window``, ``centre_um``,
    ``keep_coordinates``, ``z_slab``, ``z_um``, ``outside``, ``max_shift_um``,
    ``stat3_range``); ``overrides`` replace single keys."""
    keys = ("labels", "vessel_labels", "ignore_labels", "scale_um", "rotate_deg", "flip_y",
            "window", "centre_um", "keep_coordinates", "z_slab", "z_um", "outside",
            "max_shift_um", "stat3_range")
    kwargs = {k: getattr(spec, k) for k in keys}
    kwargs.update(overrides)
    return place_cell_table(table, dims=dims, ndim=ndim, site_um=site_um,
                            type_codes=type_codes, **kwargs)
