"""The loaded case: thread counts while other processes hold the cores.

On a shared machine the cores are not all ours.  :func:`loaded_case` runs,
in one process and one run, two workloads at every thread count, first with
the machine as it is ("idle") and then with busy-loop competitor processes
started and stopped by the bench ("loaded"), alternating idle and loaded
blocks ``repeats`` times so that both see the same background:

* the random walk of the Mesa comparison (:mod:`~tme_abm.benchmark.walk`) at
  about 1e5 agents (quick: 3e3), in agent-steps/s;
* whole ticks of the baseline (:mod:`~tme_abm.benchmark.ticks`) at about
  1e4 cells (quick: 1e3), where the thread policy chooses, in cell-steps/s.

The competitors default to one per usable CPU but one (at least one): on the
2-core machines this was measured on, one busy process, so that 2 threads
cannot both have a core.  The target (from the issue): with the competitors
running, no thread count is more than 10% slower than one thread.  Ratios
are per repeat (same moment), then the median.  The OpenMP wait policy in
effect (``tme_abm._runtime``) is recorded beside the figures.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numba

from tme_abm import _runtime
from tme_abm.benchmark import ticks, walk
from tme_abm.benchmark.report import Figure, Target
from tme_abm.benchmark.timing import median

FULL_WALK_AGENTS = 100_000
QUICK_WALK_AGENTS = 3_000
FULL_TICK_CELLS = 10_000
QUICK_TICK_CELLS = 1_000
#: Loaded figures must be at least this fraction of the loaded 1-thread figure.
MIN_RATIO = 0.9
#: A competitor exits by itself after this long, or when the bench is gone.
COMPETITOR_MAX_S = 1800.0

_BUSY = (
    "import os, sys, time\n"
    "parent, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])\n"
    "while os.getppid() == parent and time.monotonic() < end:\n"
    "    for _ in range(100000):\n"
    "        pass\n"
)


def default_competitors() -> int:
    """One busy process per usable CPU but one, at least one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


class Competitors:
    """Busy-loop processes, started on entry and stopped on exit.

    Each is a Python loop that also exits by itself when its parent (the
    bench) is gone or after ``max_s`` seconds, so none outlives a killed bench.
    """

    def __init__(self, n: int, max_s: float = COMPETITOR_MAX_S, ramp_s: float = 0.2) -> None:
        self.n = n
        self.max_s = max_s
        self.ramp_s = ramp_s
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Competitors:
        for _ in range(self.n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BUSY, str(os.getpid()), str(self.max_s)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ))
        time.sleep(self.ramp_s)  # let them start spinning
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()
        self.procs.clear()

    def running(self) -> int:
        """How many are still running."""
        return sum(p.poll() is None for p in self.procs)


def _block(engine: Any, n_ticks: int) -> float:
    """Cell-steps (cells at the start of each tick) per second over ``n_ticks`` ticks."""
    steps = 0
    spent = 0.0
    for _ in range(n_ticks):
        steps += engine.cells.n
        t0 = time.perf_counter()
        engine.step()
        spent += time.perf_counter() - t0
    return steps / max(spent, 1e-12)


def _engines(make: Callable[[], Any], threads: list[int], min_block_s: float,
             max_ticks: int = 50) -> tuple[dict[int, Any], int]:
    """One engine per thread count (built and settled at that count), and the
    ticks per timed block (about ``min_block_s`` on one thread)."""
    engines: dict[int, Any] = {}
    per = 1
    before = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            e = make()
            e.step()
            ticks.settle_thread_policy(e)
            if not engines:
                t0 = time.perf_counter()
                e.step()
                first = max(time.perf_counter() - t0, 1e-9)
                per = max(1, min(max_ticks, math.ceil(min_block_s / first)))
            engines[t] = e
    finally:
        numba.set_num_threads(before)
    return engines, per


def measure(
    make: Callable[[], Any], threads: list[int], repeats: int, competitors: int,
    min_block_s: float,
) -> dict[str, Any]:
    """Idle and loaded cell-steps/s of the engines ``make`` builds.

    Returns
    -------
    dict
        ``idle`` and ``loaded``: median rate per thread count;
        ``idle_ratio`` and ``loaded_ratio``: median over repeats of each
        count's rate over the 1-thread (else fewest-thread) rate of the same
        repeat; the samples; ``ticks_per_block``; ``mean_cells``; the thread
        policy's probes at the end.
    """
    engines, per = _engines(make, threads, min_block_s)
    samples: dict[str, dict[int, list[float]]] = {
        "idle": {t: [] for t in threads}, "loaded": {t: [] for t in threads},
    }
    ratios: dict[str, dict[int, list[float]]] = {
        "idle": {t: [] for t in threads}, "loaded": {t: [] for t in threads},
    }
    base = threads[0]
    before = numba.get_num_threads()
    alive = []
    try:
        for _ in range(max(1, repeats)):
            for state in ("idle", "loaded"):
                rates = {}
                with Competitors(competitors if state == "loaded" else 0) as comp:
                    for t in threads:
                        numba.set_num_threads(t)
                        rates[t] = _block(engines[t], per)
                    if state == "loaded":
                        alive.append(comp.running())
                for t in threads:
                    samples[state][t].append(rates[t])
                    ratios[state][t].append(rates[t] / rates[base])
    finally:
        numba.set_num_threads(before)
    return {
        "idle": {t: median(v) for t, v in samples["idle"].items()},
        "loaded": {t: median(v) for t, v in samples["loaded"].items()},
        "idle_ratio": {t: median(v) for t, v in ratios["idle"].items()},
        "loaded_ratio": {t: median(v) for t, v in ratios["loaded"].items()},
        "samples": samples,
        "ratio_samples": ratios,
        "ticks_per_block": per,
        "repeats": max(1, repeats),
        "competitors_running": alive,
        "mean_cells": {t: float(e.cells.n) for t, e in engines.items()},
        "thread_policy": {t: ticks.thread_policy_report(e) for t, e in engines.items()},
    }


