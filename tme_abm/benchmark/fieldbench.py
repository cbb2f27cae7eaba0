"""Field-solver throughput: :func:`tme_abm.core.fields.diffuse_decay` on 8 fields.

The diffusion numbers and decay rates are those of the first eight fields of
the shipped ``baseline.toml`` (20 µm sites, 5 min steps), all with no-flux
boundaries, on a random float32 ``conc`` array.  Throughput is counted in
field-voxel updates per second: ``nz * ny * nx * nf`` per step over seconds
per step.

The memory traffic of one step is estimated at its minimum: LOD splitting
sweeps every axis once, reading and writing each float32 value once per axis
(decay is fused into the last sweep), so ``axes * (4 + 4)`` bytes per
field-voxel update: 16 B in 2D, 24 B in 3D.  The solver's scratch lines
(float64) come on top of this when they do not stay in cache.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from tme_abm.benchmark.timing import median, timed_blocks
from tme_abm.core.fields import diffuse_decay, diffusion_coefficients

#: D (µm²/min) and half-life (min) of baseline.toml's first eight fields:
#: il6, il10, tgfb, vegf, il12, ifng, chemokine, ccl2.
BASELINE_8_FIELDS: tuple[tuple[float, float], ...] = (
    (1140.0, 115.5),
    (240.0, 251.0),
    (1560.0, 70.0),
    (1740.0, 60.8),
    (240.0, 180.5),
    (600.0, 177.7),
    (1200.0, 115.5),
    (300.0, 692.0),
)
SITE_UM = 20.0
DT_MIN = 5.0
BYTES_PER_AXIS = 8  # float32 read + float32 write of each value per swept axis


def bytes_per_update(shape: tuple[int, int, int]) -> int:
    """Minimum bytes moved per field-voxel update (see the module notes)."""
    axes = 2 if shape[0] == 1 else 3
    return axes * BYTES_PER_AXIS


def field_problem(shape: tuple[int, int, int], nf: int = 8, seed: int = 0) -> dict[str, Any]:
    """Arguments of :func:`diffuse_decay` for a random ``(nz, ny, nx, nf)`` problem."""
    specs = [BASELINE_8_FIELDS[f % len(BASELINE_8_FIELDS)] for f in range(nf)]
    d = np.array([s[0] for s in specs])
    half_life = np.array([s[1] for s in specs])
    rng = np.random.default_rng(seed)
    conc = rng.random((*shape, nf), dtype=np.float32)
    return {
        "conc": conc,
        "diff_number": diffusion_coefficients(d, SITE_UM, DT_MIN),
        "decay_per_min": math.log(2.0) / half_life,
        "dt_min": DT_MIN,
        "bc_dirichlet": np.zeros(nf, dtype=bool),
        "bc_value": np.zeros(nf),
    }


def field_throughput(
    shape: tuple[int, int, int],
    threads: list[int],
    repeats: int,
    min_block_s: float,
    nf: int = 8,
) -> dict[str, Any]:
    """Time one implicit field step at each thread count.

    Parameters
    ----------
    shape
        ``(nz, ny, nx)``; ``nz == 1`` for 2D.
    threads
        numba thread counts.
    repeats
        Timed blocks per thread count (medians are reported).
    min_block_s
        Wanted length of one block.
    nf
        Number of fields.

    Returns
    -------
    dict
        ``updates_per_s`` and ``seconds_per_step`` per thread count (medians),
        ``samples`` (all blocks), the shape, ``bytes_per_update`` and the
        field-voxel count.
    """
    problem = field_problem(shape, nf)
    voxels = int(np.prod(shape)) * nf
    before = numba.get_num_threads()
    out: dict[str, Any] = {
        "shape": [*shape, nf],
        "field_voxels": voxels,
        "bytes_per_update": bytes_per_update(shape),
        "seconds_per_step": {},
        "updates_per_s": {},
        "samples_s": {},
        "steps_per_block": {},
    }
    try:
        for t in threads:
            numba.set_num_threads(t)
            samples, per = timed_blocks(lambda: diffuse_decay(**problem), repeats, min_block_s)
            sec = median(samples)
            out["seconds_per_step"][t] = sec
            out["updates_per_s"][t] = voxels / sec
            out["samples_s"][t] = samples
            out["steps_per_block"][t] = per
    finally:
        numba.set_num_threads(before)
    return out
