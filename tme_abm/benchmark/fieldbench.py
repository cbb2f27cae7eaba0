"""Field-solver throughput: both field steps on the same 8 fields, side by side.

Two solvers are timed, at each thread count, in the same run:

* ``exact`` (the default, :class:`tme_abm.core.spectral.ExactFieldStep`):
  what the engine's ``step_fields`` does per tick with it, i.e.
  :func:`~tme_abm.core.spectral.scatter_sources` refills the dense source
  array from per-cell rates (the step overwrites it: it is transform scratch)
  and then ``step(conc, decay, sources, workers=threads)``.
* ``lod`` (opt-in, ``domain.field_solver = "lod"``):
  :func:`tme_abm.core.fields.diffuse_decay` alone, as before.

Per-site work outside these calls is timed by neither: uptake
(:func:`~tme_abm.core.spectral.apply_uptake`) before the exact step, and the
LOD path's per-site secretion and uptake (``apply_sources``).  The source
refill is inside the exact figure because the exact step cannot run without
it; it is also timed on its own (``scatter`` in the results), so the step
without it can be read off.

The problem: the diffusion coefficients and decay rates of the first eight
fields of the shipped ``baseline.toml`` (20 µm sites, 5 min steps), all with
no-flux boundaries, in float32.

* LOD: ``conc`` is random in [0, 1) (seeded); its cost does not depend on
  the values.
* Exact: ``conc`` starts at zero and half the sites secrete: the sites of a
  central disc (2D) or ball (3D) covering half of the lattice, like the
  bench's baseline tumour, each with its own rate for every field (uniform
  in [0, 0.01) ng/mL per min, seeded), listed in random order as cells sit
  in the engine's table.  Half the sites means ``nz*ny*nx/2`` rows of
  ``nf`` rates for the refill.  Starting from zero, with the sources in one
  region, fields stay ~0 far from the disc, where the transforms' round-off
  leaves small negative values, so the step's clip-and-rescale pass runs, as
  it does in the engine (on the baseline at ~1e5 cells it ran on each of 20
  ticks).  Checked when this was written: at 1024² it ran on each of 30
  steps; at 128³, whose corners are closer to the ball, on the first 15 of
  30 only.  Random values everywhere would skip that pass and flatter the
  step.

The two solvers' blocks alternate (LOD, exact, refill alone; ``repeats``
times) so that both see the same background load, and the exact/LOD time
ratio is the ratio of the two medians at each thread count; the ratio of
each alternating pair is kept too.

Throughput is counted in field-voxel updates per second: ``nz * ny * nx * nf``
per step over seconds per step.  For LOD the memory traffic of one step is
estimated at its minimum: LOD splitting sweeps every axis once, reading and
writing each float32 value once per axis (decay is fused into the last
sweep), so ``axes * (4 + 4)`` bytes per field-voxel update: 16 B in 2D, 24 B
in 3D.  The solver's scratch lines (float64) come on top of this when they
do not stay in cache.  No such figure is given for the exact step, whose
transforms make several passes of their own over each line.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from tme_abm.benchmark.timing import median
from tme_abm.core.fields import diffuse_decay, diffusion_coefficients
from tme_abm.core.spectral import ExactFieldStep, scatter_sources

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
#: Fraction of the sites that secrete in the exact step's problem.
SOURCE_FILL = 0.5
#: Secretion rates are uniform in [0, this), ng/mL per min.
SOURCE_RATE_MAX = 0.01
#: The solvers, default first.
SOLVERS = ("exact", "lod")


def bytes_per_update(shape: tuple[int, int, int]) -> int:
    """Minimum bytes moved per LOD field-voxel update (see the module notes)."""
    axes = 2 if shape[0] == 1 else 3
    return axes * BYTES_PER_AXIS


def _fields(nf: int) -> tuple[np.ndarray, np.ndarray]:
    """D (µm²/min) and decay rate (1/min) of ``nf`` fields, cycling through the 8."""
    specs = [BASELINE_8_FIELDS[f % len(BASELINE_8_FIELDS)] for f in range(nf)]
    d = np.array([s[0] for s in specs])
    half_life = np.array([s[1] for s in specs])
    return d, math.log(2.0) / half_life


def field_problem(shape: tuple[int, int, int], nf: int = 8, seed: int = 0) -> dict[str, Any]:
    """Arguments of :func:`diffuse_decay` for a random ``(nz, ny, nx, nf)`` problem."""
    d, decay = _fields(nf)
    rng = np.random.default_rng(seed)
    conc = rng.random((*shape, nf), dtype=np.float32)
    return {
        "conc": conc,
        "diff_number": diffusion_coefficients(d, SITE_UM, DT_MIN),
        "decay_per_min": decay,
        "dt_min": DT_MIN,
        "bc_dirichlet": np.zeros(nf, dtype=bool),
        "bc_value": np.zeros(nf),
    }


def central_sites(shape: tuple[int, int, int], fill: float = SOURCE_FILL) -> np.ndarray:
    """Flat indices of the sites of a central disc (2D) or ball (3D) covering
    about ``fill`` of the lattice (the ``round(fill * sites)`` nearest the
    centre; ties broken by index)."""
    nz, ny, nx = shape
    axes = [np.arange(n, dtype=np.float64) - (n - 1) / 2.0 for n in shape]
    if nz == 1:
        axes[0] = np.zeros(1)
    z, y, x = np.meshgrid(*axes, indexing="ij")
    r2 = (z * z + y * y + x * x).ravel()
    wanted = int(round(fill * nz * ny * nx))
    return np.sort(np.argsort(r2, kind="stable")[:wanted])


def exact_problem(shape: tuple[int, int, int], nf: int = 8, seed: int = 0) -> dict[str, Any]:
    """The exact step's problem (see the module notes): the stepper, zero
    ``conc``, the source array, the secreting sites (random order) and their
    rates, and the decay rates."""
    d, decay = _fields(nf)
    rng = np.random.default_rng(seed)
    sites = central_sites(shape).astype(np.int64)
    rng.shuffle(sites)
    conc = np.zeros((*shape, nf), dtype=np.float32)
    return {
        "stepper": ExactFieldStep(
            shape, d, SITE_UM, DT_MIN, np.zeros(nf, dtype=bool), np.zeros(nf)
        ),
        "conc": conc,
        "sources": np.zeros_like(conc),
        "sites": sites,
        "rate": rng.random((len(sites), nf), dtype=np.float32) * np.float32(SOURCE_RATE_MAX),
        "decay_per_min": decay,
    }


def refill(problem: dict[str, Any]) -> None:
    """The source refill the engine does before every exact step."""
    scatter_sources(problem["sources"], problem["sites"], problem["rate"])


def exact_tick(problem: dict[str, Any], workers: int) -> None:
    """One exact field step as the engine runs it: refill, then step."""
    refill(problem)
    problem["stepper"].step(
        problem["conc"], problem["decay_per_min"], problem["sources"], workers=workers
    )


def interleaved_blocks(
    calls: dict[str, Callable[[], object]],
    repeats: int,
    min_block_s: float,
    max_calls: int = 50,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call of several calls, in alternating blocks.

    Each call is made once untimed to size its blocks (about ``min_block_s``,
    1 to ``max_calls`` calls); then ``repeats`` rounds each time one block of
    every call, in the order given.

    Returns
    -------
    samples, calls_per_block
        Per name: mean seconds per call in each block, and calls per block.
    """
    per: dict[str, int] = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        call()
        first = max(time.perf_counter() - t0, 1e-9)
        per[name] = max(1, min(max_calls, math.ceil(min_block_s / first)))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(max(1, repeats)):
        for name, call in calls.items():
            t0 = time.perf_counter()
            for _ in range(per[name]):
                call()
            samples[name].append((time.perf_counter() - t0) / per[name])
    return samples, per


