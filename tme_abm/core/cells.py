"""Per-cell state as a struct of arrays, with unique ids and a site map.

Live cells occupy rows ``0..n-1`` of every column.  ``site_cell[site]`` is the
row of the cell on that site or -1, so the lattice never holds two cells on
one site.  During a tick a cell that dies gets ``site = -1`` and its site is
freed at once; :meth:`CellTable.compact` then fills the dead rows with the
last live rows and points ``site_cell`` at their new rows.  Ids are never
reused.
"""

from __future__ import annotations

import numba
import numpy as np

#: Columns of per-cell state: name, dtype, units.
CELL_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "int64", "1"),
    ("type", "int8", "1"),
    ("site", "int32", "1"),
    ("stat3", "float32", "1"),
    ("socs3", "float32", "1"),
    ("kills", "int16", "1"),
    ("flags", "uint8", "1"),
)


class CellTable:
    """Struct-of-arrays cell state with a per-site index.

    Parameters
    ----------
    n_sites
        Number of lattice sites.
    n_behaviours
        Columns of the per-cell behaviour matrix (see :mod:`tme_abm.core.rules`).
    capacity
        Initial number of rows; grown by doubling.
    """

    def __init__(self, n_sites: int, n_behaviours: int, capacity: int = 1024) -> None:
        self.n = 0
        self.next_id = 0
        self.n_behaviours = n_behaviours
        self.site_cell = np.full(n_sites, -1, dtype=np.int32)
        self._allocate(max(16, capacity))

    def _allocate(self, capacity: int) -> None:
        old = {name: getattr(self, name, None) for name, _, _ in CELL_COLUMNS}
        old_beh = getattr(self, "behaviours", None)
        for name, dtype, _ in CELL_COLUMNS:
            arr = np.zeros(capacity, dtype=dtype)
            if old[name] is not None:
                arr[: self.n] = old[name][: self.n]
            setattr(self, name, arr)
        beh = np.zeros((capacity, self.n_behaviours), dtype=np.float32)
        if old_beh is not None:
            beh[: self.n] = old_beh[: self.n]
        self.behaviours = beh
        self.capacity = capacity
        self._resident = self.n  # rows written so far (the rest are untouched pages)

    def ensure_capacity(self, rows: int) -> None:
        """Grow the arrays so that ``rows`` rows fit, and make those rows resident.

        New arrays come from the OS as untouched zero pages.  The act kernel
        writes daughters to rows ``n0 + i``, scattered over ``[n0, 2 n0)``, so
        without this every division would first-touch a page: at ~1e6 cells
        that made the first ~10 ticks' act step 2-3x slower on 2 threads
        (page faults serialise in the kernel; measured 45 -> 16 ms).  Writing
        the rows once here costs one sequential pass instead; the rows become
        resident within ~10 ticks either way.
        """
        if rows > self.capacity:
            cap = self.capacity
            while cap < rows:
                cap *= 2
            self._allocate(cap)
        if rows > self._resident:
            # a quarter of the rows at a time: growing by the few rows a tick
            # adds cost 8 slice writes (~10 us) every tick of a small run
            lo = self._resident
            hi = min(self.capacity, max(rows, lo + lo // 4))
            for name, _, _ in CELL_COLUMNS:
                getattr(self, name)[lo:hi] = 0
            self.behaviours[lo:hi] = 0.0
            self._resident = hi

    def add(
        self, cell_type: int, sites: np.ndarray, stat3: float | np.ndarray = 0.0
    ) -> np.ndarray:
        """Add cells of one type on the given free sites (``stat3``: one value, or one
        per site); returns their rows."""
        sites = np.asarray(sites, dtype=np.int64)
        if np.any(self.site_cell[sites] >= 0) or len(np.unique(sites)) != len(sites):
            raise ValueError("add: a site is occupied or listed twice")
        k = len(sites)
        self.ensure_capacity(self.n + k)
        rows = np.arange(self.n, self.n + k)
        self.id[rows] = np.arange(self.next_id, self.next_id + k)
        self.type[rows] = cell_type
        self.site[rows] = sites
        self.stat3[rows] = stat3
        self.socs3[rows] = 0.0
        self.kills[rows] = 0
        self.flags[rows] = 0
        self.behaviours[rows] = 0.0
        self.site_cell[sites] = rows
        self.n += k
        self.next_id += k
        return rows

    def compact(self) -> None:
        """Drop dead rows (``site < 0``): the last live rows move into the holes.

        Only as many rows move as there are holes below the new ``n``, so a
        tick with few deaths and divisions costs one scan of ``site``.  Row
        order is not kept (nothing depends on it; ids identify cells).
        """
        self.n = _compact(
            self.n, self.id, self.type, self.site, self.stat3, self.socs3, self.kills,
            self.flags, self.behaviours, self.site_cell,
        )

    def columns(self) -> dict[str, np.ndarray]:
        """Views of the live rows of every state column."""
        return {name: getattr(self, name)[: self.n] for name, _, _ in CELL_COLUMNS}

    def state_bytes_per_cell(self) -> int:
        """Bytes of persistent state per cell (columns plus the site map share)."""
        return sum(np.dtype(dtype).itemsize for _, dtype, _ in CELL_COLUMNS)


@numba.njit(cache=True)
def _compact(n, ids, types, sites, stat3, socs3, kills, flags, behaviours, site_cell):
    count = 0
    for r in range(n):
        if sites[r] >= 0:
            count += 1
    src = count  # live rows at or beyond `count` fill the holes below it
    for w in range(count):
        if sites[w] >= 0:
            continue
        while sites[src] < 0:
            src += 1
        ids[w] = ids[src]
        types[w] = types[src]
        sites[w] = sites[src]
        stat3[w] = stat3[src]
        socs3[w] = socs3[src]
        kills[w] = kills[src]
        flags[w] = flags[src]
        behaviours[w, :] = behaviours[src, :]
        site_cell[sites[w]] = w
        sites[src] = -1
        src += 1
    return count


@numba.njit(parallel=True, cache=True)
def count_types(types: np.ndarray, n: int, n_types: int) -> np.ndarray:
    """Number of cells of each type among rows ``0..n-1`` (int64, ``(n_types,)``).

    ``np.bincount`` first copies an int8 column to int64 (1.3 ms at 1e6
    cells, every tick); this counts in place, in parallel blocks.
    """
    block = 65536
    n_blocks = (n + block - 1) // block
    partial = np.zeros((n_blocks, n_types), dtype=np.int64)
    for b in numba.prange(n_blocks):
        for i in range(b * block, min(n, (b + 1) * block)):
            partial[b, types[i]] += 1
    out = np.zeros(n_types, dtype=np.int64)
    for b in range(n_blocks):
        for t in range(n_types):
            out[t] += partial[b, t]
    return out


@numba.njit(inline="always", cache=True)
def sort_rows_by_type(
    cell_type: np.ndarray, lo: int, hi: int, n_types: int, rows: np.ndarray
) -> np.ndarray:
    """Counting sort of rows ``lo..hi-1`` by cell type, for kernels that work
    on one type at a time.

    Writes the rows into ``rows[:hi - lo]``, grouped by type and ascending
    within a type, and returns ``start`` (``n_types + 1``): the rows of type
    ``t`` are ``rows[start[t]:start[t + 1]]``.
    """
    start = np.zeros(n_types + 1, dtype=np.int64)
    for i in range(lo, hi):
        start[cell_type[i] + 1] += 1
    for t in range(n_types):
        start[t + 1] += start[t]
    fill = start[:n_types].copy()
    for i in range(lo, hi):
        t = cell_type[i]
        rows[fill[t]] = i
        fill[t] += 1
    return start
