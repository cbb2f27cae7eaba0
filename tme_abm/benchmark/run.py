"""Run every benchmark of the performance issue and assemble the report.

:func:`run_bench` checks that the machine is idle, warms up the JIT, then
measures, in one process and one run:

* memory bandwidth (STREAM triad) at each thread count;
* both field solvers side by side on 1024² x 8 and 128³ x 8 float32 fields
  (:mod:`~tme_abm.benchmark.fieldbench`): the exact step (the default) and
  the LOD step (``domain.field_solver = "lod"``), as field-voxel updates/s,
  and the exact/LOD time ratio; for LOD also the bandwidth that implies and
  its ratio to the triad's;
* whole ticks of the baseline biology at about 1e4, 1e5 and 1e6 cells with
  the default (exact) field solver: ticks/s, cell-steps/s, where the time
  goes, and the log-log slope of time per tick against cells; and at the
  largest size the same with ``domain.field_solver = "lod"``, with the
  exact/LOD ratio of seconds per tick;
* memory per cell, and run-file write throughput;
* a plain-Mesa model of random walk + division against the engine on the
  same rules at about 1e4 cells;
* resident memory per tick over a long run (>= 20,000 ticks) written to a
  run file, which should be flat (:mod:`~tme_abm.benchmark.memory`);
* the random walk and a mid-size whole tick at each thread count, idle and
  with busy competitor processes (:mod:`~tme_abm.benchmark.loaded`).

Each figure is the median of several repeats.  ``quick`` shrinks every size
so that the whole run takes seconds (a smoke test: its figures say nothing
about the targets, which are then marked n/a).
"""

from __future__ import annotations

import datetime as _dt
import gc
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numba

from tme_abm.benchmark import fieldbench, loaded, memory, system, ticks, tissueload, walk
from tme_abm.benchmark.report import (
    PEERS,
    Figure,
    Target,
    format_peers,
    format_table,
    missed_targets,
)
from tme_abm.benchmark.timing import median

#: Sizes of the full run.
FULL_SIZES = (10_000, 100_000, 1_000_000)
FULL_FIELD_SHAPES = ((1, 1024, 1024), (128, 128, 128))
#: Sizes of ``--quick``.
QUICK_SIZES = (1_000, 3_000, 10_000)
QUICK_FIELD_SHAPES = ((1, 256, 256), (24, 24, 24))

TICKS_TARGET_MIN_CELLS = 500_000  # "about 1e6 cells"
SPEEDUP_TARGET_MIN_CELLS = 100_000  # a "large" whole tick
CELL_STEPS_TARGET_MIN_CELLS = 100_000  # cell kernels run parallel from 1e5 cells
MESA_TARGET_MIN_AGENTS = 5_000  # "at 1e4 cells"
#: Issue 14: the field step at 1024^2 x 8 fields stays >= 2x the best peer
#: measured side by side (BioFVM's pyphysicell port 1.57e8, PAL's explicit
#: step 1.69e8 field-voxel updates/s, both on 1 thread).
FIELD_PEER_BEST = 1.69e8
FIELD_PEER_TARGET = 2.0 * FIELD_PEER_BEST
#: Issue 6's target for the (then only, LOD) field step at 1024^2 x 8.
FIELD_LOD_TARGET = 5e8
TARGET_FIELD_SHAPE = (1, 1024, 1024)
TARGET_N_FIELDS = 8
#: The scenario override of the LOD whole-tick figure.
LOD_OVERRIDE = "domain.field_solver=lod"
SOLVER_LABEL = {"exact": "exact field step (default)", "lod": "LOD field step (opt-in)"}


