"""The page's time series: thinned as they grow, sent as plain numbers.

A live model adds a row every tick.  :class:`SeriesBuffer` keeps every
``stride``-th tick and doubles the stride when it holds twice
:data:`MAX_POINTS` rows (dropping every other row), so each update costs the
same at tick 10 as at tick 100 000: the page never re-reads or re-thins the
whole history.  The newest row is always drawn.  :func:`run_series` reads a
run file's series once, at a stride that gives at most :data:`MAX_POINTS`
rows.  :func:`chart_payload` turns either into the three panels the page's
chart component draws (counts, mean STAT3 per type, field means).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tme_abm.io.reader import _open_run
from tme_abm.viz.frames import Catalogue

if TYPE_CHECKING:
    from tme_abm.model import TMEModel

#: Most rows a line holds on the page (between MAX_POINTS and 2 * MAX_POINTS).
MAX_POINTS = 300
#: Colours of the field-mean lines (matplotlib's tab10, in order).
FIELD_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def series_names(cat: Catalogue) -> list[str]:
    """The model series the page draws, as named in the run file."""
    return ([f"count_{t}" for t in cat.type_names] + [f"stat3_mean_{t}" for t in cat.type_names]
            + [f"field_mean_{f}" for f in cat.field_names])


class SeriesBuffer:
    """Rows of named series at ticks, thinned by stride doubling.

    Parameters
    ----------
    names
        The series.
    cap
        Rows kept before the stride doubles (the buffer holds ``cap`` to
        ``2 * cap`` rows).
    """

    def __init__(self, names: Sequence[str], cap: int = MAX_POINTS) -> None:
        self.names = list(names)
        self.cap = int(cap)
        self.stride = 1
        self.ticks: list[int] = []
        self.rows: list[list[float]] = []
        self.newest: tuple[int, list[float]] | None = None

    def add(self, tick: int, row: Sequence[float]) -> None:
        """Add the row of ``tick`` (ticks must increase)."""
        values = [float(v) for v in row]
        self.newest = (int(tick), values)
        if tick % self.stride:
            return
        self.ticks.append(int(tick))
        self.rows.append(values)
        if len(self.ticks) >= 2 * self.cap:
            self.stride *= 2
            keep = [k for k, t in enumerate(self.ticks) if t % self.stride == 0]
            self.ticks = [self.ticks[k] for k in keep]
            self.rows = [self.rows[k] for k in keep]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Ticks (n) and values (n, series), the newest row included."""
        ticks, rows = list(self.ticks), list(self.rows)
        if self.newest is not None and (not ticks or ticks[-1] != self.newest[0]):
            ticks.append(self.newest[0])
            rows.append(self.newest[1])
        values = np.array(rows, dtype=float).reshape(len(rows), len(self.names))
        return np.array(ticks, dtype=np.int64), values


class LiveSeries:
    """A :class:`SeriesBuffer` fed from a model's collector, reading only new rows."""

    def __init__(self, model: TMEModel, cat: Catalogue) -> None:
        self.model = model
        self.buffer = SeriesBuffer(series_names(cat))
        self.seen = 0

    def update(self) -> SeriesBuffer:
        """Take the rows collected since the last call.

        The stepping thread may be appending while this reads, so only the
        rows that every series already holds are taken.  A bounded collector
        (``series_rows``) holds only its newest rows: older ones it dropped
        are skipped.
        """
        dc = self.model.datacollector
        columns = [dc.model_vars.get(n) for n in self.buffer.names]
        if not columns or any(c is None for c in columns):
            return self.buffer
        lengths = [len(c) for c in columns]
        held = min(lengths)
        # rows collected in all: a bounded deque's length lags its count
        bounded = getattr(columns[0], "maxlen", None) is not None
        dropped = max(0, int(getattr(dc, "n_collected", held)) - max(lengths)) if bounded else 0
        available = dropped + held
        new = available - self.seen
        if new <= 0:
            return self.buffer
        start = max(self.seen, dropped) - dropped
        chunks = [list(itertools.islice(c, start, held)) for c in columns]
        first = int(getattr(dc, "first_tick", 0))
        for k in range(held - start):
            self.buffer.add(first + dropped + start + k, [ch[k] for ch in chunks])
        self.seen = available
        return self.buffer


def run_series(path: str | Path, cat: Catalogue) -> SeriesBuffer:
    """A run file's series at a stride giving at most :data:`MAX_POINTS` rows."""
    names = series_names(cat)
    buffer = SeriesBuffer(names)
    with _open_run(path) as f:
        grp = f["timeseries"]
        present = [n for n in names if n in grp]
        n = min([grp["tick_time"].shape[0], *(grp[k].shape[0] for k in present)])
        if n == 0:
            return buffer
        stride = max(1, math.ceil(n / MAX_POINTS))
        index = np.unique(np.r_[np.arange(0, n, stride), n - 1])
        ticks = np.rint(grp["tick_time"][:n][index] / cat.dt_min).astype(np.int64)
        values = np.full((len(index), len(names)), np.nan)
        for j, name in enumerate(names):
            if name in grp:
                values[:, j] = grp[name][:n][index]
    buffer.stride = stride
    buffer.ticks = [int(t) for t in ticks]
    buffer.rows = values.tolist()
    return buffer


def _clean(values: np.ndarray) -> list[float | None]:
    """Numbers for JSON: 4 significant digits, NaN as null."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    nonzero = finite & (v != 0)
    magnitude = np.floor(np.log10(np.abs(np.where(nonzero, v, 1.0))))
    scale = 10.0 ** (3 - magnitude)
    out = (np.round(v * scale) / scale).tolist()
    for i in np.flatnonzero(~finite):
        out[i] = None
    return out


def chart_payload(buffer: SeriesBuffer, cat: Catalogue) -> list[dict[str, Any]]:
    """The three panels for the page's chart component."""
    ticks, values = buffer.arrays()
    days = _clean(ticks * cat.dt_min / 1440.0)
    column = {name: j for j, name in enumerate(buffer.names)}
    nt = len(cat.type_names)

    def line(name: str, label: str, colour: str) -> dict[str, Any]:
        return {"label": label, "colour": colour, "y": _clean(values[:, column[name]])}

    counts = [line(f"count_{t}", lab, c) for t, lab, c in
              zip(cat.type_names, cat.type_labels, cat.type_colours, strict=True)]
    stat3 = [line(f"stat3_mean_{t}", lab, c) for t, lab, c in
             zip(cat.type_names, cat.type_labels, cat.type_colours, strict=True)]
    fields = [line(f"field_mean_{f}", lab, FIELD_COLOURS[k % len(FIELD_COLOURS)])
              for k, (f, lab) in enumerate(zip(cat.field_names, cat.field_labels, strict=True))]
    units = sorted(set(cat.field_units)) or ["ng/mL"]
    return [
        {"title": "cells per type", "log": bool(nt), "x": days, "lines": counts, "ylabel": "cells"},
        {"title": "mean STAT3 per type", "log": False, "x": days, "lines": stat3,
         "ymin": 0.0, "ymax": 1.0, "ylabel": "STAT3 activation"},
        {"title": f"field means ({', '.join(units)})", "log": True, "x": days,
         "lines": fields, "ylabel": ", ".join(units)},
    ]