def _empty(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return (extra or {}) | {
        "seconds_per_step": {},
        "updates_per_s": {},
        "samples_s": {},
        "steps_per_block": {},
    }


def field_throughput(
    shape: tuple[int, int, int],
    threads: list[int],
    repeats: int,
    min_block_s: float,
    nf: int = 8,
) -> dict[str, Any]:
    """Time both field steps at each thread count, side by side.

    Parameters
    ----------
    shape
        ``(nz, ny, nx)``; ``nz == 1`` for 2D.
    threads
        numba thread counts (the exact step's transforms get as many workers).
    repeats
        Timed blocks per solver and thread count (medians are reported).
    min_block_s
        Wanted length of one block.
    nf
        Number of fields.

    Returns
    -------
    dict
        ``shape``, ``field_voxels``; per solver (``"exact"``, ``"lod"``):
        ``updates_per_s`` and ``seconds_per_step`` per thread count (medians),
        ``samples_s`` (all blocks) and ``steps_per_block``; for LOD
        ``bytes_per_update``, for the exact step ``source_sites`` and
        ``scatter`` (the refill alone, seconds per call); and
        ``exact_over_lod`` (ratio of the median times per thread count) and
        ``exact_over_lod_pairs`` (ratio of each alternating pair of blocks).
    """
    lod = field_problem(shape, nf)
    exact = exact_problem(shape, nf)
    voxels = int(np.prod(shape)) * nf
    before = numba.get_num_threads()
    out: dict[str, Any] = {
        "shape": [*shape, nf],
        "field_voxels": voxels,
        "exact": _empty(
            {
                "solver": "exact (tme_abm.core.spectral.ExactFieldStep), source refill included",
                "source_sites": int(len(exact["sites"])),
                "source_fill": len(exact["sites"]) / int(np.prod(shape)),
                "scatter": {"seconds_per_call": {}, "samples_s": {}},
            }
        ),
        "lod": _empty(
            {
                "solver": "lod (tme_abm.core.fields.diffuse_decay)",
                "bytes_per_update": bytes_per_update(shape),
            }
        ),
        "exact_over_lod": {},
        "exact_over_lod_pairs": {},
    }
    try:
        for t in threads:
            numba.set_num_threads(t)
            samples, per = interleaved_blocks(
                {
                    "lod": lambda: diffuse_decay(**lod),
                    "exact": lambda t=t: exact_tick(exact, t),
                    "scatter": lambda: refill(exact),
                },
                repeats,
                min_block_s,
            )
            for solver in SOLVERS:
                res = out[solver]
                sec = median(samples[solver])
                res["seconds_per_step"][t] = sec
                res["updates_per_s"][t] = voxels / sec
                res["samples_s"][t] = samples[solver]
                res["steps_per_block"][t] = per[solver]
            scatter = out["exact"]["scatter"]
            scatter["seconds_per_call"][t] = median(samples["scatter"])
            scatter["samples_s"][t] = samples["scatter"]
            out["exact_over_lod"][t] = (
                out["exact"]["seconds_per_step"][t] / out["lod"]["seconds_per_step"][t]
            )
            out["exact_over_lod_pairs"][t] = [
                e / v for e, v in zip(samples["exact"], samples["lod"], strict=True)
            ]
    finally:
        numba.set_num_threads(before)
    return out