@dataclass
class BenchConfig:
    """What to measure, and how hard.

    Attributes
    ----------
    quick
        Tiny sizes, short repeats (smoke test).
    threads
        numba thread counts (those above ``NUMBA_NUM_THREADS`` are skipped).
    repeats
        Timed repeats per figure (medians are reported).
    sizes
        Nominal initial cell counts of the whole-tick runs.
    field_shapes
        ``(nz, ny, nx)`` of the field-solver runs (8 fields each).
    n_fields
        Fields in the field-solver runs.
    triad_elements
        float64 elements per triad array (3 arrays).
    mesa_agents
        Agents in the Mesa comparison.
    mesa_ticks
        Steps per timed block in the Mesa comparison.
    write_snapshots
        Timed snapshots per run-file write measurement.
    write_min_cells
        Run-file writes are timed at every size with at least this many
        cells (or at the largest size if none has).
    min_block_s
        Wanted length of a timed block (short calls are repeated in a block).
    idle_seconds
        Length of the idle check.
    memory_ticks
        Length of the long-run memory measurement (0: skip it).
    memory_side
        Lattice side of the long run (a full lattice: constant cells).
    loaded_competitors
        Busy processes of the loaded case (:mod:`~tme_abm.benchmark.loaded`;
        None: one per usable CPU but one; 0 skips the case).
    write_folder
        Where temporary run files go (None: the system's temp folder).
    """

    quick: bool = False
    threads: list[int] = field(default_factory=lambda: [1, 2])
    repeats: int = 5
    sizes: list[int] = field(default_factory=lambda: list(FULL_SIZES))
    field_shapes: list[tuple[int, int, int]] = field(
        default_factory=lambda: list(FULL_FIELD_SHAPES)
    )
    n_fields: int = 8
    triad_elements: int = 10_000_000
    mesa_agents: int = 10_000
    mesa_ticks: int = 10
    write_snapshots: int = 3
    write_min_cells: int = 100_000
    min_block_s: float = 0.5
    idle_seconds: float = 1.0
    memory_ticks: int = memory.FULL_TICKS
    memory_side: int = memory.FULL_SIDE
    loaded_competitors: int | None = None
    write_folder: str | None = None

    @classmethod
    def make(
        cls,
        quick: bool = False,
        threads: Sequence[int] | None = None,
        repeats: int | None = None,
        sizes: Sequence[int] | None = None,
        write_folder: str | Path | None = None,
        memory_ticks: int | None = None,
        loaded_competitors: int | None = None,
    ) -> BenchConfig:
        """The full or quick configuration, with the command line's choices."""
        if quick:
            cfg = cls(
                quick=True, repeats=2, sizes=list(QUICK_SIZES),
                field_shapes=list(QUICK_FIELD_SHAPES), triad_elements=2_000_000,
                mesa_agents=1_000, mesa_ticks=3, write_snapshots=1,
                write_min_cells=10**12, min_block_s=0.02, idle_seconds=0.5,
                memory_ticks=memory.QUICK_TICKS, memory_side=memory.QUICK_SIDE,
            )
        else:
            cfg = cls()
        if threads is not None:
            cfg.threads = sorted(set(int(t) for t in threads))
        if repeats is not None:
            cfg.repeats = int(repeats)
        if sizes is not None:
            cfg.sizes = sorted(set(int(s) for s in sizes))
        if write_folder is not None:
            cfg.write_folder = str(write_folder)
        if memory_ticks is not None:
            cfg.memory_ticks = int(memory_ticks)
        if loaded_competitors is not None:
            cfg.loaded_competitors = int(loaded_competitors)
        return cfg

    def problems(self) -> list[str]:
        """What is wrong with this configuration (empty when usable)."""
        out = []
        if not self.threads or min(self.threads) < 1:
            out.append("--threads: thread counts must be >= 1")
        if self.repeats < 1:
            out.append(f"--repeats: must be at least 1, not {self.repeats}")
        if not self.sizes or min(self.sizes) < 10:
            out.append("--sizes: cell counts must be >= 10")
        if self.loaded_competitors is not None and self.loaded_competitors < 0:
            out.append(f"--competitors: must be 0 (skip) or more, not {self.loaded_competitors}")
        if self.memory_ticks < 0 or 0 < self.memory_ticks < memory.MIN_TICKS:
            out.append(f"--memory-ticks: must be 0 (skip) or at least "
                       f"{memory.MIN_TICKS}, not {self.memory_ticks}")
        return out


