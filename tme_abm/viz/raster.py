"""Lattice and field pictures as PNG images made straight from the arrays.

The page draws every frame from these (no matplotlib on the page): a scale
that maps values to the rows of a colour table (:class:`Scale`: linear or
log, clipped at a percentile or fixed), and a palette PNG of those row codes
(:class:`ColourTable` is the palette) from Pillow's encoder at its fastest
level, so no per-pixel RGB array is ever made.  One image pixel is one lattice
site; the browser scales the image up with nearest-neighbour sampling, so
cells stay squares at any zoom.  Row 0 of a lattice (y = 0) is drawn at the
bottom, as in the run file's plots.

Measured on this project's 2-core machine: colouring and encoding a
cell-type picture of 200 x 200 sites takes about 0.4 ms, of 1000 x 1000
sites about 6 ms (``tools/viz_screenshot.py`` measures the whole page).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

#: Colour of empty sites in pictures coloured by cell type.
EMPTY_RGB = (255, 255, 255)
#: Colour of sites with no value (no cell) in pictures of a per-cell quantity.
NO_VALUE_RGB = (236, 236, 236)
#: Colour of the tumour-edge outline.
EDGE_RGB = (0, 0, 0)
#: Rows of a continuous colour table (row 0 "no value"; the last palette entry,
#: :data:`EDGE_CODE`, is kept for the tumour edge).
TABLE_ROWS = 255
#: Palette entry of the tumour-edge outline.
EDGE_CODE = 255
#: Stops of the CSS gradient drawn as a colour bar.
GRADIENT_STOPS = 9
#: A log scale spans this many decades below its top when no bottom is given.
LOG_DECADES = 3.0

ScaleKind = Literal["linear", "log"]


def _rgb(colour: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb  # named and hex colours, as the scenario allows

    r, g, b = to_rgb(colour)
    return round(r * 255), round(g * 255), round(b * 255)


def hex_colour(rgb: Sequence[int]) -> str:
    """``#rrggbb`` of an RGB triple (0-255)."""
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb[:3]))


@dataclass(frozen=True)
class ColourTable:
    """Rows of RGB colours, indexed by a uint8 code per site."""

    rgb: np.ndarray  # (rows, 3) uint8

    @classmethod
    def for_cell_types(cls, colours: Sequence[str]) -> ColourTable:
        """Row 0 for empty sites, then one row per cell type (code + 1)."""
        return cls(np.array([EMPTY_RGB, *map(_rgb, colours)], dtype=np.uint8))

    @classmethod
    def continuous(cls, cmap: str) -> ColourTable:
        """Row 0 for "no value", then :data:`TABLE_ROWS` - 1 rows of a matplotlib
        colour map (``viridis``, ``magma``)."""
        from matplotlib import colormaps

        rows = colormaps[cmap](np.linspace(0.0, 1.0, TABLE_ROWS - 1))[:, :3]
        table = np.vstack([np.array([NO_VALUE_RGB]), np.round(rows * 255)])
        return cls(table.astype(np.uint8))

    def gradient_css(self) -> str:
        """A CSS ``linear-gradient`` of the continuous rows (for a colour bar)."""
        rows = np.linspace(1, len(self.rgb) - 1, GRADIENT_STOPS).round().astype(int)
        stops = ", ".join(hex_colour(self.rgb[r]) for r in rows)
        return f"linear-gradient(to right, {stops})"


