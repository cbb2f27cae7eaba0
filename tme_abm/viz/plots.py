"""Static figures (PNG) and movies (MP4, GIF) of run files and sweep folders.

:func:`plot_run` draws one run: cell counts over time, STAT3 distributions
per cell type, the lattice and every saved field at a few snapshots.
:func:`plot_sweep` draws a sweep folder's ``summary.csv``: each key output as
mean ± 95% confidence interval over replicates per scenario and parameter
point, and each output against each swept parameter.  :func:`write_movie`
renders the lattice beside one field over every snapshot.

Figures are :class:`matplotlib.figure.Figure` objects drawn on the Agg
canvas, never through ``pyplot``, so nothing here touches matplotlib's global
state (no backend switch, no open-figure registry).  Cell-type colours and
labels come from the run file's root attributes ``cell_type_colours`` and
``cell_type_labels`` and are drawn with :mod:`tme_abm.viz.figures`' helpers,
as on the browser page.  MP4 files are encoded by the ffmpeg binary that the
``imageio-ffmpeg`` wheel ships (no system ffmpeg needed), GIFs by Pillow.

Every file is written under a temporary name and renamed when complete, and
with ``overwrite=False`` nothing is written if any output already exists.
Bad input raises :class:`PlotError` (a :class:`ValueError`) before any file
is written; a file that is not a run file raises
:class:`tme_abm.io.RunFileError`.
"""

from __future__ import annotations

import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from tme_abm.analysis.replicates import mean_ci
from tme_abm.batch import DONE_STATUSES
from tme_abm.io.reader import _cell_type_names, _open_run, read_snapshot, read_timeseries
from tme_abm.io.writer import PARTIAL_SUFFIX
from tme_abm.viz.figures import cell_type_handles, draw_cell_types

__all__ = [
    "PlotError",
    "mean_ci",
    "plot_run",
    "plot_sweep",
    "run_plot_names",
    "run_stem",
    "write_movie",
]

#: Resolution of the PNG files (dots per inch).
DPI = 110
#: Colour map of concentration fields (as on the browser page).
FIELD_CMAP = "magma"
#: Percentile of all snapshots' values that tops a movie's fixed field colour scale.
MOVIE_PERCENTILE = 99.5

_MIN_PER_DAY = 1440.0
_LEVEL = 0.95


class PlotError(ValueError):
    """Bad input to a plotting function (raised before any file is written)."""


# ---------------------------------------------------------------- helpers


def _note(log: Callable[[str], None] | None, text: str) -> None:
    if log is None:
        print(f"note: {text}", file=sys.stderr)
    else:
        log(text)