def _log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def warm_up(threads: list[int]) -> float:
    """Compile (or load from numba's cache) every kernel the benchmarks use,
    and start numba's thread pool at each thread count; returns seconds."""
    t0 = time.perf_counter()
    before = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            system.memory_bandwidth(system.triad_arrays(1000), 1)
            for shape in ((1, 16, 16), (4, 4, 4)):
                problem = fieldbench.field_problem(shape, 2)
                fieldbench.diffuse_decay(**problem)
                fieldbench.exact_tick(fieldbench.exact_problem(shape, 2), t)
            model, _ = ticks.build_model(ticks.baseline_at(300))
            for _ in range(2):
                model.engine.step()
            engine = walk.walk_engine((12, 12), 0.25, 0.5, 0.1)
            for _ in range(2):
                engine.step()
    finally:
        numba.set_num_threads(before)
    return time.perf_counter() - t0


def cells_label(n: int) -> str:
    """``20000`` -> ``"2e4"``: a cell count to one significant digit."""
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _by(data: dict[int, dict[str, Any]], key: str) -> dict[int, float]:
    return {t: float(v[key]) for t, v in data.items()}


def _speedup(values: dict[int, float], threads: list[int]) -> tuple[dict[int, float], bool]:
    """Speedup of each thread count over the fewest; and whether 1 and 2 were both run."""
    base = values[threads[0]]
    return {t: values[t] / base for t in threads}, (1 in values and 2 in values)


def _speedup_figure(
    fid: str, measurement: str, values: dict[int, float], threads: list[int],
    large: bool, why_small: str, details: dict[str, Any] | None = None, target: bool = True,
) -> Figure:
    """A thread-speedup figure; its value is the speedup from 1 to 2 threads
    where both ran, else from the fewest to the most threads."""
    sp, has12 = _speedup(values, threads)
    value = sp[2] if has12 else sp[threads[-1]]
    why = why_small if has12 else "needs 1 and 2 threads"
    return Figure(
        fid, measurement, "x", value=value, by_threads=sp,
        target=Target(">=", 1.8, ">= 1.8 (1->2)", applies=has12 and large, why_not=why)
        if target else None,
        details=details or {},
    )


def _bandwidth(
    config: BenchConfig, threads: list[int], raw: dict[str, Any], log: Callable[[str], None]
) -> tuple[list[Figure], dict[int, float]]:
    """STREAM triad at each thread count; returns figures and GB/s by threads."""
    log(f"memory bandwidth: STREAM triad on 3 x {config.triad_elements * 8 / 1e6:.0f} MB")
    arrays = system.triad_arrays(config.triad_elements)
    bw: dict[int, list[float]] = {}
    before = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            bw[t] = system.memory_bandwidth(arrays, max(3, config.repeats))
    finally:
        numba.set_num_threads(before)
    del arrays
    gc.collect()
    stream = {t: median(v) for t, v in bw.items()}
    raw["memory_bandwidth"] = {
        "elements": config.triad_elements,
        "bytes_per_element": system.TRIAD_BYTES_PER_ELEMENT,
        "samples_gb_s": bw,
    }
    fig = Figure(
        "memory_bandwidth", "memory bandwidth (STREAM triad, 24 B/element)", "GB/s",
        by_threads=stream,
        details={"array_mb": config.triad_elements * 8 / 1e6, "samples_gb_s": bw},
    )
    return [fig], stream


def _sci(value: float) -> str:
    """``3.38e8`` rather than ``3.38e+08``, for target texts."""
    mantissa, _, exponent = f"{value:.3g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def _field_label(shape: tuple[int, int, int], nf: int) -> str:
    nz, ny, nx = shape
    if nz == 1:
        size = f"{ny}^2" if ny == nx else f"{ny}x{nx}"
    else:
        size = f"{nx}^3" if nz == ny == nx else f"{nz}x{ny}x{nx}"
    return f"{size} x {nf} fields"


