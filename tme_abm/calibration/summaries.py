"""Summary statistics: the numbers a run file gives for each observed data point.

:func:`evaluate` maps one run file onto the calibration's data points (each a
quantity at a time) through the ``[summaries]`` of the calibration file
(:class:`~tme_abm.calibration.spec.SummarySpec`).  Per-tick series (counts,
ratios, mean STAT3, field means) are read at the tick nearest the data time;
lattice-based quantities (immune shares in the tumour sample, tumour area,
the spatial metrics of :mod:`tme_abm.analysis`) at the snapshot taken then.
:func:`summary_problems` checks a summary against the scenario before any run.

Only numpy, h5py (through :mod:`tme_abm.io`) and :mod:`tme_abm.analysis` are
used; numba and pyabc are not imported.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tme_abm.analysis.composition import immune_composition
from tme_abm.analysis.spatial import (
    SNAPSHOT_METRICS,
    _run_layout,
    codes_for_role,
    snapshot_metrics,
    tumour_region,
)
from tme_abm.calibration.spec import DataPoint, SummarySpec
from tme_abm.scenario import LoadedScenario

__all__ = ["evaluate", "spatial_units", "summary_problems"]


def spatial_units(metric: str, ndim: int) -> str:
    """Units of one of :data:`tme_abm.analysis.SNAPSHOT_METRICS`."""
    if metric.endswith("_density"):
        return "cells/mm3" if ndim == 3 else "cells/mm2"
    if metric == "infiltrating_cd8":
        return "cells"
    if metric == "cd8_core_margin_ratio":
        return "1"
    return "fraction"


def load_function(target: str) -> Callable[..., Any]:
    """The callable named ``"package.module:function"``.

    Raises
    ------
    ValueError
        Saying what could not be imported or found.
    """
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's module
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{module_name!r} has no function {attr!r}")
    return fn


def summary_problems(summary: SummarySpec, loaded: LoadedScenario) -> list[tuple[str, str]]:
    """Problems (key, message) of a summary that this scenario cannot compute."""
    sc = loaded.scenario
    types = list(sc.cell_types)
    problems = []
    for key in ("types", "of"):
        for name in getattr(summary, key) or []:
            if name not in types:
                problems.append((key, f"{name!r} is not a cell type; types: {', '.join(types)}"))
    if summary.kind == "field_mean" and summary.field not in sc.fields:
        problems.append(
            ("field", f"{summary.field!r} is not a field; fields: {', '.join(sc.fields)}")
        )
    if summary.kind == "spatial":
        if summary.metric not in SNAPSHOT_METRICS:
            problems.append(
                ("metric", f"{summary.metric!r}; allowed: {', '.join(SNAPSHOT_METRICS)}")
            )
        elif summary.metric.startswith("stat3_high") and not sc.output.cells:
            problems.append(
                (
                    "metric",
                    f"{summary.metric} needs the cells table: set "
                    "output.cells = true in [model.overrides]",
                )
            )
    if summary.kind == "immune_share":
        codes = {n: k for k, n in enumerate(types)}
        tumour = {n for n in types if codes[n] in codes_for_role(codes, "tumour")}
        for name in summary.types or []:
            if name in tumour:
                problems.append(
                    ("types", f"{name!r} is a tumour type; an immune share counts immune cells")
                )
    if summary.kind == "python":
        try:
            load_function(summary.function or "")
        except ValueError as exc:
            problems.append(("function", str(exc)))
    return problems


def _series_at(
    series: Mapping[str, np.ndarray],
    names: Iterable[str],
    time_min: float,
    weights: Iterable[str] | None = None,
) -> float:
    t = series["time"]
    i = int(np.argmin(np.abs(t - time_min)))
    names = list(names)
    if weights is None:
        return float(sum(series[n][i] for n in names))
    w = np.array([series[n][i] for n in weights], dtype=float)
    v = np.array([series[n][i] for n in names], dtype=float)
    return float((w * v).sum() / w.sum()) if w.sum() > 0 else math.nan


class _RunReader:
    """Reads a run file's series once and its snapshots on demand."""

    def __init__(self, path: Path) -> None:
        import h5py

        from tme_abm.io import read_timeseries

        self.path = path
        self.series = read_timeseries(path)
        with h5py.File(path, "r", locking=False) as f:
            self.snapshot_times = np.asarray(f["time"][:], dtype=float)
            self.dt_min = float(f.attrs["dt_min"])
        self.n_snapshots, self.site_um, self.codes = _run_layout(path)
        self._snapshots: dict[int, dict[str, Any]] = {}

    def snapshot(self, time_min: float) -> dict[str, Any]:
        from tme_abm.io import read_snapshot

        times = self.snapshot_times[: self.n_snapshots]
        i = int(np.argmin(np.abs(times - time_min))) if times.size else -1
        if i < 0 or abs(times[i] - time_min) > self.dt_min / 2:
            raise ValueError(f"{self.path} has no snapshot at {time_min / 1440:g} d")
        if i not in self._snapshots:
            self._snapshots[i] = read_snapshot(self.path, i)
        return self._snapshots[i]