def _new_figure(width: float, height: float, dpi: float = DPI,
                layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    """Write a PNG under a temporary name, then rename it (no half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=fig.dpi, facecolor="white")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_free(paths: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]} already exists{more}; use --force to replace it")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def run_stem(path: str | Path) -> str:
    """A run file's name without ``.partial`` and ``.h5`` (``baseline.h5.partial`` -> baseline)."""
    name = Path(path).name
    if name.endswith(PARTIAL_SUFFIX):
        name = name[: -len(PARTIAL_SUFFIX)]
    return name[:-3] if name.endswith(".h5") else Path(name).stem


# ---------------------------------------------------------------- run files


@dataclass(frozen=True)
class _FieldInfo:
    name: str
    long_name: str
    units: str


@dataclass(frozen=True)
class _RunInfo:
    path: Path
    times_min: np.ndarray  # complete snapshots only
    shape: tuple[int, ...]
    site_um: float
    names: list[str]
    labels: list[str]
    colours: list[str]
    fields: list[_FieldInfo]
    has_cells: bool
    complete: bool
    scenario: str

    @property
    def n(self) -> int:
        return int(self.times_min.size)

    @property
    def extent_mm(self) -> list[float]:
        ny, nx = self.shape[-2:]
        s = self.site_um / 1000.0
        return [0.0, nx * s, 0.0, ny * s]

    @property
    def z_slice(self) -> int | None:
        """The z index drawn for a 3D lattice (the middle one); None in 2D."""
        return self.shape[0] // 2 if len(self.shape) == 3 else None

    @property
    def slice_note(self) -> str:
        z = self.z_slice
        return "" if z is None else f"middle z slice ({z} of 0..{self.shape[0] - 1})"

    def plane(self, grid: np.ndarray) -> np.ndarray:
        z = self.z_slice
        return grid[z] if z is not None and grid.ndim == 3 else grid

    @property
    def title(self) -> str:
        status = "" if self.complete else f", partial run ({self.n} snapshots)"
        return f"{self.scenario} ({self.path.name}{status})"


def _text(value: Any, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _run_info(path: str | Path) -> _RunInfo:
    p = Path(path)
    with _open_run(p) as f:
        n = int(f["time"].shape[0])
        times = np.asarray(f["time"][:n], dtype=np.float64)
        lattice = f["lattice/cell_type"]
        shape = tuple(int(s) for s in lattice.shape[1:])
        names = _cell_type_names(f)
        a = f.attrs
        colours = _text(a.get("cell_type_colours")).split()
        labels = _text(a.get("cell_type_labels")).split("|")
        if len(colours) != len(names):  # an older file: matplotlib's default cycle
            colours = [f"C{k % 10}" for k in range(len(names))]
        if len(labels) != len(names) or not all(labels):
            labels = list(names)
        fields = []
        for name, ds in f["fields"].items():
            if ds.ndim != len(shape) + 1:  # coordinate (dimension-scale) datasets
                continue
            fields.append(_FieldInfo(name, _text(ds.attrs.get("long_name"), name),
                                     _text(ds.attrs.get("units"))))
        cells = f["cells"] if "cells" in f else {}
        has_cells = "stat3" in cells and "type" in cells
        return _RunInfo(
            path=p,
            times_min=times,
            shape=shape,
            site_um=float(a.get("site_um", 1.0)),
            names=names,
            labels=labels,
            colours=colours,
            fields=fields,
            has_cells=has_cells,
            complete=bool(int(a.get("complete", 0))),
            scenario=_text(a.get("scenario_name"), "run"),
        )


@dataclass(frozen=True)
class _Pick:
    index: int
    time_min: float
    requested_day: float | None
    n: int

    @property
    def day(self) -> float:
        return self.time_min / _MIN_PER_DAY

    def title(self) -> str:
        text = f"day {self.day:.2f} (snapshot {self.index + 1}/{self.n})"
        if self.requested_day is not None and not math.isclose(
            self.requested_day, self.day, abs_tol=5e-3
        ):
            text += f"\nnearest to requested day {self.requested_day:g}"
        return text


def _pick_snapshots(info: _RunInfo, days: Sequence[float] | None,
                    log: Callable[[str], None] | None) -> list[_Pick]:
    n = info.n
    t = info.times_min
    if days is None:
        return [_Pick(i, float(t[i]), None, n) for i in sorted({0, (n - 1) // 2, n - 1})]
    picks: list[_Pick] = []
    for d in days:
        i = int(np.argmin(np.abs(t / _MIN_PER_DAY - d)))
        if any(p.index == i for p in picks):
            _note(log, f"day {d:g}: nearest snapshot (day {t[i] / _MIN_PER_DAY:.2f}) "
                       "is already shown")
            continue
        if d > t[-1] / _MIN_PER_DAY + 1e-9:
            _note(log, f"day {d:g} is after the last snapshot (day "
                       f"{t[-1] / _MIN_PER_DAY:.2f}); showing that one")
        picks.append(_Pick(i, float(t[i]), float(d), n))
    return sorted(picks, key=lambda p: p.index)


def _check_days(days: Sequence[float] | None) -> list[float] | None:
    if days is None:
        return None
    out = [float(d) for d in days]
    if not out:
        raise PlotError("--days: give at least one day")
    bad = [d for d in out if not math.isfinite(d) or d < 0]
    if bad:
        raise PlotError(f"--days: days must be finite and >= 0, not {bad[0]:g}")
    return out


def run_plot_names(path: str | Path) -> list[str]:
    """File names :func:`plot_run` writes for a run file, in order.

    ``counts.png``, ``stat3.png`` (only when the run saved its cells),
    ``lattice.png`` and one ``field_<name>.png`` per saved field.

    Raises
    ------
    tme_abm.io.RunFileError
        If ``path`` is not a readable run file.
    """
    return _run_names(_run_info(path))


def _run_names(info: _RunInfo) -> list[str]:
    names = ["counts.png"]
    if info.has_cells:
        names.append("stat3.png")
    names.append("lattice.png")
    names += [f"field_{_safe_name(fd.name)}.png" for fd in info.fields]
    return names


def plot_run(
    path: str | Path,
    out_dir: str | Path,
    days: Sequence[float] | None = None,
    *,
    log_counts: bool = True,
    overwrite: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write PNG figures of one run file.

    Parameters
    ----------
    path
        A run file, complete or an interrupted ``.partial`` (its complete
        snapshots are drawn).
    out_dir
        Folder for the PNGs (created if needed).
    days
        Simulated days to show; each is drawn from the nearest snapshot, whose
        time is given in the panel title.  Default: the first, middle and last
        snapshots.
    log_counts
        Log y axis for the cell counts (zero counts are left out of the line).
    overwrite
        If False and any of the files exists, raise :class:`FileExistsError`
        before writing anything.
    log
        Called with each note (a skipped figure, a day mapped to a far
        snapshot); default: print it on stderr.

    Returns
    -------
    list of Path
        The files written (see :func:`run_plot_names`): ``counts.png`` (cells
        per type over time), ``stat3.png`` (STAT3 per cell, one row of
        violins per snapshot; skipped with a note when the run was written
        with ``output.cells = false``), ``lattice.png`` (sites coloured by
        cell type) and ``field_<name>.png`` (one per saved field, a shared
        colour scale over the snapshots, units on the colour bar).  A 3D
        lattice is drawn as its middle z slice, said in the titles.

    Raises
    ------
    tme_abm.io.RunFileError
        If ``path`` is not a readable run file.
    PlotError
        If ``days`` is invalid or the file holds no complete snapshot.
    FileExistsError
        If ``overwrite`` is False and an output exists.
    """
    days = _check_days(days)
    info = _run_info(path)
    if info.n == 0:
        raise PlotError(f"{info.path} holds no complete snapshot yet")
    out = Path(out_dir)
    targets = [out / name for name in _run_names(info)]
    _check_free(targets, overwrite)
    picks = _pick_snapshots(info, days, log)
    snaps = [read_snapshot(info.path, p.index) for p in picks]
    out.mkdir(parents=True, exist_ok=True)

    written = [_save(_counts_figure(info, picks, log_counts), out / "counts.png")]
    if info.has_cells:
        written.append(_save(_stat3_figure(info, picks, snaps), out / "stat3.png"))
    else:
        _note(log, f"{info.path.name} was written with output.cells = false: no per-cell "
                   "STAT3, so stat3.png is skipped (counts.png and the time series "
                   "stat3_mean_<type> remain)")
    written.append(_save(_lattice_figure(info, picks, snaps), out / "lattice.png"))
    for fd in info.fields:
        fig = _field_figure(info, picks, snaps, fd)
        written.append(_save(fig, out / f"field_{_safe_name(fd.name)}.png"))
    return written


def _counts_figure(info: _RunInfo, picks: Sequence[_Pick], log_y: bool) -> Figure:
    ts = read_timeseries(info.path)
    t_days = ts["time"] / _MIN_PER_DAY
    fig = _new_figure(9.0, 5.0)
    ax = fig.subplots()
    for name, label, colour in zip(info.names, info.labels, info.colours, strict=True):
        series = ts.get(f"count_{name}")
        if series is None:
            continue
        ax.plot(t_days, series, color=colour, label=label, lw=1.6)
    for p in picks:
        ax.axvline(p.day, color="0.6", ls=":", lw=1)
    if log_y:
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("time (days)")
    ax.set_ylabel("cells" + (" (log scale)" if log_y else ""))
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=9)
    ax.set_title(f"cells per type over time - {info.title}\n"
                 "dotted lines: the snapshots drawn in the other figures", fontsize=10)
    return fig


def _violin(ax: Any, x: float, values: np.ndarray, colour: str, lo: float, hi: float) -> None:
    """A violin from a lightly smoothed histogram (robust to constant data)."""
    edges = np.linspace(lo, hi, 51)
    hist, _ = np.histogram(np.clip(values, lo, hi), bins=edges)
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    dens = np.convolve(hist.astype(float), kernel / kernel.sum(), mode="same")
    dens = 0.42 * dens / dens.max()
    y = 0.5 * (edges[:-1] + edges[1:])
    y = np.concatenate([[lo], y, [hi]])
    dens = np.concatenate([[dens[0]], dens, [dens[-1]]])
    ax.fill_betweenx(y, x - dens, x + dens, where=dens > 0, facecolor=colour,
                     edgecolor="0.25", lw=0.6, alpha=0.9)
    ax.plot([x], [np.median(values)], marker="o", ms=4, mfc="white", mec="black", zorder=3)


def _stat3_figure(info: _RunInfo, picks: Sequence[_Pick], snaps: Sequence[dict]) -> Figure:
    k = len(info.names)
    fig = _new_figure(max(6.0, 0.8 * k + 2.0), 2.6 * len(picks) + 1.0)
    axes = fig.subplots(len(picks), 1, squeeze=False, sharex=True)[:, 0]
    x = np.arange(k)
    for ax, pick, snap in zip(axes, picks, snaps, strict=True):
        cells = snap["cells"]
        types = np.asarray(cells["type"], dtype=np.int64)
        stat3 = np.asarray(cells["stat3"], dtype=np.float64)
        lo, hi = min(0.0, float(np.nanmin(stat3, initial=0.0))), max(
            1.0, float(np.nanmax(stat3, initial=1.0)))
        for t in range(k):
            values = stat3[(types == t) & np.isfinite(stat3)]
            if values.size:
                _violin(ax, float(t), values, info.colours[t], lo, hi)
                ax.text(t, hi + 0.04 * (hi - lo), f"n={values.size}", ha="center",
                        va="bottom", fontsize=7)
            else:
                ax.text(t, 0.5 * (lo + hi), "none", ha="center", va="center", fontsize=7,
                        color="0.5")
        ax.set_ylim(lo - 0.03 * (hi - lo), hi + 0.15 * (hi - lo))
        ax.set_ylabel("STAT3 activation")
        ax.set_title(pick.title().replace("\n", "; "), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, info.labels, rotation=35, ha="right", fontsize=8)
    axes[-1].set_xlim(-0.6, k - 0.4)
    fig.suptitle(f"STAT3 per cell by type (white dot: median) - {info.title}", fontsize=10)
    return fig


def _lattice_figure(info: _RunInfo, picks: Sequence[_Pick], snaps: Sequence[dict]) -> Figure:
    m = len(picks)
    fig = _new_figure(3.9 * m + 2.8, 4.6)
    axes = fig.subplots(1, m, squeeze=False)[0]
    counts = []
    for ax, pick, snap in zip(axes, picks, snaps, strict=True):
        types = info.plane(np.asarray(snap["cell_type"]))
        draw_cell_types(ax, types, info.colours, info.extent_mm)
        ax.set_title(pick.title(), fontsize=9)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        counts.append(np.bincount(types.ravel().astype(np.int64) + 1,
                                  minlength=len(info.names) + 1)[1:])
    per_type = [" / ".join(str(int(c[t])) for c in counts) for t in range(len(info.names))]
    handles = cell_type_handles(info.colours, [f"{lab} ({n})" for lab, n in
                                               zip(info.labels, per_type, strict=True)])
    fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8,
               title="cell type (sites per panel)", title_fontsize=8)
    where = f", {info.slice_note}" if info.slice_note else ""
    fig.suptitle(f"lattice by cell type (white: empty){where} - {info.title}", fontsize=10)
    return fig


def _field_figure(info: _RunInfo, picks: Sequence[_Pick], snaps: Sequence[dict],
                  fd: _FieldInfo) -> Figure:
    m = len(picks)
    planes = [info.plane(np.asarray(s["fields"][fd.name], dtype=np.float64)) for s in snaps]
    finite = [p[np.isfinite(p)] for p in planes]
    top = max((float(v.max()) for v in finite if v.size), default=0.0)
    vmin = min(0.0, min((float(v.min()) for v in finite if v.size), default=0.0))
    zero = top <= 0.0
    # One sparse peak (a single secreting cell) would leave everything else
    # black on a 0..max scale: clip at a high percentile, as the movie does.
    vmax = _robust_max(iter(planes), MOVIE_PERCENTILE) if not zero else 0.0
    clipped = vmax < top
    vmax = vmax if vmax > vmin else vmin + 1.0
    fig = _new_figure(3.9 * m + 1.2, 4.4)
    axes = fig.subplots(1, m, squeeze=False)[0]
    im = None
    for ax, pick, plane in zip(axes, picks, planes, strict=True):
        im = ax.imshow(plane, origin="lower", extent=info.extent_mm, cmap=FIELD_CMAP,
                       vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(pick.title(), fontsize=9)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    units = fd.units or "no units"
    # beside the last panel (a colour bar for all axes would sit far to the right)
    cax = axes[-1].inset_axes((1.05, 0.0, 0.05, 1.0))
    fig.colorbar(im, cax=cax, label=f"{fd.long_name} ({units})",
                 extend="max" if clipped else "neither")
    name = fd.long_name if fd.long_name == fd.name else f"{fd.long_name} [{fd.name}]"
    where = f", {info.slice_note}" if info.slice_note else ""
    empty = " - zero everywhere in these snapshots" if zero else ""
    clip = (f"; colours clipped at the {MOVIE_PERCENTILE:g}th percentile "
            f"({vmax:.3g}, max {top:.3g})" if clipped else "")
    fig.suptitle(f"{name} ({units}){where}{empty}{clip}\n{info.title}", fontsize=10)
    return fig


# ---------------------------------------------------------------- movies


def _robust_max(values: Iterator[np.ndarray], percentile: float) -> float:
    """A percentile of all values (each plane thinned to at most ~100k values)."""
    pooled = []
    for v in values:
        flat = v.ravel()
        step = max(1, flat.size // 100_000)
        sample = flat[::step]
        pooled.append(sample[np.isfinite(sample)])
    allv = np.concatenate(pooled) if pooled else np.zeros(0)
    if allv.size == 0:
        return 1e-9
    top = float(np.percentile(allv, percentile))
    if top <= 0.0:
        top = float(allv.max())
    return top if top > 0.0 else 1e-9


def write_movie(
    path: str | Path,
    out: str | Path,
    field: str | None = None,
    fps: float = 10,
    dpi: float = 100,
    *,
    progress: bool | None = None,
    overwrite: bool = True,
) -> Path:
    """Render the lattice over every snapshot, a field beside it, as MP4 or GIF.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.
    out
        The movie: ``.mp4`` (H.264 through the ffmpeg binary bundled with
        ``imageio-ffmpeg``) or ``.gif`` (Pillow, loops forever).
    field
        Field drawn beside the lattice; default the first saved field (the
        lattice alone if the run saved none).  Its colour scale is fixed for
        the whole movie: 0 to the :data:`MOVIE_PERCENTILE` th percentile of
        its values over all snapshots (brighter sites saturate).
    fps
        Frames (snapshots) per second.
    dpi
        Resolution; frames are 12.8 x 6.4 inches (1280 x 640 pixels at 100),
        7.2 x 6.4 without a field, padded to a multiple of 16 pixels for the
        MP4 encoder.
    progress
        tqdm bar over frames on stderr (None: only on a terminal).
    overwrite
        If False and ``out`` exists, raise :class:`FileExistsError`.

    Returns
    -------
    Path
        ``out``, one frame per complete snapshot, each labelled with its time
        in days.

    Raises
    ------
    tme_abm.io.RunFileError
        If ``path`` is not a readable run file.
    PlotError
        Unknown field, bad fps/dpi or file type, or no complete snapshot.
    FileExistsError
        If ``overwrite`` is False and ``out`` exists.
    """
    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".mp4", ".gif"):
        raise PlotError(f"{out}: the movie must end in .mp4 or .gif")
    if not (math.isfinite(fps) and fps > 0):
        raise PlotError(f"--fps: must be a positive number, not {fps:g}")
    if not (math.isfinite(dpi) and 10 <= dpi <= 600):
        raise PlotError(f"dpi must be between 10 and 600, not {dpi:g}")
    info = _run_info(path)
    names = [fd.name for fd in info.fields]
    if field is not None and field not in names:
        allowed = f"fields saved: {', '.join(names)}" if names else "the run saved no fields"
        raise PlotError(f"--field {field!r}: no such field in {info.path.name} ({allowed})")
    if field is None and names:
        field = names[0]
    if info.n == 0:
        raise PlotError(f"{info.path} holds no complete snapshot yet")
    _check_free([out], overwrite)
    if out.is_dir():
        raise PlotError(f"{out} is a directory; give a file name such as movie.mp4")
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        with _open_run(info.path) as f:
            _encode(f, info, field, out, tmp, kind, fps, dpi, progress)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _read_plane(ds: Any, index: int, info: _RunInfo) -> np.ndarray:
    z = info.z_slice
    return ds[index, z] if z is not None else ds[index]


def _encode(f: Any, info: _RunInfo, field: str | None, out: Path, tmp: Path, kind: str,
            fps: float, dpi: float, progress: bool | None) -> None:
    from tqdm import tqdm

    lattice = f["lattice/cell_type"]
    fds = f["fields"][field] if field else None
    fd = next((x for x in info.fields if x.name == field), None)
    vmax = 1.0
    if fds is not None:
        vmax = _robust_max((_read_plane(fds, i, info).astype(np.float64)
                            for i in range(info.n)), MOVIE_PERCENTILE)

    # fixed positions (in inches), so that nothing moves between frames
    with_field = fds is not None and fd is not None
    width_in = 12.8 if with_field else 7.2

    def x(inches: float) -> float:
        return inches / width_in

    fig = _new_figure(width_in, 6.4, dpi=dpi, layout=None)
    top, bottom, height = 0.86, 0.08, 0.78
    ax_l = fig.add_axes((x(0.64), bottom, x(4.6), height))
    first = _read_plane(lattice, 0, info)
    im_l = draw_cell_types(ax_l, first, info.colours, info.extent_mm)
    ax_l.set_title("cells by type (white: empty)", fontsize=11)
    fig.legend(handles=cell_type_handles(info.colours, info.labels), loc="upper left",
               bbox_to_anchor=(x(5.25), top), frameon=False, fontsize=9)
    axes = [ax_l]
    im_f = None
    if with_field:
        ax_f = fig.add_axes((x(7.17), bottom, x(4.6), height))
        cax = fig.add_axes((x(11.9), bottom + 0.1 * height, x(0.15), 0.8 * height))
        im_f = ax_f.imshow(_read_plane(fds, 0, info), origin="lower", extent=info.extent_mm,
                           cmap=FIELD_CMAP, vmin=0.0, vmax=vmax, interpolation="nearest")
        fig.colorbar(im_f, cax=cax, extend="max", label=fd.units or "no units")
        ax_f.set_title(f"{fd.long_name} (scale fixed over the movie)", fontsize=11)
        axes.append(ax_f)
    for ax in axes:
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    where = f"   {info.slice_note}" if info.slice_note else ""
    label = fig.text(x(0.64), 0.95, "", fontsize=15, weight="bold", va="center")
    fig.text(x(width_in - 0.64), 0.95, f"{info.scenario}{where}", fontsize=10, ha="right",
             va="center",
             color="0.3")

    canvas = fig.canvas
    width, height_px = (int(v) for v in canvas.get_width_height())
    pad_w, pad_h = (-width) % 16, (-height_px) % 16
    size = (width + pad_w, height_px + pad_h)

    def frames() -> Iterator[np.ndarray]:
        for i in range(info.n):
            if i:
                im_l.set_data(_read_plane(lattice, i, info).astype(np.int16) + 1)
                if im_f is not None:
                    im_f.set_data(_read_plane(fds, i, info))
            day = info.times_min[i] / _MIN_PER_DAY
            label.set_text(f"day {day:.2f}   (snapshot {i + 1}/{info.n})")
            canvas.draw()
            rgb = np.asarray(canvas.buffer_rgba())[..., :3]
            if pad_w or pad_h:
                rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=255)
            yield np.ascontiguousarray(rgb)

    bar = tqdm(frames(), total=info.n, unit="frame", desc=out.name, file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    if kind == ".mp4":
        import imageio_ffmpeg

        writer = imageio_ffmpeg.write_frames(str(tmp), size, fps=fps, quality=7,
                                             macro_block_size=16, ffmpeg_log_level="error")
        writer.send(None)
        try:
            for frame in bar:
                writer.send(frame)
        finally:
            writer.close()
    else:
        from PIL import Image

        images = [Image.fromarray(frame).quantize(colors=255, method=Image.Quantize.MEDIANCUT)
                  for frame in bar]
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000.0 / fps)), loop=0, optimize=False,
                       disposal=1)


# ---------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class _Param:
    key: str
    scale: str  # "linear" or "log"

    @property
    def short(self) -> str:
        return self.key.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class _SweepPlan:
    folder: Path
    table: Any  # pandas.DataFrame of every row
    done: Any  # rows with outputs
    outputs: list[str]
    params: list[_Param]
    kind: str  # grid, lhs, sobol, saltelli (or "unknown")
    skipped_note: str
    names: list[str]
    name: str  # the sweep's name (its folder's if sweep.toml is missing)
    empty: list[str]  # outputs with no finite value in any completed run
    fork_day: float | None = None  # the day every run branched from a parent run


def _fmt(v: Any) -> str:
    try:
        return f"{float(v):.3g}"
    except (TypeError, ValueError):
        return str(v)


def _sweep_plan(folder: str | Path, log: Callable[[str], None] | None) -> _SweepPlan:
    import pandas as pd

    from tme_abm.batch import sweep as sweep_module
    from tme_abm.io.dataset import open_sweep

    folder = Path(folder)
    try:
        table = open_sweep(folder)
    except FileNotFoundError as exc:
        raise PlotError(str(exc)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PlotError(f"{folder / 'summary.csv'} cannot be read: {exc}") from None
    missing = [c for c in ("scenario", "point", "status") if c not in table.columns]
    if missing:
        raise PlotError(f"{folder / 'summary.csv'} is not a tme-abm sweep summary "
                        f"(no column {missing[0]!r})")
    outputs = [o for o in sweep_module.OUTPUTS if o in table.columns]  # read at call time
    if not outputs:
        raise PlotError(f"{folder / 'summary.csv'} has none of the output columns "
                        f"{', '.join(sweep_module.OUTPUTS)}")
    status = table["status"].astype(str)
    done = table[status.isin(DONE_STATUSES)].copy()
    skipped = status[~status.isin(DONE_STATUSES)].value_counts()
    skipped_note = ""
    if len(skipped):
        parts = ", ".join(f"{int(c)} {s}" for s, c in skipped.items())
        skipped_note = f"{int(skipped.sum())} of {len(table)} runs skipped ({parts})"
        _note(log, f"{folder}: {skipped_note}")
    if done.empty:
        raise PlotError(f"{folder}: no completed run to plot ({skipped_note})")

    values = {o: done[o].to_numpy(dtype=float) for o in outputs}
    empty = [o for o in outputs if not np.isfinite(values[o]).any()]
    outputs = [o for o in outputs if o not in empty]
    if empty:
        _note(log, f"{folder}: no finite values of {', '.join(empty)}; left out")
    if not outputs:
        raise PlotError(f"{folder}: no output has a finite value in any completed run")
    kind, params, name, fork_day = "unknown", [], folder.name, None
    toml = folder / "sweep.toml"
    if toml.is_file():
        from tme_abm.batch.plan import load_sweep
        from tme_abm.scenario import ScenarioError

        try:
            sweep = load_sweep(toml)
            name = sweep.name
            kind = sweep.design.kind
            params = [_Param(p.key, p.scale) for p in sweep.parameters if p.key in table]
            fork_day = sweep.parent.day if sweep.parent is not None else None
        except ScenarioError as exc:
            _note(log, f"{toml} is not a valid sweep file ({exc}); guessing the "
                       "parameters from summary.csv")
    if kind == "unknown":  # the columns between seed and status are the parameters
        cols = list(table.columns)
        if "seed" in cols and "status" in cols:
            keys = cols[cols.index("seed") + 1: cols.index("status")]
            params = [_Param(k, "linear") for k in keys]
            few = all(table[k].nunique() <= 12 for k in keys)
            kind = "grid" if few else "lhs"
    params = [p for p in params if done[p.key].nunique(dropna=True) > 1]
    names = ["outputs_by_scenario.png"]
    have_files = any((folder / "runs" / f"{r}.h5").is_file() for r in done["run_id"])
    if have_files and len(done.groupby(["scenario", "point"])) <= MAX_TIMECOURSE_LINES:
        names.append("timecourses_by_scenario.png")
    names += [f"outputs_vs_{_safe_name(p.key)}.png" for p in params]
    return _SweepPlan(folder, table, done, outputs, params, kind, skipped_note, names, name,
                      empty, fork_day)


def _scenario_colours(scenarios: Sequence[str]) -> dict[str, str]:
    return {s: f"C{k % 10}" for k, s in enumerate(scenarios)}


def _grid_for(n: int) -> tuple[int, int]:
    ncols = 4 if n > 9 else min(3, n)
    return math.ceil(n / ncols), ncols


def _ci_label() -> str:
    return f"mean ± {round(_LEVEL * 100)}% CI (t) over replicates"


def plot_sweep(
    sweep_dir: str | Path,
    out_dir: str | Path,
    *,
    overwrite: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write PNG figures of a sweep folder's ``summary.csv``.

    Parameters
    ----------
    sweep_dir
        A folder written by ``tme-abm sweep`` (``summary.csv``, ``sweep.toml``).
    out_dir
        Folder for the PNGs (created if needed).
    overwrite
        If False and any of the files exists, raise :class:`FileExistsError`.
    log
        Called with each note (runs skipped because they failed or are still
        pending); default: print it on stderr.

    Returns
    -------
    list of Path
        ``outputs_by_scenario.png``: one panel per key output
        (:data:`tme_abm.batch.sweep.OUTPUTS`, as present in the table), mean
        ± 95% t confidence interval over replicates for each scenario at each
        parameter point, replicates as small dots.  Then
        ``outputs_vs_<parameter key>.png`` for each swept parameter: for a
        grid design, lines of mean ± CI against the parameter's value, one
        per scenario (pooled over any other parameter); for a sampled design
        (lhs, sobol, saltelli), every run as a dot coloured by scenario.  The
        x axis is logarithmic when the sweep file's parameter has
        ``scale = "log"``, or for a grid whose positive values span a factor
        of 10 or more.  Failed and pending runs are left out and counted in
        the titles.  ``timecourses_by_scenario.png`` (after the first, when
        the sweep has at most 12 scenario x point combinations and its run
        files are there): tumour, CD8 and Treg counts and mean tumour STAT3
        against time, mean ± 95% CI over replicates, with the day the runs
        branched from a ``[parent]`` run dashed.

    Raises
    ------
    PlotError
        Not a sweep folder, or no completed run.
    FileExistsError
        If ``overwrite`` is False and an output exists.
    """
    plan = _sweep_plan(sweep_dir, log)
    out = Path(out_dir)
    targets = [out / name for name in plan.names]
    _check_free(targets, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    written = [_save(_compare_figure(plan), targets[0])]
    rest = targets[1:]
    if "timecourses_by_scenario.png" in plan.names:
        written.append(_save(_timecourse_figure(plan), rest[0]))
        rest = rest[1:]
    for param, target in zip(plan.params, rest, strict=True):
        written.append(_save(_param_figure(plan, param), target))
    return written


#: Series drawn over time for each arm of a sweep (when present in its runs).
TIMECOURSE_SERIES = (
    ("count_tumour", "tumour cells"),
    ("count_cd8", "CD8 T cells"),
    ("count_treg", "Tregs"),
    ("stat3_mean_tumour", "mean tumour STAT3"),
)
#: Most scenario x point lines in a sweep's time-course figure (beyond it, none is drawn).
MAX_TIMECOURSE_LINES = 12


def _fork_day(files: Sequence[Path]) -> float | None:
    """The day the first readable run file says it branched from its parent."""
    import json

    import h5py

    for file in files:
        try:
            with h5py.File(file, "r") as f:
                return float(json.loads(f.attrs["parent_run"])["day"])
        except Exception:  # not a fork, or unreadable: try the next
            continue
    return None


def _timecourse_figure(plan: _SweepPlan) -> Figure:
    """Mean ± CI over replicates of a few series against time, one line per
    scenario (and parameter point), with the day the runs branched marked."""
    from scipy import stats

    done = plan.done
    scenarios = list(dict.fromkeys(done["scenario"].astype(str)))
    colours = _scenario_colours(scenarios)
    several_points = done["point"].nunique() > 1
    styles = ["-", "--", ":", "-."]
    lines = []  # (label, colour, style, [series of each replicate])
    files = []
    for (scenario, point), rows in done.groupby(["scenario", "point"], sort=False):
        series = []
        for run_id in rows["run_id"]:
            path = plan.folder / "runs" / f"{run_id}.h5"
            try:  # the sweep folder's own copy, wherever it has moved since
                series.append(read_timeseries(path))
                files.append(path)
            except Exception:  # removed since: the summary's outputs still count
                continue
        if series:
            label = f"{scenario} p{int(point)}" if several_points else str(scenario)
            style = styles[int(point) % len(styles)] if several_points else "-"
            lines.append((label, colours[str(scenario)], style, series))
    keys = [(k, t) for k, t in TIMECOURSE_SERIES
            if lines and all(k in s for _, _, _, ss in lines for s in ss)]
    fork_day = _fork_day(files[:3]) if plan.fork_day is not None else None
    nrows, ncols = (2, 2) if len(keys) == 4 else _grid_for(max(1, len(keys)))
    fig = _new_figure(5.5 * ncols, 3.6 * nrows + 1.0)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (key, title) in zip(axes, keys, strict=False):
        for label, colour, style, series in lines:
            n_ticks = min(len(s["time"]) for s in series)
            days = series[0]["time"][:n_ticks] / _MIN_PER_DAY
            table = np.array([s[key][:n_ticks] for s in series], dtype=float)
            n = table.shape[0]
            mean = np.nanmean(table, axis=0)
            ax.plot(days, mean, style, color=colour, lw=1.3, label=label)
            if n > 1:
                with warnings.catch_warnings():  # ticks where a type is gone in all but one
                    warnings.simplefilter("ignore", RuntimeWarning)
                    sd = np.nanstd(table, axis=0, ddof=1)
                half = stats.t.ppf(0.5 + _LEVEL / 2, n - 1) * sd / math.sqrt(n)
                ax.fill_between(days, mean - half, mean + half, color=colour, alpha=0.18, lw=0)
        if fork_day is not None:
            ax.axvline(fork_day, color="0.4", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("day")
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    if keys:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5),
                   frameon=False, fontsize=9)
    what = f"time courses, {_ci_label()}"
    if fork_day is not None:
        what += f"; every run branched from one parent run at day {fork_day:g} (dashed)"
    fig.suptitle(_sweep_title(plan, what), fontsize=10)
    return fig


def _sweep_title(plan: _SweepPlan, what: str) -> str:
    n = len(plan.done)
    line = f"{what}\nsweep {plan.name} ({plan.folder}): {n} runs"
    if plan.skipped_note:
        line += f"; {plan.skipped_note}"
    if plan.empty:
        line += f"; no values of {', '.join(plan.empty)}"
    return line


def _compare_figure(plan: _SweepPlan) -> Figure:
    done = plan.done
    scenarios = list(dict.fromkeys(done["scenario"].astype(str)))
    colours = _scenario_colours(scenarios)
    points = sorted(done["point"].unique())
    nrows, ncols = _grid_for(len(plan.outputs))
    one_point = len(points) == 1
    n_cat = len(scenarios) if one_point else len(points)
    width = max(5.0, min(3.5 + 0.45 * n_cat * (1 if one_point else len(scenarios)), 9.0))
    fig = _new_figure(width * ncols, 3.8 * nrows + 1.0)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    keys = [p.key for p in plan.params]
    rng = np.random.default_rng(0)  # jitter of the replicate dots only
    for ax, output in zip(axes, plan.outputs, strict=False):
        drawn = False
        for s_index, scenario in enumerate(scenarios):
            rows = done[done["scenario"].astype(str) == scenario]
            for p_index, point in enumerate(points):
                values = rows.loc[rows["point"] == point, output].to_numpy(dtype=float)
                mean, half, n = mean_ci(values)
                if n == 0:
                    continue
                if one_point:
                    x = float(s_index)
                else:
                    dodge = 0.8 / len(scenarios)
                    x = p_index - 0.4 + dodge * (s_index + 0.5)
                finite = values[np.isfinite(values)]
                ax.scatter(x + rng.uniform(-0.06, 0.06, finite.size), finite, s=14,
                           color=colours[scenario], alpha=0.5, lw=0, zorder=2)
                ax.errorbar([x], [mean], yerr=None if math.isnan(half) else [[half], [half]],
                            fmt="o", ms=6, color=colours[scenario], capsize=4, lw=1.6,
                            zorder=3)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center",
                    color="0.5")
        ax.set_title(output, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(-0.6, n_cat - 0.4)
        if one_point:
            ax.set_xticks(range(len(scenarios)), scenarios, rotation=20, ha="right",
                          fontsize=8)
        else:
            ax.set_xticks(range(len(points)), _point_labels(done, points, keys),
                          fontsize=7, rotation=0 if len(points) <= 6 else 60,
                          ha="center" if len(points) <= 6 else "right")
    for ax in axes[len(plan.outputs):]:
        ax.set_visible(False)
    if not one_point or len(scenarios) > 1:
        handles = [Line2D([], [], marker="o", ls="", color=colours[s]) for s in scenarios]
        fig.legend(handles=handles, labels=scenarios, loc="outside lower center",
                   ncol=min(len(scenarios), 5), frameon=False, title="scenario",
                   fontsize=9)
    fig.suptitle(_sweep_title(plan, _ci_label()), fontsize=10)
    return fig


def _point_labels(done: Any, points: Sequence[Any], keys: Sequence[str]) -> list[str]:
    if not keys or len(points) > 24:
        return [f"p{int(p)}" for p in points]
    labels = []
    for p in points:
        row = done[done["point"] == p].iloc[0]
        labels.append("\n".join(f"{k.rsplit('.', 1)[-1]}={_fmt(row[k])}" for k in keys))
    return labels


def _log_axis(ax: Any, values: np.ndarray) -> None:
    """Log x axis with plain labels (1-2-5 ticks over a short range, no minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    v = values[np.isfinite(values) & (values > 0)]
    decades = math.log10(v.max() / v.min()) if v.size else 0.0
    if v.size:  # limits from the design, also for a panel with nothing to draw
        pad = 10 ** max(0.05 * decades, 0.05)
        ax.set_xlim(v.min() / pad, v.max() * pad)
    subs = (1.0, 2.0, 5.0) if decades < 2.5 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=subs, numticks=8))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _param_figure(plan: _SweepPlan, param: _Param) -> Figure:
    done = plan.done
    scenarios = list(dict.fromkeys(done["scenario"].astype(str)))
    colours = _scenario_colours(scenarios)
    nrows, ncols = _grid_for(len(plan.outputs))
    fig = _new_figure(4.6 * ncols, 3.6 * nrows + 1.0)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    x_all = done[param.key].to_numpy(dtype=float)
    positive = np.isfinite(x_all).any() and np.nanmin(x_all) > 0
    log_x = param.scale == "log" or (
        plan.kind == "grid" and positive and np.nanmax(x_all) / np.nanmin(x_all) >= 10
    )
    grid = plan.kind == "grid"
    for ax, output in zip(axes, plan.outputs, strict=False):
        if not np.isfinite(done[output].to_numpy(dtype=float)).any():
            ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center",
                    color="0.5")
        for scenario in scenarios:
            rows = done[done["scenario"].astype(str) == scenario]
            x = rows[param.key].to_numpy(dtype=float)
            y = rows[output].to_numpy(dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            colour = colours[scenario]
            if not grid:
                ax.scatter(x[ok], y[ok], s=16, color=colour, alpha=0.75, lw=0,
                           label=scenario)
                continue
            ax.scatter(x[ok], y[ok], s=9, color=colour, alpha=0.3, lw=0)
            xs = np.unique(x[np.isfinite(x)])
            stats = [mean_ci(y[x == v]) for v in xs]
            mean = np.array([s[0] for s in stats])
            half = np.array([s[1] for s in stats])
            ax.plot(xs, mean, "o-", color=colour, lw=1.6, ms=5, label=scenario)
            band = np.isfinite(half)
            if band.any():
                ax.fill_between(xs[band], (mean - half)[band], (mean + half)[band],
                                color=colour, alpha=0.18, lw=0)
                ax.errorbar(xs[band], mean[band], yerr=half[band], fmt="none",
                            ecolor=colour, capsize=3, lw=1)
        if log_x:
            _log_axis(ax, x_all)
        ax.set_title(output, fontsize=10)
        ax.set_xlabel(param.short + (" (log scale)" if log_x else ""), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(plan.outputs):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5),
                   frameon=False, title="scenario", fontsize=9, markerscale=1.5)
    others = [p.short for p in plan.params if p.key != param.key]
    if grid:
        what = f"{_ci_label()} against {param.key}"
        if others:
            what += f" (pooled over {', '.join(others)})"
    else:
        what = f"every run against {param.key} ({plan.kind} design)"
    fig.suptitle(_sweep_title(plan, what), fontsize=10)
    return fig
