"""The cost-against-cells picture of a bench report (``bench.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

#: HAL's on-lattice model at 1e6 agents (issue 6): 2.67 ticks/s.
HAL_S_PER_TICK_1E6 = 1.0 / 2.67


def plot_scaling(report: dict[str, Any], path: str | Path) -> Path:
    """Seconds per whole tick against cells, per thread count, log-log.

    The lines are the default (exact) field solver; the largest size run with
    ``domain.field_solver = "lod"`` (``raw.ticks_lod``, where present) adds
    one open marker per thread count.

    Parameters
    ----------
    report
        The JSON report of :func:`tme_abm.benchmark.run.run_bench` (its
        ``raw.ticks`` and ``raw.ticks_lod`` entries).
    path
        PNG to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    ticks = report["raw"]["ticks"]
    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    ax = fig.add_subplot()
    # thread counts are int keys in the report in memory, str keys once read from JSON
    by = [{int(k): v for k, v in e["by_threads"].items()} for e in ticks]
    threads = sorted({t for b in by for t in b})
    all_cells = []
    colours = {}
    for th in threads:
        pts = sorted((b[th]["mean_cells"], b[th]["seconds_per_tick"]) for b in by if th in b)
        if not pts:
            continue
        cells, sec = np.array(pts, dtype=np.float64).T
        all_cells += list(cells)
        (line,) = ax.loglog(cells, sec * 1e3, "o-",
                            label=f"tme_abm, exact fields, {th} thread{'s' if th > 1 else ''}")
        colours[th] = line.get_color()
    if not all_cells:
        raise ValueError("the report has no whole-tick measurements to plot")
    lod = report["raw"].get("ticks_lod")
    if lod:
        for th, v in sorted((int(k), v) for k, v in lod["by_threads"].items()):
            ax.loglog([v["mean_cells"]], [v["seconds_per_tick"] * 1e3], "D", mfc="none",
                      color=colours.get(th), label=f"field_solver = lod, {th} "
                      f"thread{'s' if th > 1 else ''}")
    lo, hi = min(all_cells), max(all_cells)
    ref = np.array([lo, hi])
    first = by[0][threads[0]]
    ax.loglog(ref, first["seconds_per_tick"] * 1e3 * ref / first["mean_cells"], ":",
              color="grey", label="linear in cells")
    ax.axhline(100.0, color="tab:red", lw=0.8, ls="--", label="target at 1e6 cells: 10 ticks/s")
    ax.loglog([1e6], [HAL_S_PER_TICK_1E6 * 1e3], "s", color="black",
              label="HAL, 1e6 agents (issue 6)")
    ax.set_xlabel("cells")
    ax.set_ylabel("ms per whole tick (12 fields, 44 rules)")
    ax.set_title("Cost of a baseline tick against the number of cells")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.92, bottom=0.12)
    out = Path(path)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(out)
    return out
