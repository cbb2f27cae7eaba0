"""Matplotlib helpers for cell-type lattices in the PNG plots of runs and sweeps.

(The browser page draws its pictures straight from the arrays instead: see
:mod:`tme_abm.viz.raster`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.image import AxesImage
from matplotlib.patches import Patch

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
