"""What a scenario will cost, known before anything is allocated.

:func:`estimate` gives the lattice size, ticks, snapshots and a lower bound
on the memory a run needs; :func:`budget_problems` turns it into errors for
runs that cannot fit this machine (memory) or ask for an unreasonable amount
of work (ticks), so that ``tme-abm validate`` and ``tme-abm run`` refuse them
with the numbers instead of dying in ``numpy.empty`` (or, with memory
overcommit, taking a shared machine down).  A deliberate huge run passes
with ``allow_large=True`` (``--allow-large`` on the command line).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from tme_abm.scenario.schema import Scenario

#: Ticks a run may take without ``allow_large`` (the shipped week at 5 min is
#: 2,016; ten million 5-min ticks are 95 years of simulated time).
MAX_TICKS = 10_000_000

#: Memory of the Python process before the run allocates anything (Python,
#: numpy, numba, h5py, Mesa and the compiled kernels; measured ~0.25 GB).
BASE_BYTES = 250 * 2**20
#: Bytes per cell-table row: 24 B of state and the 40-value float32 behaviour
#: row of the baseline (the table keeps room for twice the cells it holds).
CELL_ROW_BYTES = 24 + 160


@dataclass(frozen=True)
class Budget:
    """What a scenario asks of the machine."""

    n_sites: int
    n_ticks: int
    n_snapshots: int
    initial_cells: int
    memory_bytes: int  # a lower bound on the resident memory of the run

    def describe(self) -> str:
        """One line: ``1.2e+06 sites, 2016 ticks, 29 snapshots, >= 0.8 GiB``."""
        return (f"{self.n_sites:,} sites, {self.n_ticks:,} ticks, {self.n_snapshots:,} "
                f"snapshots, ~{self.initial_cells:,} initial cells; needs at least "
                f"{gib(self.memory_bytes)} of memory")


def gib(n_bytes: float) -> str:
    """``n_bytes`` as GiB with one decimal (``74.5 GiB``)."""
    return f"{n_bytes / 2**30:.1f} GiB"


def _tissue_cells(sc: Scenario) -> int:
    """Cells a resolved scenario's tissue places (0 before it is resolved, or if the
    table fails: validation reports that)."""
    from pathlib import Path

    from tme_abm.scenario.tissue import placed_tissue
    from tme_abm.tissue.table import TissueError

    if sc.tissue is None or sc.tissue.sha256 is None or not Path(sc.tissue.file).is_absolute():
        return 0
    try:
        return placed_tissue(sc).report.n_placed
    except TissueError:
        return 0


def _placed_cells(sc: Scenario, n_sites: int) -> int:
    """Cells the placements put down, from the regions' volumes, and a tissue's cells."""
    ndim = len(sc.domain.shape)
    total = 0.0
    placements = sc.placement
    if sc.tissue is not None:
        if not sc.tissue.add_placements:
            placements = []
        total += _tissue_cells(sc)
    for pl in placements:
        if pl.region == "everywhere":
            sites = float(n_sites)
        else:
            r_sites = pl.radius_um / sc.domain.site_um
            r_in = pl.inner_radius_um / sc.domain.site_um if pl.region == "annulus" else 0.0
            if ndim == 2:
                sites = math.pi * (r_sites**2 - r_in**2)
            else:
                sites = 4.0 / 3.0 * math.pi * (r_sites**3 - r_in**3)
        total += min(float(n_sites), sites) * pl.fraction
    return int(min(total, n_sites))


def estimate(sc: Scenario) -> Budget:
    """The size and a lower bound on the memory of a run of ``sc``.

    The memory counts what the engine allocates per site (the float32
    concentrations of every field, twice for the restart checkpoint, once
    more for the exact field step's source array, the saved fields' snapshot
    copies, the site-to-cell index, the act lists and the lattice snapshot:
    ``8 nf (+ 4 nf with the exact solver) + 4 n_saved + 13`` bytes), the cell table
    for twice the initial cells, and :data:`BASE_BYTES`.  Cells that are
    born later and the HDF5 buffers come on top, so a run may need more
    (the 1200 x 1200 ``large`` scenario: 0.8 GiB estimated, 1.1 GB measured).
    """
    n_sites = math.prod(sc.domain.shape)
    nf = len(sc.fields)
    saved = len(sc.output.fields) if sc.output.fields is not None else nf
    cells = _placed_cells(sc, n_sites)
    solver_bytes = 4 * nf if sc.domain.field_solver == "exact" else 0
    per_site = 8 * nf + solver_bytes + 4 * saved + 13
    memory = BASE_BYTES + n_sites * per_site + 2 * cells * CELL_ROW_BYTES
    every = max(1, round(sc.output.snapshot_every_min / sc.domain.dt_min))
    snapshots = 1 + sc.n_ticks // every + (1 if sc.n_ticks % every else 0)
    return Budget(n_sites=n_sites, n_ticks=sc.n_ticks, n_snapshots=snapshots,
                  initial_cells=cells, memory_bytes=int(memory))


def available_memory_bytes() -> int | None:
    """Memory this machine can give a new process now (None if unknown).

    Linux: ``MemAvailable`` of ``/proc/meminfo``, capped by a cgroup memory
    limit when one is set; elsewhere the physical memory.
    """
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            available = int(text) if available is None else min(available, int(text))
        break
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return available


def budget_problems(
    sc: Scenario,
    *,
    allow_large: bool = False,
    available_bytes: int | None = None,
) -> list[tuple[str, str]]:
    """Problems (key, message) for a run that cannot fit or asks too much.

    Parameters
    ----------
    sc
        A validated scenario.
    allow_large
        Accept it anyway (a deliberate huge run).
    available_bytes
        Memory to compare with (default :func:`available_memory_bytes`).
    """
    if allow_large:
        return []
    b = estimate(sc)
    problems = []
    if b.n_ticks > MAX_TICKS:
        problems.append((
            "domain.duration_days",
            f"{b.n_ticks:,} ticks ({sc.domain.duration_days:g} days of "
            f"domain.dt_min = {sc.domain.dt_min:g} min); at most {MAX_TICKS:,} without "
            "--allow-large",
        ))
    available = available_memory_bytes() if available_bytes is None else available_bytes
    if available is not None and b.memory_bytes > available:
        shape = " x ".join(str(n) for n in sc.domain.shape)
        problems.append((
            "domain.shape",
            f"{shape} sites with {len(sc.fields)} fields need at least "
            f"{gib(b.memory_bytes)} of memory; this machine has {gib(available)} available. "
            "Use fewer sites or fields, or --allow-large to try anyway",
        ))
    return problems
