"""Long-run memory: does resident memory stay flat as a run goes on?

:func:`run_memory` runs the baseline biology through the real
``tme-abm run`` path (:func:`tme_abm.runner.run_scenario`, writing a run file
with its snapshots, checkpoints and per-tick series) on a lattice that starts
full, so that the cell count stays about constant, and samples the process's
resident memory (RSS) every few ticks.  The figure is the slope of a
least-squares line through the samples after a warm-up, in KB per tick: a
run whose memory is flat has a slope near 0; anything that keeps a little per
tick (a Python list of the series, an HDF5 chunk cache that fills) shows up
as a steady slope.  (Some growth is bounded: HDF5's metadata cache fills up
to its 2 MiB limit over the first few thousand snapshots; see
:data:`FLAT_KB_PER_TICK`.)

:func:`measure_in_subprocess` runs it in a fresh interpreter
(``python -m tme_abm.benchmark.memory``), so that memory freed by the other
benchmarks cannot hide growth, and returns the same dictionary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Ticks and lattice side of the full and quick measurements.
FULL_TICKS = 20_160  # 70 days at the baseline's 5 min
FULL_SIDE = 60
QUICK_TICKS = 1_000
QUICK_SIDE = 16
#: Fewest ticks a measurement may have; RSS is sampled about 200 times.
MIN_TICKS = 100
SAMPLES = 200
#: Fraction of the ticks left out of the fit as warm-up.
WARM_UP_FRACTION = 0.2
#: Slope at most this is "flat".  Keeping the series in Python lists and
#: HDF5's default chunk cache grew a run by 1.5-6 KB/tick; with neither, what
#: is left over 20,160 ticks (~0.12 KB/tick at 60^2, 281 snapshots) is HDF5's
#: metadata cache taking in the chunk index's nodes up to its fixed 2 MiB
#: limit, which it reaches after about 3,000 snapshots and then stays flat.
FLAT_KB_PER_TICK = 0.25


def rss_bytes() -> int | None:
    """The process's resident memory in bytes (None where it cannot be read).

    Reads ``/proc/self/statm``; elsewhere falls back to the peak resident size
    from :func:`resource.getrusage`, which can only grow but still shows growth.
    """
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def slope_per_tick(ticks: np.ndarray, rss: np.ndarray) -> float:
    """Least-squares slope of ``rss`` (bytes) against ``ticks``, in bytes per tick."""
    t = np.asarray(ticks, dtype=float)
    y = np.asarray(rss, dtype=float)
    if t.size < 2 or np.ptp(t) == 0:
        return math.nan
    dt = t - t.mean()
    return float(np.dot(dt, y - y.mean()) / np.dot(dt, dt))


def full_lattice(side: int, ticks: int) -> Any:
    """The baseline scenario on a ``side`` x ``side`` lattice filled by the
    tumour (so the cell count stays about constant), lasting ``ticks`` ticks."""
    from tme_abm.benchmark.ticks import BASELINE
    from tme_abm.scenario import load_scenario

    plain = load_scenario(BASELINE).scenario
    disc = next(k for k, pl in enumerate(plain.placement) if pl.region == "disc")
    site, dt = plain.domain.site_um, plain.domain.dt_min
    covers = side * site  # a radius of the lattice's width covers its corners
    return load_scenario(BASELINE, [
        f"domain.shape=[{side}, {side}]",
        f"domain.duration_days={ticks * dt / 1440.0!r}",
        f"placement.{disc}.radius_um={covers:g}",
    ])


def run_memory(
    ticks: int, side: int, every: int, folder: str | Path | None = None
) -> dict[str, Any]:
    """Run the baseline for ``ticks`` ticks into a run file and sample RSS.

    Parameters
    ----------
    ticks
        Length of the run (the scenario's duration is set to it).
    side
        Lattice side (sites); the lattice starts full.
    every
        Sample resident memory every this many ticks.
    folder
        Where the temporary run file goes (None: the system's temp folder).

    Returns
    -------
    dict
        ``kb_per_tick`` (slope after the warm-up), the samples, the cell
        counts seen, the run's seconds, and what was run.
    """
    from tme_abm.runner import run_scenario

    loaded = full_lattice(side, ticks)
    samples: list[tuple[int, int]] = []
    cells: list[int] = []

    def sample(model: Any) -> None:
        tick = model.engine.tick
        if tick % every == 0 or tick == model.n_ticks:
            rss = rss_bytes()
            if rss is not None:
                samples.append((tick, rss))
            cells.append(int(model.engine.cells.n))

    with tempfile.TemporaryDirectory(dir=folder, prefix="tme-abm-bench-memory-") as tmp:
        start = time.perf_counter()
        result = run_scenario(loaded, Path(tmp) / "memory.h5", progress=False, on_tick=sample)
        seconds = time.perf_counter() - start
        file_mb = result.path.stat().st_size / 1e6
    t = np.array([s[0] for s in samples], dtype=float)
    y = np.array([s[1] for s in samples], dtype=float)
    warm = int(round(WARM_UP_FRACTION * result.ticks))
    fit = t >= warm
    slope = slope_per_tick(t[fit], y[fit]) if samples else math.nan
    return {
        "ticks": result.ticks,
        "shape": [side, side],
        "sample_every": every,
        "warm_up_ticks": warm,
        "kb_per_tick": slope / 1024.0,
        "mb_per_million_ticks": slope,  # bytes/tick x 1e6 ticks / 1e6 B per MB
        "rss_mb_after_warm_up": float(y[fit][0]) / 1e6 if fit.any() else None,
        "rss_mb_end": float(y[-1]) / 1e6 if samples else None,
        "cells_min": min(cells) if cells else None,
        "cells_max": max(cells) if cells else None,
        "snapshots": result.snapshots,
        "run_file_mb": file_mb,
        "seconds": seconds,
        "samples": [[int(a), int(b)] for a, b in samples],
    }


def measure_in_subprocess(
    ticks: int, side: int, every: int, folder: str | Path | None = None,
    timeout_s: float = 1800.0,
) -> dict[str, Any]:
    """:func:`run_memory` in a fresh interpreter; ``{"error": ...}`` if it fails."""
    cmd = [sys.executable, "-m", "tme_abm.benchmark.memory", "--ticks", str(ticks),
           "--side", str(side), "--every", str(every)]
    if folder is not None:
        cmd += ["--folder", str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"the long run took more than {timeout_s:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"error": f"the long run failed: {tail[0]}"}
    return json.loads(done.stdout)


def memory_figures(res: dict[str, Any], quick: bool) -> list[Any]:
    """The long-run memory figures of :func:`run_memory`'s result."""
    from tme_abm.benchmark.report import Figure, Target

    side = res.get("shape", ["?"])[0]
    label = f"{res.get('ticks', '?')} ticks, {side}^2 full lattice"
    details = {k: v for k, v in res.items() if k != "samples"}
    details["samples_tick_rss_bytes"] = res.get("samples", [])
    return [Figure(
        "rss_kb_per_tick", f"long run: RSS growth per tick ({label})", "KB/tick",
        value=res.get("kb_per_tick"),
        target=Target("<=", FLAT_KB_PER_TICK, f"<= {FLAT_KB_PER_TICK} (flat)",
                      applies=not quick and "error" not in res,
                      why_not=res.get("error", "quick runs are too short for a slope")),
        details=details,
    )]


def long_run(
    config: Any, raw: dict[str, Any], log: Callable[[str], None]
) -> list[Any]:
    """The bench's long-run memory case: figures, with the result in ``raw``.

    A full bench runs it in a fresh interpreter (:func:`measure_in_subprocess`);
    ``--quick`` runs a short one in this process, to stay seconds long.
    ``config.memory_ticks`` of 0 skips it.
    """
    ticks, side = config.memory_ticks, config.memory_side
    every = max(1, ticks // SAMPLES)
    if ticks <= 0:
        return []
    log(f"long-run memory: {ticks} ticks of the baseline on a full {side}^2 lattice"
        + ("" if config.quick else " (a fresh process; minutes)"))
    if config.quick:
        res = run_memory(ticks, side, every, config.write_folder)
    else:
        res = measure_in_subprocess(ticks, side, every, config.write_folder)
        if "error" in res:
            log(f"long-run memory: {res['error']}")
    raw["long_run_memory"] = res
    return memory_figures(res, config.quick)


def main(argv: list[str] | None = None) -> int:
    """``python -m tme_abm.benchmark.memory``: print :func:`run_memory`'s JSON."""
    parser = argparse.ArgumentParser(prog="python -m tme_abm.benchmark.memory",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=FULL_TICKS)
    parser.add_argument("--side", type=int, default=FULL_SIDE)
    parser.add_argument("--every", type=int, default=FULL_TICKS // SAMPLES)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args(argv)
    res = run_memory(args.ticks, args.side, args.every, args.folder)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
