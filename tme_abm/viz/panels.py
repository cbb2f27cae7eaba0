"""The lattice panels of the page: pictures, legends and colour bars.

Pure functions of a :class:`~tme_abm.viz.frames.FrameSource` and the view
settings (no Solara), so that what the page draws is tested without a
browser.  Each panel is a dict for the page's lattice component: ``title``,
``src`` (a PNG data URL, one pixel per site), and a ``legend`` (cell types
with their labels, colours and counts) or a ``colorbar`` (CSS gradient, ends,
label with units and scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from tme_abm.viz.frames import CELL_TYPE, UNIT_RANGE, FrameSource
from tme_abm.viz.raster import (
    ColourTable,
    Scale,
    ScaleKind,
    auto_scale,
    paint,
    png_data_url,
    tumour_edge,
    type_codes,
)

#: Percentiles offered as the top of a colour scale, with their names on the page.
CLIP_LABELS = {100.0: "max", 99.9: "99.9th pct", 99.0: "99th pct", 95.0: "95th pct"}
CLIP_PERCENTILES = tuple(CLIP_LABELS)
#: Colour maps of per-cell quantities and of fields.
QUANTITY_CMAP = "viridis"
FIELD_CMAP = "magma"


@dataclass(frozen=True)
class ViewSettings:
    """How the panels are drawn.

    Parameters
    ----------
    colour_by
        :data:`~tme_abm.viz.frames.CELL_TYPE` or one of the catalogue's quantities.
    field
        Field mapped beside the lattice (None: none).
    z
        Plane of a 3D lattice.
    field_scale
        ``"linear"`` or ``"log"``.
    clip_percentile
        Top of automatic scales (100: the maximum).
    fixed_field_scale
        A scale kept over time (None: fitted to each frame).
    outline_tumour
        Draw the tumour's edge in black on the cell-type picture.
    """

    colour_by: str = CELL_TYPE
    field: str | None = None
    z: int = 0
    field_scale: ScaleKind = "linear"
    clip_percentile: float = 100.0
    fixed_field_scale: Scale | None = None
    outline_tumour: bool = True


@lru_cache(maxsize=8)
def _types_table(colours: tuple[str, ...]) -> ColourTable:
    return ColourTable.for_cell_types(colours)


@lru_cache(maxsize=4)
def _continuous(cmap: str) -> ColourTable:
    return ColourTable.continuous(cmap)


def format_value(v: float) -> str:
    """A colour-bar end: 3 significant digits."""
    return "0" if v == 0 else f"{v:.3g}"


def _colorbar(table: ColourTable, scale: Scale, label: str) -> dict[str, Any]:
    kind = " (log)" if scale.kind == "log" else ""
    return {"gradient": table.gradient_css(), "low": format_value(scale.vmin),
            "high": format_value(scale.vmax), "label": label + kind}


def field_scale(source: FrameSource, settings: ViewSettings,
                values: np.ndarray | None = None) -> Scale | None:
    """The scale the field panel uses under ``settings`` (None: no field
    shown); ``values``: the field's plane, if already read."""
    cat = source.catalogue
    if not settings.field or settings.field not in cat.field_names:
        return None
    if settings.fixed_field_scale is not None:
        return settings.fixed_field_scale
    if values is None:
        values = source.field(settings.field, settings.z)
    reference = cat.field_reference[cat.field_names.index(settings.field)]
    return auto_scale(values, settings.field_scale, settings.clip_percentile, reference)


def lattice_panels(source: FrameSource, settings: ViewSettings) -> list[dict[str, Any]]:
    """The lattice panel (by cell type or a per-cell quantity) and, if a field
    is chosen, the field panel."""
    cat = source.catalogue
    z = min(max(settings.z, 0), cat.dims[0] - 1)
    types = source.types(z)
    edge = (tumour_edge(types, cat.tumour_codes)
            if settings.outline_tumour and cat.tumour_codes else None)
    if settings.colour_by == CELL_TYPE or settings.colour_by not in cat.quantities:
        table = _types_table(cat.type_colours)
        counts = source.counts()
        legend = [{"label": lab, "colour": col, "count": f"{n:,}"}
                  for lab, col, n in zip(cat.type_labels, cat.type_colours, counts, strict=True)]
        if edge is not None:
            legend.append({"label": "tumour edge", "colour": "#000000", "count": ""})
        first = {"title": "cells by type", "src": png_data_url(paint(type_codes(types), table,
                                                                     edge)),
                 "legend": legend, "colorbar": None}
    else:
        name = settings.colour_by
        values = source.quantity(name, z)
        if name in UNIT_RANGE:
            scale = Scale(0.0, 1.0)
        else:
            scale = auto_scale(values, "linear", settings.clip_percentile)
        table = _continuous(QUANTITY_CMAP)
        units = ""
        if name in cat.behaviour_names:
            units = cat.behaviour_units[cat.behaviour_names.index(name)]
        label = f"{name} ({units})" if units else name
        first = {"title": f"{name} per cell", "src": png_data_url(paint(scale.codes(values),
                                                                        table, edge)),
                 "legend": None, "colorbar": _colorbar(table, scale, label)}
    panels = [first]
    if settings.field and settings.field in cat.field_names:
        values = source.field(settings.field, z)  # read once (a live model copies it)
        scale = field_scale(source, settings, values)
        k = cat.field_names.index(settings.field)
        table = _continuous(FIELD_CMAP)
        peak = float(np.max(values)) if values.size else 0.0
        title = cat.field_labels[k] + ("" if peak > 0 else " (zero everywhere)")
        panels.append({"title": title, "src": png_data_url(paint(scale.codes(values), table)),
                       "legend": None,
                       "colorbar": _colorbar(table, scale, cat.field_units[k])})
    return panels


def caption(source: FrameSource, z: int | None = None) -> str:
    """``day 1.25 (tick 360)``, with the z plane of a 3D lattice."""
    text = f"day {source.time_min / 1440.0:.2f} (tick {source.tick})"
    if source.catalogue.is_3d and z is not None:
        text += f", z = {z}"
    return text
