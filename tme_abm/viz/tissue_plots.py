"""Figures of tissue comparisons: a real section's metrics beside a run's.

:func:`plot_comparison` draws the table of :func:`tme_abm.tissue.compare_tissue`
as one small panel per metric (tissue and run as two bars), so numbers on
different scales (densities per mm², fractions, ratios) each get their own
axis.  Drawn on the Agg canvas like :mod:`tme_abm.viz.plots`, and written
under a temporary name, then renamed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tme_abm.viz.plots import _save

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["plot_comparison"]

_UNITS = {"cd8_core_density": "per mm²", "cd8_margin_density": "per mm²"}


def plot_comparison(
    frame: pd.DataFrame, out: str | Path, tissue_name: str = "tissue", run_name: str = "run"
) -> Path:
    """Draw a comparison table (``metric``, ``tissue``, ``run``) as a PNG.

    Counts (``n_*`` rows) are left out: they depend on the section's size.
    A metric that is NaN or zero on both sides is left out too; one that is
    NaN on one side shows an empty bar marked "n/a".
    """
    rows = [r for r in frame.itertuples() if not r.metric.startswith("n_")
            and not all(math.isnan(v) or v == 0 for v in (r.tissue, r.run))]
    ncols = 4
    nrows = max(1, math.ceil(len(rows) / ncols))
    fig = Figure(figsize=(2.6 * ncols, 2.1 * nrows), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = ("#7f7f7f", "#1f77b4")
    for ax, row in zip(axes, rows, strict=False):
        values = [row.tissue, row.run]
        heights = [0.0 if math.isnan(v) else v for v in values]
        bars = ax.bar([0, 1], heights, color=colours, width=0.6)
        for bar, v in zip(bars, values, strict=True):
            label = "n/a" if math.isnan(v) else f"{v:.3g}"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
        ax.set_xticks([0, 1], ["tissue", "run"], fontsize=8)
        unit = _UNITS.get(row.metric, "")
        ax.set_title(row.metric.replace("_", " ") + (f" ({unit})" if unit else ""), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        top = max(heights) if max(heights) > 0 else 1.0
        ax.set_ylim(0, top * 1.25)
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    fig.suptitle(f"{tissue_name} (grey) vs {run_name} (blue)", fontsize=10)
    return _save(fig, Path(out))
