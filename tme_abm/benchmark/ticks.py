"""Whole ticks of the baseline biology at a chosen number of cells, the
state each cell costs, and run-file write throughput.

:func:`baseline_at` loads the shipped ``baseline.toml`` with ``--set``-style
overrides that make a square lattice whose central tumour disc holds most of
the wanted cells (the disc covers :data:`TUMOUR_FILL` of the lattice; the
baseline's resident immune cells are placed everywhere at their usual
densities, and vessels recruit as usual).  Everything else (all fields, all
rules) is the baseline's.  Overrides cannot remove fields, so the run has the
baseline's field count, reported with the figures.
"""

from __future__ import annotations

import gc
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numba
import numpy as np

from tme_abm.benchmark.timing import median
from tme_abm.core.fft_sizes import largest_prime_factor, nearest_fast_sides
from tme_abm.scenario import LoadedScenario, load_scenario
from tme_abm.scenario.library import examples_dir

BASELINE = examples_dir() / "baseline.toml"
#: Fraction of the lattice inside the tumour disc.
TUMOUR_FILL = 0.5
#: The lattice is sized for this many times the wanted cells.
CELLS_MARGIN = 1.02
#: Engine methods timed separately inside ``Engine.step`` (missing ones are skipped).
PHASES = ("step_therapies", "step_fields", "step_stat3", "evaluate_rules", "step_act")


def baseline_at(
    n_cells: int,
    path: str | Path = BASELINE,
    seed: int = 1,
    overrides: Sequence[str] = (),
) -> LoadedScenario:
    """The baseline scenario on a lattice that starts with about ``n_cells`` cells.

    Parameters
    ----------
    n_cells
        Wanted initial number of cells.
    path
        Scenario file whose first ``disc`` placement is the tumour.
    seed
        Scenario seed.
    overrides
        More ``--set``-style overrides, applied after the size's, e.g.
        ``["domain.field_solver=lod"]``.
    """
    plain = load_scenario(path).scenario
    disc = next(k for k, pl in enumerate(plain.placement) if pl.region == "disc")
    everywhere = sum(pl.fraction for pl in plain.placement if pl.region == "everywhere")
    site = plain.domain.site_um
    # aim 2% high so that a size at a parallel threshold (1e5) starts above it
    wanted = CELLS_MARGIN * n_cells
    side = max(12, math.ceil(math.sqrt(wanted / (TUMOUR_FILL + everywhere))))
    # the next side made of 2, 3 and 5, on which the exact field step's
    # transforms are fast (a user would choose one; the validator says so)
    if largest_prime_factor(side) > 5:
        side = nearest_fast_sides(side, dirichlet=False)[1]
    radius_sites = math.sqrt(max(0.0, wanted - everywhere * side * side) / math.pi)
    size = [
        f"domain.shape=[{side}, {side}]",
        f"placement.{disc}.radius_um={radius_sites * site:.6g}",
        f"seed={seed}",
    ]
    return load_scenario(path, [*size, *overrides])


