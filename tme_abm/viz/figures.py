"""Matplotlib figures of a running model: the lattice and the time series.

Matplotlib rather than Altair: measured here, Altair takes 8-10 s per redraw
of a 500 x 500 lattice, an ``imshow`` well under a second.  Figures use fixed
margins (matplotlib's constrained layout added ~0.25 s per redraw), draw at
:data:`DPI`, and time series are thinned to :data:`MAX_POINTS` per line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch

if TYPE_CHECKING:  # the model (Mesa, numba) loads only where it runs
    from tme_abm.model import TMEModel

COLOUR_BY = ("cell type", "STAT3")
DPI = 80
MAX_POINTS = 400
#: Colour of empty sites (cell-type code -1).
EMPTY_COLOUR = "#ffffff"


def cell_type_cmap(colours: Sequence[str]) -> ListedColormap:
    """Colour map for ``cell_type + 1``: empty sites white, then one colour per type.

    Draw with ``imshow(cell_type + 1, cmap=cmap, vmin=0, vmax=len(colours),
    interpolation="nearest")`` (see :func:`draw_cell_types`).
    """
    return ListedColormap([EMPTY_COLOUR, *colours])


def draw_cell_types(ax: Axes, types: np.ndarray, colours: Sequence[str],
                    extent: Sequence[float]) -> AxesImage:
    """Draw a 2D cell-type lattice (codes, -1 empty) on ``ax`` in the types' colours."""
    return ax.imshow(np.asarray(types, dtype=np.int16) + 1, origin="lower", extent=extent,
                     cmap=cell_type_cmap(colours), vmin=0, vmax=len(colours),
                     interpolation="nearest")


def cell_type_handles(colours: Sequence[str], labels: Sequence[str],
                      counts: Sequence[int] | None = None) -> list[Patch]:
    """Legend patches, one per cell type, with the count in brackets when given."""
    if counts is None:
        return [Patch(color=c, label=str(lab)) for c, lab in zip(colours, labels, strict=True)]
    return [Patch(color=c, label=f"{lab} ({n})")
            for c, lab, n in zip(colours, labels, counts, strict=True)]


def _extent_mm(model: TMEModel) -> list[float]:
    ny, nx = model.params.dims[1:]
    s = model.params.site_um / 1000.0
    return [0.0, nx * s, 0.0, ny * s]


def _plane(grid: np.ndarray, z: int) -> np.ndarray:
    return grid[min(max(z, 0), grid.shape[0] - 1)] if grid.ndim == 3 else grid


def lattice_figure(
    model: TMEModel, colour_by: str = "cell type", field: str | None = None, z: int = 0
) -> Figure:
    """The lattice coloured by cell type or STAT3, beside a map of one field.

    Parameters
    ----------
    model
        The running model.
    colour_by
        ``"cell type"`` (with a legend) or ``"STAT3"`` (activation 0-1).
    field
        Field to map beside the lattice (None: no map).
    z
        Slice shown for 3D lattices.
    """
    e, sc = model.engine, model.scenario
    n_panels = 2 if field else 1
    fig = Figure(figsize=(5.2 * n_panels + 1.6, 4.6), dpi=DPI)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    fig.subplots_adjust(left=0.06, right=0.94, bottom=0.11, top=0.88, wspace=0.55)
    extent = _extent_mm(model)
    types = _plane(e.cell_type_grid(), z)
    ax = axes[0]
    if colour_by == "STAT3":
        c = e.cells
        n = c.n  # read once: the stepping thread may change it
        stat3 = np.full(e.n_sites, np.nan, dtype=np.float32)
        stat3[c.site[:n]] = c.stat3[:n]
        im = ax.imshow(_plane(stat3.reshape(model.params.shape), z), origin="lower",
                       extent=extent, cmap="viridis", vmin=0.0, vmax=1.0,
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8, label="STAT3 activation")
        ax.set_title("STAT3 per cell")
    else:
        colours = [ct.colour for ct in sc.cell_types.values()]
        draw_cell_types(ax, types, colours, extent)
        handles = cell_type_handles(colours, list(sc.cell_types), model.engine.counts())
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize=8, frameon=False)
        ax.set_title("cells by type")
    if field:
        f_index = model.params.field_names.index(field)
        spec = sc.fields[field]
        values = _plane(e.field_grid(f_index), z)
        # concentrations are never negative; keep 0 at the bottom even for an empty field
        im = axes[1].imshow(values, origin="lower", extent=extent, cmap="magma", vmin=0.0,
                            vmax=max(float(values.max()), 1e-9))
        fig.colorbar(im, ax=axes[1], shrink=0.8, label=spec.units)
        axes[1].set_title(spec.label or field)
    day = model.time_min / 1440.0
    suffix = f", z = {z}" if types.ndim == 2 and model.params.ndim == 3 else ""
    fig.suptitle(f"day {day:.2f} (tick {model.engine.tick}){suffix}", fontsize=10)
    for a in axes:
        a.set_xlabel("x (mm)")
        a.set_ylabel("y (mm)")
    return fig


def _log_scale_if_positive(ax: Axes, series: Iterable[np.ndarray]) -> None:
    """Log y axis if any value is positive; else keep the linear one.

    Zeros are masked on a log axis, and matplotlib warns ("Data has no
    positive values, and therefore cannot be log-scaled") when nothing is
    left, as for the field means at tick 0, before anything was secreted.
    """
    if any(np.any(np.asarray(s) > 0) for s in series):
        ax.set_yscale("log", nonpositive="mask")


def series_figure(model: TMEModel) -> Figure:
    """Counts, mean STAT3 per cell type and field means over time."""
    sc = model.scenario
    columns = model.datacollector.model_vars
    # the stepping thread may be appending while we read: use the common length
    n = min(len(v) for v in columns.values()) if columns else 0
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int)) if n else []
    # a model opened at a run's checkpoint starts collecting at that tick
    first = getattr(model.datacollector, "first_tick", 0)
    t_days = (first + np.asarray(keep)) * model.params.dt_min / 1440.0

    def series(name: str) -> np.ndarray:
        return np.asarray(columns[name][:n], dtype=float)[keep]

    fig = Figure(figsize=(12, 3.4), dpi=DPI)
    ax_counts, ax_stat3, ax_fields = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.9, wspace=0.25)
    counts = {name: series(f"count_{name}") for name in sc.cell_types}
    means = {name: series(f"field_mean_{name}") for name in sc.fields}
    for name, ct in sc.cell_types.items():
        ax_counts.plot(t_days, counts[name], color=ct.colour, label=name)
        ax_stat3.plot(t_days, series(f"stat3_mean_{name}"), color=ct.colour)
    for name in sc.fields:
        ax_fields.plot(t_days, means[name], label=sc.fields[name].label or name)
    # cell-type colours are those of the lattice's legend, so no second legend here
    _log_scale_if_positive(ax_counts, counts.values())
    ax_counts.set_title("cells (colours as in the lattice)")
    ax_stat3.set_ylim(0, 1)
    ax_stat3.set_title("mean STAT3 per type")
    _log_scale_if_positive(ax_fields, means.values())
    ax_fields.set_title("field means (ng/mL)")
    ax_fields.legend(fontsize=7, ncol=2)
    for a in (ax_counts, ax_stat3, ax_fields):
        a.set_xlabel("time (days)")
    return fig
