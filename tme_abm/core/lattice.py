"""Site indexing and Moore neighbourhoods on 2D and 3D lattices.

A lattice of shape ``(nz, ny, nx)`` (``nz == 1`` for 2D) has one cell at most
per site.  Sites are numbered ``site = (z * ny + y) * nx + x``.  The Moore
neighbourhood has 8 sites in 2D and 26 in 3D; the lattice is bounded (sites on
a face simply have fewer neighbours).
"""

from __future__ import annotations

import numba
import numpy as np


def moore_offsets(ndim: int) -> np.ndarray:
    """Moore-neighbourhood offsets as an int64 array of (dz, dy, dx) rows.

    Parameters
    ----------
    ndim
        2 (8 neighbours, dz = 0) or 3 (26 neighbours).
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, not {ndim}")
    zs = (-1, 0, 1) if ndim == 3 else (0,)
    rows = [
        (dz, dy, dx)
        for dz in zs
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dz, dy, dx) != (0, 0, 0)
    ]
    return np.array(rows, dtype=np.int64)


def lattice_dims(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(nz, ny, nx) for a 2D ``(ny, nx)`` or 3D ``(nz, ny, nx)`` shape."""
    if len(shape) == 2:
        return 1, int(shape[0]), int(shape[1])
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    raise ValueError(f"lattice shape must have 2 or 3 entries, not {shape!r}")


@numba.njit(inline="always", cache=True)
def site_coords(site: int, ny: int, nx: int) -> tuple[int, int, int]:
    """(z, y, x) of a flat site index."""
    x = site % nx
    rest = site // nx
    return rest // ny, rest % ny, x


@numba.njit(cache=True)
def neighbour_sites(
    site: int, nz: int, ny: int, nx: int, offsets: np.ndarray, out: np.ndarray
) -> int:
    """Write the in-bounds Moore neighbours of ``site`` into ``out``.

    Returns the number written.  ``out`` needs room for ``len(offsets)``.
    The order is the fixed order of ``offsets``, so callers that pick among
    neighbours with a counter-based draw get thread-independent results.
    """
    z, y, x = site_coords(site, ny, nx)
    n = 0
    for k in range(offsets.shape[0]):
        zz = z + offsets[k, 0]
        yy = y + offsets[k, 1]
        xx = x + offsets[k, 2]
        if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
            out[n] = (zz * ny + yy) * nx + xx
            n += 1
    return n


@numba.njit(cache=True)
def flat_offsets(offsets: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """Flat-index steps ``(dz * ny + dy) * nx + dx`` of the Moore offsets, in their order."""
    out = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        out[k] = (offsets[k, 0] * ny + offsets[k, 1]) * nx + offsets[k, 2]
    return out


@numba.njit(inline="always", cache=True)
def neighbours_at(
    site: int,
    z: int,
    y: int,
    x: int,
    nz: int,
    ny: int,
    nx: int,
    offsets: np.ndarray,
    steps: np.ndarray,
    out: np.ndarray,
) -> int:
    """:func:`neighbour_sites` for a caller that knows the site's coordinates.

    Away from the faces every neighbour is in bounds and is ``site +
    steps[k]`` (``steps`` from :func:`flat_offsets`): no coordinate
    arithmetic, no bounds checks.  The order is the same as
    :func:`neighbour_sites`'s, so results do not change.
    """
    if 0 < y < ny - 1 and 0 < x < nx - 1 and (nz == 1 or 0 < z < nz - 1):
        for k in range(steps.shape[0]):
            out[k] = site + steps[k]
        return steps.shape[0]
    return neighbour_sites(site, nz, ny, nx, offsets, out)


def site_centres_um(n: int, site_um: float) -> np.ndarray:
    """Centres of ``n`` sites along one axis, in µm."""
    return (np.arange(n, dtype=np.float64) + 0.5) * site_um


def distance_from_point_um(
    dims: tuple[int, int, int], site_um: float, centre_um: np.ndarray
) -> np.ndarray:
    """Distance (µm) of every site centre from ``centre_um`` (z, y, x), flat."""
    nz, ny, nx = dims
    z = site_centres_um(nz, site_um)[:, None, None] - centre_um[0]
    y = site_centres_um(ny, site_um)[None, :, None] - centre_um[1]
    x = site_centres_um(nx, site_um)[None, None, :] - centre_um[2]
    if nz == 1:
        z = np.zeros_like(z)
    return np.sqrt(z * z + y * y + x * x).ravel()