def _value(summary: SummarySpec, run: _RunReader, time_day: float) -> float:
    t_min = time_day * 1440.0
    kind = summary.kind
    s = run.series
    if kind == "count":
        return _series_at(s, (f"count_{n}" for n in summary.types), t_min)
    if kind == "growth_rate":
        t = s["time"]
        inside = (t >= summary.from_day * 1440.0 - run.dt_min / 2) & (t <= t_min + run.dt_min / 2)
        n = sum(s[f"count_{name}"][inside] for name in summary.types)
        if inside.sum() < 2 or np.any(n <= 0):
            return math.nan
        return float(np.polyfit(t[inside] / 1440.0, np.log(n), 1)[0])
    if kind == "events":
        t = s["time"]
        upto = t <= t_min + run.dt_min / 2
        return float(sum(s[f"{summary.event}_{n}"][upto].sum() for n in summary.types))
    if kind == "ratio":
        den = _series_at(s, (f"count_{n}" for n in summary.of), t_min)
        num = _series_at(s, (f"count_{n}" for n in summary.types), t_min)
        return num / den if den > 0 else math.nan
    if kind == "stat3_mean":
        return _series_at(
            s,
            [f"stat3_mean_{n}" for n in summary.types],
            t_min,
            [f"count_{n}" for n in summary.types],
        )
    if kind == "field_mean":
        return _series_at(s, [f"field_mean_{summary.field}"], t_min)
    if kind == "python":
        return float(load_function(summary.function)(str(run.path), float(time_day)))
    snap = run.snapshot(t_min)
    lattice = snap["cell_type"]
    if kind in ("immune_share", "immune_fraction"):
        comp = immune_composition(lattice, run.codes, run.site_um, summary.margin_um)
        if kind == "immune_fraction":
            return float(comp["immune_fraction"])
        n = sum(comp["counts"].get(name, 0) for name in summary.types)
        return n / comp["n_immune"] if comp["n_immune"] else math.nan
    if kind == "tumour_area":
        region = tumour_region(lattice, codes_for_role(run.codes, "tumour"))
        site_mm = run.site_um / 1000.0
        return float(np.count_nonzero(region)) * site_mm**lattice.ndim
    return float(snapshot_metrics(snap, run.codes, run.site_um, summary.margin_um)[summary.metric])


def evaluate(
    path: str | Path, summaries: Mapping[str, SummarySpec], points: Iterable[DataPoint]
) -> dict[str, float]:
    """The value of every data point's summary statistic in one run file.

    Parameters
    ----------
    path
        A complete run file.
    summaries
        Quantity name -> how it is computed.
    points
        The observed data points; each gives one entry.

    Returns
    -------
    dict of str to float
        :attr:`DataPoint.key` (``quantity@<time>d``) -> value, in the units of
        the summary (NaN where it is undefined, e.g. a ratio with no cells in
        the denominator).
    """
    run = _RunReader(Path(path))
    out: dict[str, float] = {}
    for pt in points:
        summary = summaries[pt.quantity]
        value = _value(summary, run, pt.time_day)
        if summary.relative_to_day is not None:
            ref = _value(summary, run, summary.relative_to_day)
            value = value / ref if ref else math.nan
        out[pt.key] = float(value)
    return out