def field_figures(
    res: dict[str, Any], threads: list[int], stream: dict[int, float]
) -> tuple[list[Figure], list[Figure]]:
    """Figures of one :func:`fieldbench.field_throughput` result: the exact
    step (issue 14's target where the shape is 1024^2 x 8), the LOD step
    (issue 6's), LOD's implied bandwidth, and the exact/LOD time ratio; and
    the thread-speedup figures of both."""
    shape = tuple(res["shape"][:3])
    nf = res["shape"][3]
    dim = "2d" if shape[0] == 1 else "3d"
    label = _field_label(shape, nf)
    is_target = shape == TARGET_FIELD_SHAPE and nf == TARGET_N_FIELDS
    why_not = f"target is for {_field_label(TARGET_FIELD_SHAPE, TARGET_N_FIELDS)}"
    exact, lod = res["exact"], res["lod"]
    keys = ("seconds_per_step", "steps_per_block", "samples_s")
    figures = [Figure(
        f"field_exact_{dim}_updates",
        f"{SOLVER_LABEL['exact']} {label}, sources at {exact['source_fill']:.0%} of sites",
        "field-voxel updates/s", by_threads=exact["updates_per_s"],
        target=(
            Target(">=", FIELD_PEER_TARGET,
                   f">= {_sci(FIELD_PEER_TARGET)} on 1 thr (2x best peer, issue 14)",
                   applies=is_target and 1 in threads, threads=1,
                   why_not=why_not if not is_target else "needs 1 thread")
            if dim == "2d" else None
        ),
        details={"shape": res["shape"], "field_voxels": res["field_voxels"],
                 "source_sites": exact["source_sites"], "scatter": exact["scatter"]}
        | {k: exact[k] for k in keys},
    )]
    figures.append(Figure(
        f"field_{dim}_updates", f"{SOLVER_LABEL['lod']} {label}",
        "field-voxel updates/s", by_threads=lod["updates_per_s"],
        target=(
            Target(">=", FIELD_LOD_TARGET, f">= {_sci(FIELD_LOD_TARGET)} (issue 6)",
                   applies=is_target, why_not=why_not)
            if dim == "2d" else None
        ),
        details={"shape": res["shape"], "field_voxels": res["field_voxels"]}
        | {k: lod[k] for k in keys},
    ))
    b = lod["bytes_per_update"]
    achieved = {t: u * b / 1e9 for t, u in lod["updates_per_s"].items()}
    figures.append(Figure(
        f"field_{dim}_bandwidth", f"  LOD bandwidth implied ({b} B/update, minimum traffic)",
        "GB/s", by_threads=achieved,
        details={"bytes_per_update": b,
                 "convention": "each axis sweep reads and writes each float32 once"},
    ))
    figures.append(Figure(
        f"field_{dim}_bandwidth_ratio", "  LOD: ratio to STREAM triad bandwidth", "1",
        by_threads={t: achieved[t] / stream[t] for t in threads},
    ))
    ratio = {int(t): float(v) for t, v in res["exact_over_lod"].items()}
    figures.append(Figure(
        f"field_{dim}_exact_over_lod", f"  time per step, exact / LOD ({label}, same run)",
        "x", value=min(ratio.values()), by_threads=ratio,
        details={"pairs": res["exact_over_lod_pairs"],
                 "value": "lowest over thread counts"},
    ))
    speedups: list[Figure] = []
    if len(threads) > 1:
        speedups.append(_speedup_figure(
            f"speedup_field_{dim}", f"thread speedup: LOD field step {label}",
            lod["updates_per_s"], threads, shape in FULL_FIELD_SHAPES,
            "target is for the full-size field steps",
        ))
        speedups.append(_speedup_figure(
            f"speedup_field_exact_{dim}", f"thread speedup: exact field step {label}",
            exact["updates_per_s"], threads, shape in FULL_FIELD_SHAPES, "", target=False,
        ))
    return figures, speedups