@dataclass(frozen=True)
class Scale:
    """How values map to the rows 1..255 of a continuous :class:`ColourTable`.

    Parameters
    ----------
    vmin, vmax
        Values drawn with the first and last colour; values outside are
        clipped to them.
    kind
        ``"linear"``, or ``"log"`` (``vmin`` must then be positive).
    """

    vmin: float
    vmax: float
    kind: ScaleKind = "linear"

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Table rows (uint8) of ``values``; NaN (no cell) gives row 0."""
        v = np.asarray(values, dtype=np.float32)
        lo, hi = self.vmin, self.vmax
        if self.kind == "log":
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log10(np.maximum(v, np.float32(lo)))
            lo, hi = np.log10(lo), np.log10(hi)
        span = hi - lo if hi > lo else 1.0
        with np.errstate(invalid="ignore"):
            scaled = (v - np.float32(lo)) * np.float32((TABLE_ROWS - 2) / span)
            scaled = np.clip(scaled, 0.0, TABLE_ROWS - 2)
        out = np.zeros(v.shape, dtype=np.uint8)
        finite = np.isfinite(scaled)
        out[finite] = scaled[finite].astype(np.uint8) + 1
        return out


def auto_scale(
    values: np.ndarray,
    kind: ScaleKind = "linear",
    clip_percentile: float = 100.0,
    reference: float = 1.0,
) -> Scale:
    """A scale fitted to ``values``.

    Parameters
    ----------
    values
        The values shown (NaN: no cell, ignored).
    kind
        ``"linear"`` (from 0) or ``"log"`` (:data:`LOG_DECADES` below the top,
        or from the smallest positive value if that is higher).
    clip_percentile
        Top of the scale: this percentile of the values (100: the maximum).
        Clipping at 99 or 99.9 keeps one hot site from washing out the rest.
    reference
        Top used when nothing is positive (a field before anything was
        secreted): a level that means something for the quantity, such as
        the lowest half-max at which cells respond to the field.  So a field
        of zeros is drawn on a scale of its biology, not of 1e-9.
    """
    v = np.asarray(values)
    with np.errstate(invalid="ignore"):
        peak = float(np.nanmax(v)) if v.size and not np.all(np.isnan(v)) else 0.0
    if not peak > 0:  # nothing positive (NaN-only or all <= 0)
        top = float(reference)
        return (Scale(top / 10**LOG_DECADES, top, "log") if kind == "log"
                else Scale(0.0, top, "linear"))
    if kind == "linear" and clip_percentile >= 100.0 and np.isfinite(peak):
        return Scale(0.0, peak, "linear")  # the common case, without sorting
    finite = v[np.isfinite(v)].astype(np.float64)
    positive = finite[finite > 0]
    if not positive.size:
        return auto_scale(np.zeros(0), kind, clip_percentile, reference)
    top = float(np.percentile(positive if kind == "log" else finite, clip_percentile))
    top = top if top > 0 else float(positive.max())
    if kind == "log":
        floor = top / 10**LOG_DECADES
        return Scale(max(floor, min(float(positive.min()), top / 10)), top, "log")
    return Scale(0.0, top, "linear")


def tumour_edge(types: np.ndarray, tumour_codes: Sequence[int]) -> np.ndarray:
    """The outer edge of the tumour on a 2D plane: tumour sites that touch a
    non-tumour site outside the tumour (4-neighbours; the lattice border
    counts as outside).  Immune cells inside the tumour (holes) make no edge."""
    from scipy.ndimage import binary_fill_holes

    inside = np.isin(types, np.asarray(tumour_codes, dtype=types.dtype))
    edge = np.zeros(inside.shape, dtype=bool)
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return edge
    # only the tumour's bounding box is searched (filling holes is the costly part)
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    filled = binary_fill_holes(inside[box])
    padded = np.pad(filled, 1, constant_values=False)
    all_in = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    edge[box] = inside[box] & ~all_in
    return edge


@dataclass(frozen=True)
class Picture:
    """A 2D plane of colour-table rows (row 0 of the array is the top of the
    picture) and the table that colours them."""

    codes: np.ndarray  # (h, w) uint8
    table: ColourTable

    def rgb(self) -> np.ndarray:
        """The picture as an (h, w, 3) RGB array."""
        return palette(self.table).reshape(256, 3)[self.codes]


def palette(table: ColourTable) -> np.ndarray:
    """The 256-entry RGB palette of a table, :data:`EDGE_CODE` the edge colour."""
    out = np.zeros((256, 3), dtype=np.uint8)
    out[: len(table.rgb)] = table.rgb
    out[EDGE_CODE] = EDGE_RGB
    return out.ravel()


def paint(codes: np.ndarray, table: ColourTable, edge: np.ndarray | None = None) -> Picture:
    """The picture of a 2D code plane, rows flipped so that y = 0 is at the
    bottom, with ``edge`` sites in the edge colour."""
    if len(table.rgb) > EDGE_CODE:
        raise ValueError(f"a colour table has at most {EDGE_CODE} rows, not {len(table.rgb)}")
    if edge is not None:
        codes = np.where(edge, np.uint8(EDGE_CODE), codes)
    return Picture(np.ascontiguousarray(codes[::-1], dtype=np.uint8), table)


def png_data_url(picture: Picture) -> str:
    """A ``data:image/png`` URL of a picture: a palette PNG (one byte per
    pixel) at Pillow's fastest compression."""
    image = Image.fromarray(picture.codes)
    image.putpalette(palette(picture.table).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def type_codes(types: np.ndarray) -> np.ndarray:
    """Rows of :meth:`ColourTable.for_cell_types` for a plane of cell-type codes (-1 empty)."""
    return (np.asarray(types, dtype=np.int16) + 1).astype(np.uint8)