def wait_policy() -> dict[str, Any]:
    """The OpenMP wait settings in effect and which of them tme_abm set."""
    return {
        "threading_layer": _layer(),
        "environment": {k: os.environ.get(k) for k in _runtime.WAIT_VARIABLES},
        "set_by_tme_abm": {k: v for k, v in _runtime.APPLIED.items()
                           if k in _runtime.WAIT_VARIABLES},
    }


def _layer() -> str:
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel kernel has run yet
        return str(numba.config.THREADING_LAYER)


def _label(n: int) -> str:
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def loaded_case(
    config: Any, threads: list[int], raw: dict[str, Any], log: Callable[[str], None]
) -> list[Figure]:
    """Figures of the loaded case (none when ``config.loaded_competitors`` is 0).

    ``config`` is a :class:`~tme_abm.benchmark.run.BenchConfig`: its
    ``quick``, ``repeats``, ``min_block_s`` and ``loaded_competitors``
    (None: :func:`default_competitors`) are used.
    """
    n_comp = getattr(config, "loaded_competitors", None)
    n_comp = default_competitors() if n_comp is None else int(n_comp)
    if n_comp <= 0:
        return []
    quick = bool(config.quick)
    walk_n = QUICK_WALK_AGENTS if quick else FULL_WALK_AGENTS
    tick_n = QUICK_TICK_CELLS if quick else FULL_TICK_CELLS
    env = ", ".join(f"{k}={os.environ[k]}" for k in _runtime.WAIT_VARIABLES
                    if os.environ.get(k)) or "no OpenMP wait setting"
    who = f"{n_comp} busy process{'es' if n_comp != 1 else ''}"
    log(f"loaded case: {who} against the random walk (~{walk_n}) and the baseline "
        f"(~{tick_n} cells); {env}")
    side = max(8, round(math.sqrt(walk_n / 0.25)))

    def make_walk() -> Any:
        return walk.walk_engine((side, side), 0.25, 0.5, 0.001)

    def make_tick() -> Any:
        model, _ = ticks.build_model(ticks.baseline_at(tick_n))
        return model.engine

    results = {
        "walk": measure(make_walk, threads, config.repeats, n_comp, config.min_block_s),
        "tick": measure(make_tick, threads, config.repeats, n_comp, config.min_block_s),
    }
    policy = wait_policy()  # after the kernels ran: numba knows its threading layer
    raw["loaded"] = {"competitors": n_comp, "wait_policy": policy,
                     "walk_agents": walk_n, "tick_cells": tick_n, **results}
    has_one = 1 in threads and len(threads) > 1
    figures: list[Figure] = []
    names = {
        "walk": (f"random walk ~{_label(walk_n)} agents", "agent-steps/s"),
        "tick": (f"baseline whole tick ~{_label(tick_n)} cells", "cell-steps/s"),
    }
    for key, (what, unit) in names.items():
        r = results[key]
        figures += [
            Figure(f"loaded_{key}_idle", f"{what}, as found (idle)", unit, by_threads=r["idle"]),
            Figure(f"loaded_{key}_busy", f"  same, {who} running", unit, by_threads=r["loaded"],
                   details={"competitors": n_comp, "wait_policy": policy}),
            Figure(f"loaded_{key}_idle_ratio", "  idle: vs 1 thread", "x",
                   by_threads=r["idle_ratio"]),
            Figure(
                f"loaded_{key}_ratio", f"  {who}: vs 1 thread", "x",
                value=min(r["loaded_ratio"].values()), by_threads=r["loaded_ratio"],
                target=Target(">=", MIN_RATIO, f">= {MIN_RATIO:g} (each)",
                              applies=has_one and not quick,
                              why_not="needs 1 and more threads, at full size"),
                details={"per_repeat": r["ratio_samples"]["loaded"]},
            ),
        ]
    return figures