def _fields(
    config: BenchConfig, threads: list[int], stream: dict[int, float], raw: dict[str, Any],
    log: Callable[[str], None],
) -> tuple[list[Figure], list[Figure]]:
    """Field-solver figures (both solvers), and their thread-speedup figures."""
    raw["fields"] = []
    figures: list[Figure] = []
    speedups: list[Figure] = []
    for shape in config.field_shapes:
        log(f"field solvers, exact and LOD, {_field_label(shape, config.n_fields)}")
        res = fieldbench.field_throughput(
            shape, threads, config.repeats, config.min_block_s, config.n_fields
        )
        raw["fields"].append(res)
        fig, sp = field_figures(res, threads, stream)
        figures += fig
        speedups += sp
    return figures, speedups


def _size_figures(n: int, res: dict[str, Any]) -> list[Figure]:
    """Figures of one whole-tick size (and its run-file write, if measured)."""
    per = res["by_threads"]
    nf = res["n_fields"]
    label_n = f"~{cells_label(n)}"
    solver = res.get("field_solver", "exact")
    figures = [
        Figure(
            f"tick_rate_{n}",
            f"whole tick, baseline {label_n} cells, {nf} fields, {SOLVER_LABEL[solver]}",
            "ticks/s", by_threads=_by(per, "ticks_per_s"),
            target=Target(">=", 10.0, ">= 10 (1e6 cells; issues 6, 14)",
                          applies=n >= TICKS_TARGET_MIN_CELLS,
                          why_not="target is for about 1e6 cells"),
            details={
                "field_solver": solver,
                "shape": res["shape"], "initial_cells": res["initial_cells"],
                "n_fields": nf, "n_rules": res["n_rules"],
                "mean_cells": _by(per, "mean_cells"),
                "seconds_per_tick": _by(per, "seconds_per_tick"),
                "phase_fraction": {t: v["phase_fraction"] for t, v in per.items()},
                "parallel": {t: v["parallel"] for t, v in per.items()},
                "samples_s_per_tick": {t: v["samples_s_per_tick"] for t, v in per.items()},
            },
        ),
        Figure(
            f"cell_steps_{n}", f"  cell-steps, {label_n} cells", "cell-steps/s",
            by_threads=_by(per, "cell_steps_per_s"),
            target=Target(">=", 1e7, ">= 1e7", applies=n >= CELL_STEPS_TARGET_MIN_CELLS,
                          why_not=f"target is for large runs (>= "
                          f"{cells_label(CELL_STEPS_TARGET_MIN_CELLS)} cells)"),
        ),
    ]
    if "write" in res:
        w = res["write"]
        figures += [
            Figure(f"write_mb_per_s_{n}",
                   f"run-file write, {label_n} cells (gzip {w['compression_level']})",
                   "MB/s", value=w["mb_per_s"], details=w),
            Figure(f"write_snapshots_per_s_{n}", "  snapshots (with checkpoint)",
                   "snapshots/s", value=w["snapshots_per_s"]),
            Figure(f"write_mb_per_snapshot_{n}", "  file size per snapshot", "MB",
                   value=w["mb_per_snapshot"]),
            Figure(f"write_raw_mb_per_s_{n}", "  uncompressed state written", "MB/s",
                   value=w["raw_mb_per_s"]),
        ]
    return figures


def _whole_ticks(
    config: BenchConfig, threads: list[int], raw: dict[str, Any], log: Callable[[str], None]
) -> list[Figure]:
    """Whole-tick, cell-step and run-file write figures at every size, and
    the log-log slope of time per tick against cells."""
    raw["ticks"] = []
    write_sizes = [s for s in config.sizes if s >= config.write_min_cells] or [max(config.sizes)]
    figures: list[Figure] = []
    for n in config.sizes:
        log(f"whole ticks of the baseline at ~{n} cells")
        res = ticks.measure_size(
            n, threads, config.repeats, config.min_block_s,
            write_snapshots=config.write_snapshots if n in write_sizes else 0,
            write_folder=config.write_folder,
        )
        raw["ticks"].append(res)
        figures += _size_figures(n, res)
    slopes = {}
    for t in threads:
        cells = [r["by_threads"][t]["mean_cells"] for r in raw["ticks"]]
        secs = [r["by_threads"][t]["seconds_per_tick"] for r in raw["ticks"]]
        slope = ticks.scaling_exponent(cells, secs)
        if slope is not None:
            slopes[t] = slope
    if slopes:
        figures.append(Figure(
            "scaling_exponent", "cost vs cells: log-log slope of s/tick", "1",
            by_threads=slopes, target=Target("<=", 1.1, "<= 1.1 (linear)"),
            details={"sizes": config.sizes},
        ))
    return figures