class PhaseTimer:
    """Times the engine's tick phases by wrapping its methods on the instance.

    Only the outermost timed call counts (a phase that calls another is not
    counted twice).  ``totals`` maps phase name to seconds.
    """

    def __init__(self, engine: Any) -> None:
        self.totals: dict[str, float] = {}
        self._depth = 0
        for name in PHASES:
            method = getattr(engine, name, None)
            if callable(method):
                self.totals[name] = 0.0
                setattr(engine, name, self._wrap(name, method))

    def _wrap(self, name: str, method: Callable[[], Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.totals[name] += time.perf_counter() - t0

        return timed

    def reset(self) -> None:
        """Zero the totals."""
        for name in self.totals:
            self.totals[name] = 0.0


def parallel_plan(engine: Any) -> dict[str, Any]:
    """Which of the engine's kernels run parallel at this size.

    Cell kernels (sources, STAT3, rules, act) run on all threads from
    ``PARALLEL_MIN_CELLS`` cells and the field solver from
    ``PARALLEL_MIN_FIELD_VOXELS`` field-voxels (``tme_abm.core.engine``);
    below ``SERIAL_BELOW_CELLS`` / ``SERIAL_BELOW_FIELD_VOXELS`` on one
    thread; in between, on what the engine's thread policy chose
    (``"policy"``; see :mod:`tme_abm.core.threads`).
    """
    from tme_abm.core import engine as engine_module

    def plan_for(work: int, kind: str) -> Any:
        hi = getattr(engine_module, f"PARALLEL_MIN_{kind}", None)
        lo = getattr(engine_module, f"SERIAL_BELOW_{kind}", 0)
        if hi is None:
            return None
        return True if work >= hi else False if work < lo else "policy"

    return {
        name: getattr(engine_module, name, None)
        for name in (
            "PARALLEL_MIN_CELLS", "PARALLEL_MIN_FIELD_VOXELS",
            "SERIAL_BELOW_CELLS", "SERIAL_BELOW_FIELD_VOXELS",
        )
    } | {
        "cell_kernels_parallel": plan_for(engine.cells.n, "CELLS"),
        "field_kernels_parallel": plan_for(engine.conc.size, "FIELD_VOXELS"),
    }


def thread_policy_report(engine: Any) -> dict[str, Any] | None:
    """The engine's thread-policy choice and its probes so far (None without one)."""
    policy = getattr(engine, "thread_policy", None)
    if policy is None:
        return None
    return {
        "choice": policy.choice,
        "probes": [
            {"tick": t, "one_thread_s": a, "all_threads_s": b, "chose": c}
            for t, a, b, c in policy.decisions
        ],
    }


def settle_thread_policy(engine: Any, max_ticks: int = 64) -> int:
    """Step ``engine`` until its thread policy has made its first choice, if
    any of its kernels is left to the policy and numba has several threads,
    so that timed ticks measure the steady state; returns the ticks run."""
    policy = getattr(engine, "thread_policy", None)
    plan = parallel_plan(engine)
    mid = "policy" in (plan["cell_kernels_parallel"], plan["field_kernels_parallel"])
    ran = 0
    if policy is None or not mid or numba.get_num_threads() < 2:
        return ran
    while not policy.decisions and ran < max_ticks:
        engine.step()
        ran += 1
    return ran


def time_ticks(
    engine: Any, repeats: int, min_block_s: float, max_ticks: int = 20
) -> dict[str, Any]:
    """Time whole ticks (``engine.step()``) after one warm-up tick.

    A calibration tick sets how many ticks one block holds (about
    ``min_block_s`` of work, 1 to ``max_ticks``); ``repeats`` blocks follow.

    Returns
    -------
    dict
        Median ``seconds_per_tick``, ``ticks_per_s`` and ``cell_steps_per_s``
        (cells present at the start of each tick, averaged, over the median
        seconds per tick), ``mean_cells``, ``phase_fraction`` (share of the
        timed ticks spent in each engine phase, the rest as ``other``), and
        the raw samples, which kernels ran parallel (:func:`parallel_plan`,
        at the start of the timed ticks) and the thread policy's probes
        (:func:`thread_policy_report`, at the end).
    """
    engine.step()  # warm-up at this thread count
    settle_thread_policy(engine)
    t0 = time.perf_counter()
    engine.step()
    first = max(time.perf_counter() - t0, 1e-9)
    per = max(1, min(max_ticks, math.ceil(min_block_s / first)))
    plan = parallel_plan(engine)
    phases = PhaseTimer(engine)
    samples, cells = [], []
    total = 0.0
    for _ in range(max(1, repeats)):
        block = 0.0
        for _ in range(per):
            cells.append(engine.cells.n)
            t0 = time.perf_counter()
            engine.step()
            block += time.perf_counter() - t0
        samples.append(block / per)
        total += block
    sec = median(samples)
    mean_cells = float(np.mean(cells))
    fraction = {k: v / total for k, v in phases.totals.items()}
    fraction["other"] = max(0.0, 1.0 - sum(fraction.values()))
    return {
        "seconds_per_tick": sec,
        "ticks_per_s": 1.0 / sec,
        "cell_steps_per_s": mean_cells / sec,
        "mean_cells": mean_cells,
        "ticks_per_block": per,
        "samples_s_per_tick": samples,
        "phase_fraction": fraction,
        "parallel": plan,
        "thread_policy": thread_policy_report(engine),
    }


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import resource

    return pages * resource.getpagesize()


def _array_bytes(*objects: Any) -> int:
    """Bytes of the numpy arrays held as attributes of ``objects`` (views of
    another array counted once, by their base)."""
    seen: set[int] = set()
    total = 0
    for obj in objects:
        for value in vars(obj).values():
            if isinstance(value, np.ndarray):
                base = value if value.base is None else value.base
                if isinstance(base, np.ndarray) and id(base) not in seen:
                    seen.add(id(base))
                    total += base.nbytes
    return total


def state_bytes(engine: Any, rss_growth: int | None = None) -> dict[str, Any]:
    """What one cell costs in memory, each number saying what it counts.

    Returns
    -------
    dict
        ``persistent_per_cell``: ``cells.state_bytes_per_cell()``, the saved
        per-cell columns; ``behaviour_cache_per_cell``: the cached behaviour
        matrix row (working memory, recomputed from the state each tick);
        ``site_map_per_site`` and ``site_map_per_cell`` (at this run's
        cells per site); ``allocated_per_cell``: every array of the cell
        table at its current capacity over the live cells;
        ``engine_arrays_per_cell``: every array of the engine (fields
        included) over the live cells; ``rss_growth_per_cell``: resident
        memory growth while the engine was built, over its cells (approximate).
    """
    c = engine.cells
    n = max(1, c.n)
    n_sites = int(getattr(engine, "n_sites", c.site_cell.shape[0]))
    beh = getattr(c, "behaviours", None)
    beh_row = None if beh is None or beh.ndim != 2 else beh.shape[1] * beh.dtype.itemsize
    site_map = c.site_cell.dtype.itemsize if hasattr(c, "site_cell") else None
    return {
        "cells": c.n,
        "sites": n_sites,
        "persistent_per_cell": int(c.state_bytes_per_cell()),
        "behaviour_columns": None if beh is None else int(beh.shape[1]),
        "behaviour_cache_per_cell": beh_row,
        "site_map_per_site": site_map,
        "site_map_per_cell": None if site_map is None else site_map * n_sites / n,
        "allocated_per_cell": _array_bytes(c) / n,
        "engine_arrays_per_cell": _array_bytes(engine, c) / n,
        "rss_growth_per_cell": None if rss_growth is None else rss_growth / n,
    }


def build_model(loaded: LoadedScenario) -> tuple[Any, int | None]:
    """A :class:`~tme_abm.model.TMEModel` (whose ``engine`` is timed) and the
    resident-memory growth its construction caused (None if unknown)."""
    from tme_abm.model import TMEModel

    gc.collect()
    before = _rss_bytes()
    model = TMEModel(loaded)
    after = _rss_bytes()
    grew = None if before is None or after is None else max(0, after - before)
    return model, grew


def write_throughput(
    model: Any, snapshots: int, folder: str | Path | None = None
) -> dict[str, Any]:
    """Time writing snapshots as ``tme-abm run`` writes them.

    Each snapshot is what :func:`tme_abm.runner.run_scenario` writes: the
    cell-type lattice, every saved field, the cell columns, and the restart
    checkpoint, with the scenario's compression level, flushed.  The state is
    the model's current one; the tick counter advances by one between
    snapshots (times must increase).  One untimed snapshot comes first.

    Parameters
    ----------
    model
        A TMEModel.
    snapshots
        Timed snapshots.
    folder
        Where the temporary run file goes (default: the system's temp folder).

    Returns
    -------
    dict
        Median ``seconds_per_snapshot``, ``snapshots_per_s``,
        ``mb_per_s`` (file growth per second, 1e6 bytes), ``raw_mb_per_s``
        (uncompressed bytes handed to the writer per second),
        ``mb_per_snapshot`` (file growth) and the compression level.
    """
    from tme_abm.io import RunWriter
    from tme_abm.runner import _snapshot, run_layout

    engine = model.engine
    layout = run_layout(model)
    level = model.scenario.output.compression_level
    raw = _raw_snapshot_bytes(model, layout)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tme_abm_bench_", dir=folder) as tmp:
        path = Path(tmp) / "bench.h5"
        seconds, grown = [], []
        with RunWriter(path, layout, force=True, compression_level=level) as writer:
            _snapshot(writer, model, layout)
            size = writer.partial_path.stat().st_size
            for _ in range(max(1, snapshots)):
                engine.tick += 1
                t0 = time.perf_counter()
                _snapshot(writer, model, layout)
                seconds.append(time.perf_counter() - t0)
                new = writer.partial_path.stat().st_size
                grown.append(new - size)
                size = new
            writer.close(complete=False)
    sec = median(seconds)
    per_snapshot = median(grown)
    return {
        "cells": engine.cells.n,
        "shape": list(model.scenario.domain.shape),
        "fields_saved": len(layout.field_names),
        "compression_level": level,
        "seconds_per_snapshot": sec,
        "snapshots_per_s": 1.0 / sec,
        "mb_per_snapshot": per_snapshot / 1e6,
        "mb_per_s": per_snapshot / sec / 1e6,
        "raw_mb_per_snapshot": raw / 1e6,
        "raw_mb_per_s": raw / sec / 1e6,
        "samples_s": seconds,
        "note": "file growth per snapshot; the checkpoint is replaced at every snapshot "
        "(HDF5 reuses the old one's space), so the growth counts the snapshot data plus "
        "any space HDF5 did not reuse",
    }


def _raw_snapshot_bytes(model: Any, layout: Any) -> int:
    """Uncompressed bytes of one snapshot plus its checkpoint."""
    e = model.engine
    n_sites = int(np.prod(layout.shape))
    total = n_sites  # int8 lattice
    total += len(layout.field_names) * n_sites * 4
    if layout.cell_columns:
        total += sum(a.nbytes for a in e.cells.columns().values())
    arrays, _ = e.checkpoint()
    total += sum(a.nbytes for a in arrays.values())
    return total


def measure_size(
    n_cells: int,
    threads: list[int],
    repeats: int,
    min_block_s: float,
    write_snapshots: int = 0,
    write_folder: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Whole-tick timings of the baseline at about ``n_cells`` cells.

    A fresh model is built for every thread count (runs are deterministic, so
    each thread count times the same ticks).  Memory per cell is taken from
    the first model, and the run-file write (if ``write_snapshots``) uses the
    last one after its ticks.  ``overrides`` go to :func:`baseline_at`; the
    field solver used is reported as ``field_solver``.
    """
    loaded = baseline_at(n_cells, overrides=overrides)
    sc = loaded.scenario
    out: dict[str, Any] = {
        "nominal_cells": n_cells,
        "overrides": list(overrides),
        "field_solver": sc.domain.field_solver,
        "shape": list(sc.domain.shape),
        "n_fields": len(sc.fields),
        "n_rules": len(sc.rules),
        "n_cell_types": len(sc.cell_types),
        "by_threads": {},
    }
    before = numba.get_num_threads()
    try:
        for k, t in enumerate(threads):
            numba.set_num_threads(t)
            t0 = time.perf_counter()
            model, grew = build_model(loaded)
            build_s = time.perf_counter() - t0
            engine = model.engine
            if k == 0:
                out["initial_cells"] = engine.cells.n
                out["build_seconds"] = build_s
                out["memory"] = state_bytes(engine, grew)
            res = time_ticks(engine, repeats, min_block_s)
            out["by_threads"][t] = res
            if write_snapshots and k == len(threads) - 1:
                out["write"] = write_throughput(model, write_snapshots, write_folder)
            del model, engine
            gc.collect()
    finally:
        numba.set_num_threads(before)
    return out


def scaling_exponent(cells: list[float], seconds: list[float]) -> float | None:
    """Slope of log(seconds per tick) against log(cells) (1 = linear cost)."""
    if len(cells) < 2 or len(set(cells)) < 2:
        return None
    slope, _ = np.polyfit(np.log(cells), np.log(seconds), 1)
    return float(slope)