def _lod_tick(
    config: BenchConfig, threads: list[int], raw: dict[str, Any], log: Callable[[str], None]
) -> list[Figure]:
    """Whole ticks at the largest size with ``domain.field_solver = "lod"``,
    and the exact/LOD ratio of seconds per tick (the default solver's figures
    are in ``raw["ticks"]``)."""
    n = max(config.sizes)
    log(f"whole ticks of the baseline at ~{n} cells with {LOD_OVERRIDE}")
    res = ticks.measure_size(n, threads, config.repeats, config.min_block_s,
                             overrides=[LOD_OVERRIDE])
    raw["ticks_lod"] = res
    per = res["by_threads"]
    exact = next(r for r in raw["ticks"] if r["nominal_cells"] == n)
    label_n = f"~{cells_label(n)}"
    ratio = {
        t: exact["by_threads"][t]["seconds_per_tick"] / per[t]["seconds_per_tick"]
        for t in threads
    }
    return [
        Figure(
            f"tick_rate_lod_{n}",
            f"whole tick, baseline {label_n} cells, {res['n_fields']} fields, {LOD_OVERRIDE}",
            "ticks/s", by_threads=_by(per, "ticks_per_s"),
            target=Target(">=", 10.0, ">= 10 (1e6 cells; issue 6)",
                          applies=n >= TICKS_TARGET_MIN_CELLS,
                          why_not="target is for about 1e6 cells"),
            details={
                "field_solver": res["field_solver"], "overrides": res["overrides"],
                "shape": res["shape"], "initial_cells": res["initial_cells"],
                "mean_cells": _by(per, "mean_cells"),
                "seconds_per_tick": _by(per, "seconds_per_tick"),
                "phase_fraction": {t: v["phase_fraction"] for t, v in per.items()},
                "samples_s_per_tick": {t: v["samples_s_per_tick"] for t, v in per.items()},
            },
        ),
        Figure(
            f"cell_steps_lod_{n}", f"  cell-steps, {label_n} cells, LOD", "cell-steps/s",
            by_threads=_by(per, "cell_steps_per_s"),
        ),
        Figure(
            f"tick_exact_over_lod_{n}",
            f"  time per tick, exact / LOD ({label_n} cells, same run)", "x",
            value=min(ratio.values()), by_threads=ratio,
            details={"value": "lowest over thread counts",
                     "step_fields_fraction": {
                         "exact": {t: v["phase_fraction"].get("step_fields")
                                   for t, v in exact["by_threads"].items()},
                         "lod": {t: v["phase_fraction"].get("step_fields")
                                 for t, v in per.items()},
                     }},
        ),
    ]


def _memory(largest: dict[str, Any]) -> list[Figure]:
    """Bytes per cell, each figure saying what it counts (see :func:`ticks.state_bytes`)."""
    mem = largest["memory"]
    where = f"at {mem['cells']} cells"
    figures = [Figure(
        "bytes_per_cell", "state per cell (persistent columns)", "B/cell",
        value=mem["persistent_per_cell"], target=Target("<=", 64, "<= 64"), details=mem,
    )]
    if mem["behaviour_cache_per_cell"] is not None:
        figures.append(Figure(
            "behaviour_cache_per_cell",
            f"  + behaviour cache, {mem['behaviour_columns']} x float32 (working)",
            "B/cell", value=mem["behaviour_cache_per_cell"],
        ))
    if mem["site_map_per_site"] is not None:
        figures.append(Figure(
            "site_map_per_site", "  + site map (per lattice site)", "B/site",
            value=mem["site_map_per_site"], details={"per_cell": mem["site_map_per_cell"]},
        ))
    figures.append(Figure(
        "allocated_per_cell", f"  cell-table arrays incl. spare rows, {where}", "B/cell",
        value=mem["allocated_per_cell"],
    ))
    figures.append(Figure(
        "engine_arrays_per_cell", f"  all engine arrays incl. fields, {where}", "B/cell",
        value=mem["engine_arrays_per_cell"],
    ))
    if mem["rss_growth_per_cell"] is not None:
        figures.append(Figure(
            "rss_growth_per_cell", f"  resident memory growth building it, {where}",
            "B/cell", value=mem["rss_growth_per_cell"],
        ))
    return figures


def _mesa(
    config: BenchConfig, threads: list[int], raw: dict[str, Any], log: Callable[[str], None]
) -> list[Figure]:
    """Plain Mesa against the engine on the walk-and-divide rules."""
    log(f"plain Mesa vs engine: random walk + division, ~{config.mesa_agents} agents")
    cmp = walk.compare_with_mesa(config.mesa_agents, threads, config.repeats, config.mesa_ticks)
    raw["mesa"] = cmp
    mesa_rate = cmp["mesa"]["agent_steps_per_s"]
    eng = {t: v["agent_steps_per_s"] for t, v in cmp["engine"].items()}
    label = f"~{cells_label(config.mesa_agents)} agents"
    return [
        Figure("mesa_agent_steps", f"plain Mesa walk+divide, {label}", "agent-steps/s",
               value=mesa_rate, details=cmp["mesa"]),
        Figure("engine_walk_agent_steps", f"tme_abm engine, same rules, {label}",
               "agent-steps/s", by_threads=eng,
               details={k: v for k, v in cmp.items() if k != "mesa"}),
        Figure("speedup_vs_mesa", "  speedup over plain Mesa", "x",
               by_threads={t: v / mesa_rate for t, v in eng.items()},
               target=Target(">=", 100.0, ">= 100",
                             applies=config.mesa_agents >= MESA_TARGET_MIN_AGENTS,
                             why_not="target is for about 1e4 agents")),
    ]


def run_bench(
    config: BenchConfig, log: Callable[[str], None] = _log
) -> tuple[dict[str, Any], list[Figure]]:
    """Measure everything; returns the JSON-ready report and the figures.

    Parameters
    ----------
    config
        What to measure.
    log
        Progress messages (default: stderr).
    """
    started = time.perf_counter()
    available = int(numba.config.NUMBA_NUM_THREADS)
    threads = [t for t in config.threads if t <= available] or [1]
    skipped = [t for t in config.threads if t > available]
    if skipped:
        log(f"thread counts {skipped} skipped: numba has {available} threads "
            "(NUMBA_NUM_THREADS)")
    idle = system.idle_check(config.idle_seconds)
    log(idle.message())
    log("warming up the JIT")
    warm_s = warm_up(threads)
    raw: dict[str, Any] = {}

    figures, stream = _bandwidth(config, threads, raw, log)
    field_figures, field_speedups = _fields(config, threads, stream, raw, log)
    figures += field_figures
    figures += _whole_ticks(config, threads, raw, log)
    figures += _lod_tick(config, threads, raw, log)
    largest = raw["ticks"][-1]
    if len(threads) > 1:
        figures.append(_speedup_figure(
            "speedup_memory_bandwidth", "thread speedup: STREAM triad", stream, threads,
            True, "", target=False,
        ))
        figures += field_speedups
        n = largest["nominal_cells"]
        figures.append(_speedup_figure(
            "speedup_tick",
            f"thread speedup: whole tick ~{cells_label(n)} cells, exact field step",
            _by(largest["by_threads"], "ticks_per_s"), threads,
            n >= SPEEDUP_TARGET_MIN_CELLS,
            f"target is for large runs (>= {cells_label(SPEEDUP_TARGET_MIN_CELLS)} cells)",
            details={"parallel": {t: v["parallel"] for t, v in largest["by_threads"].items()}},
        ))
    figures += _memory(largest)
    figures += _mesa(config, threads, raw, log)
    figures += memory.long_run(config, raw, log)
    figures += loaded.loaded_case(config, threads, raw, log)
    figures += tissueload.tissue_load(config, raw, log)

    idle_after = system.idle_check(min(config.idle_seconds, 0.5))
    report = {
        "format": "tme_abm-bench",
        "format_version": 1,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "quick": config.quick,
        "config": asdict(config),
        "threads": threads,
        "threads_skipped": skipped,
        "machine": system.machine_info(),
        "idle_check": idle.as_dict(),
        "idle_check_after": idle_after.as_dict(),
        "warm_up_seconds": warm_s,
        "conventions": {
            "medians": "every figure is the median over repeats; thread columns are numba "
            "thread counts (numba.set_num_threads)",
            "memory_bandwidth": "STREAM triad a = b + s*c on float64, 24 bytes/element "
            "(write-allocate not counted)",
            "field_solvers": "float32 fields; exact (default): scatter_sources refill of "
            "half the sites' rates + ExactFieldStep.step, from zero fields; LOD: diffuse_decay "
            "on random fields; the same 8 baseline fields, alternating blocks at each thread "
            "count; "
            "exact_over_lod = ratio of the median times (see tme_abm.benchmark.fieldbench)",
            "whole_tick_solver": "tick_rate_* and cell_steps_* use the default (exact) field "
            "solver; tick_rate_lod_* the same scenario with domain.field_solver=lod",
            "field_bandwidth": "LOD only: field-voxel updates/s x minimum bytes per update: "
            "each LOD axis sweep reads and writes every float32 once (8 B per axis: 16 B in "
            "2D, 24 B in 3D); ratio = that / STREAM triad at the same thread count",
            "cell_steps": "mean cells at the start of the timed ticks / median seconds per tick",
            "value": "headline value = best over thread counts (lowest for exact/LOD "
            "ratios); a target marked 'on 1 thr' is judged on the 1-thread value",
            "baseline": "the shipped baseline.toml on a square lattice whose central tumour "
            "disc covers half of it; all of the baseline's fields and rules (12 fields: "
            "overrides cannot remove fields, so the issue's 8-field tick target is measured "
            "with 12)",
        },
        "figures": [f.as_dict() for f in figures],
        "peers": list(PEERS),
        "raw": raw,
        "seconds": time.perf_counter() - started,
    }
    return report, figures


def format_report(report: dict[str, Any], figures: list[Figure]) -> str:
    """The printed report: header, figures table, peers."""
    m = report["machine"]
    title = "tme_abm bench"
    if report["quick"]:
        title += " --quick (smoke-test sizes: figures not comparable with the targets)"
    memory = f", {m['memory_gb']:.0f} GB" if m.get("memory_gb") else ""
    lines = [
        title,
        f"machine: {m['cpu_model']}, {m['usable_cpus']} CPUs usable{memory}",
        f"numba {m['numba']} ({m['numba_threading_layer']}), threads {report['threads']}; "
        f"numpy {m['numpy']}; mesa {m['mesa']}",
        report["idle_check"]["message"],
        "",
        format_table(figures, report["threads"]),
        "",
        *(missed_targets(figures) or ["no applicable target missed"]),
        "",
        format_peers(report["peers"]),
    ]
    if report["threads_skipped"]:
        lines.insert(4, f"skipped thread counts {report['threads_skipped']}: numba has "
                        f"{m['numba_max_threads']} threads")
    if not report["idle_check_after"]["idle"]:
        lines.append("")
        lines.append("after the run: " + report["idle_check_after"]["message"])
    return "\n".join(lines)
