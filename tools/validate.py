"""Statistical validation suite: does the model reproduce published effects?

Usage::

    python tools/validate.py [--seeds 8] [--workers 2] [--shape 200 200] [--days 7]
                             [--out docs/validation] [--runs-dir output/validation]
                             [--force] [--arm NAME=FILE[,KEY=VALUE...]] ... [--standin-arms]
                             [--set KEY=VALUE] ...

It runs replicate simulations of several *arms* (an arm is a scenario file plus
optional ``--set`` overrides) with seeds 1..N, computes per-run metrics from the
run files, and for a fixed list of *comparisons* (arm A vs arm B on one metric,
with the direction the literature reports) estimates the effect with 95%
confidence intervals and gives a verdict. It writes ``report.md``,
``results.json`` and PNG figures to ``--out``.

Each run writes ``<runs-dir>/<arm>/seed<k>.h5``. A complete file of the same
seed, overrides, resolved scenario (after ``extends``) and ``tme_abm`` source
(a digest the suite stores in the file) is reused, so the report can be remade
without simulating, unless ``--force``; a stale or interrupted one is re-run.

Every arm gets these suite overrides on top of its own (before them, so an
arm's own ``KEY=VALUE`` wins): ``domain.shape=[ny,nx]``,
``domain.duration_days=D``, and output trimming that does not change the
dynamics (``output.fields=[]``, ``output.cells=false``,
``output.snapshot_every_min``; the lattice is still saved at every snapshot).
``--set KEY=VALUE`` (repeatable) adds overrides to every arm after the suite's
and before the arm's own, e.g. ``--set domain.field_solver=lod`` to rerun the
whole suite with another field solver; a ``--set`` key may not repeat a suite
key (use ``--shape``/``--days``/``--snapshot-every-min``) or an arm's own key.
The report header lists them. They are part of each run's overrides, so a run
file made with other ``--set`` values (or none) is not reused.

Metrics (per run; see the functions below): final tumour cell count; tumour
count over time; mature-DC fraction over the last day of ticks; CD8 cells
touching a tumour cell (Moore neighbourhood) over the last day of snapshots,
and the same per 100 tumour cells; and the immune composition of the tumour
sample (tumour region plus a 100 µm band, as a dissected tumour is counted by
flow cytometry; :mod:`tme_abm.analysis.composition`) on the last snapshot:
immune fraction, MDSC, Treg, macrophage and T-cell shares of the immune
cells, CD8, MDSC and Treg counts, and CD8 per Treg.

Statistics (pure functions, tested in ``tests/test_validation_stats.py``): Welch
t interval and p-value for the difference of means, percentile-bootstrap
interval for the ratio of means, Cohen's d, and a verdict: "reproduced" when
the difference's 95% CI excludes 0 on the expected side. The baseline's
composition is set against plausibility ranges (:data:`COMPOSITION_TARGETS`):
"in range" when the mean over seeds lies in the range.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as _dt
import json
import math
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from tme_abm.analysis import infiltrating_cd8, neighbour_any  # noqa: F401 (used by tests)
from tme_abm.analysis.composition import immune_composition
from tme_abm.analysis.replicates import finite_values as _clean
from tme_abm.analysis.replicates import mean_ci as replicate_mean_ci
from tme_abm.analysis.replicates import welch_ci, welch_p  # noqa: F401 (re-exported for tests)
from tme_abm.scenario.library import examples_dir

REPO = Path(__file__).resolve().parents[1]
#: The shipped scenario files (tme_abm/examples/ in a clone).
SCENARIOS = examples_dir()
MIN_PER_DAY = 1440.0
LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20_050_101  # fixed: the report is reproducible to the last digit

# --------------------------------------------------------------------- statistics


def mean_ci(x: Iterable[float], level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval of the mean of one sample.

    Returns ``(mean, lo, hi)``; the interval is NaN with fewer than 2 values and
    collapses to the mean when all values are equal (see
    :func:`tme_abm.analysis.replicates.mean_ci`).
    """
    m, half, _ = replicate_mean_ci(_clean(x), level)
    return m, m - half, m + half


def mean_ci_columns(x: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, ...]:
    """Column-wise :func:`mean_ci` of a (replicates, points) array (no NaN allowed).

    Returns ``(mean, lo, hi)`` arrays of length ``points``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    m = x.mean(axis=0)
    if n < 2:
        nan = np.full_like(m, np.nan)
        return m, nan, nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(axis=0, ddof=1) / math.sqrt(n)
    return m, m - half, m + half


def bootstrap_ratio_ci(
    a: Iterable[float],
    b: Iterable[float],
    level: float = LEVEL,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, float]:
    """Percentile-bootstrap interval for ``mean(a) / mean(b)``.

    Each of the ``n_resamples`` resamples draws ``len(a)`` values from ``a`` and
    ``len(b)`` from ``b`` with replacement (independently: the arms are
    unpaired) and takes the ratio of the resampled means; the interval is the
    ``(1-level)/2`` and ``(1+level)/2`` quantiles of those ratios. The rng is
    ``numpy.random.default_rng(seed)``, so the result is reproducible.

    Returns ``ratio``, ``lo``, ``hi`` (NaN if a sample is empty or ``mean(b)``
    is 0; resamples whose ``b`` mean is 0 give inf and are kept, so an
    unbounded interval shows as inf).
    """
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0 or b.mean() == 0:
        return dict(ratio=math.nan, lo=math.nan, hi=math.nan)
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, a.size, size=(n_resamples, a.size))].mean(axis=1)
    mb = b[rng.integers(0, b.size, size=(n_resamples, b.size))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ma / mb
    r = r[~np.isnan(r)]
    lo, hi = np.quantile(r, [0.5 - level / 2, 0.5 + level / 2])
    return dict(ratio=float(a.mean() / b.mean()), lo=float(lo), hi=float(hi))


def cohens_d(a: Iterable[float], b: Iterable[float]) -> float:
    """Cohen's d: ``(mean(a) - mean(b)) / s_pooled``.

    ``s_pooled = sqrt(((na-1) va + (nb-1) vb) / (na + nb - 2))`` with sample
    variances. NaN with fewer than 2 values per sample; ±inf (or 0) when the
    pooled sd is 0.
    """
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    diff = float(a.mean() - b.mean())
    pooled = math.sqrt(
        ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    )
    if pooled == 0.0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def verdict(lo: float, hi: float, expected: str) -> str:
    """Verdict from the CI ``[lo, hi]`` of ``mean(A) - mean(B)``.

    ``expected`` is ``"lower"`` (A below B) or ``"higher"``. Returns
    ``"reproduced"`` when the interval lies wholly on the expected side of 0,
    else ``"not reproduced (...)"`` saying which way: the CI includes 0 (no
    detectable difference), it lies on the opposite side (the opposite effect),
    or it could not be computed.
    """
    if expected not in ("lower", "higher"):
        raise ValueError(f"expected must be 'lower' or 'higher', not {expected!r}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not reproduced (CI could not be computed)"
    opposite = "higher" if expected == "lower" else "lower"
    if (expected == "lower" and hi < 0) or (expected == "higher" and lo > 0):
        return "reproduced"
    if (expected == "lower" and lo > 0) or (expected == "higher" and hi < 0):
        return f"not reproduced (opposite: significantly {opposite})"
    return "not reproduced (CI includes 0: no detectable difference)"


def compare(a: Iterable[float], b: Iterable[float], expected: str) -> dict[str, Any]:
    """All statistics of one comparison of sample ``a`` (arm A) with ``b`` (arm B)."""
    a, b = _clean(a), _clean(b)
    w = welch_ci(a, b)
    r = bootstrap_ratio_ci(a, b)
    return {
        "n_a": int(a.size),
        "n_b": int(b.size),
        "mean_a": float(a.mean()) if a.size else math.nan,
        "mean_b": float(b.mean()) if b.size else math.nan,
        "sd_a": float(a.std(ddof=1)) if a.size > 1 else math.nan,
        "sd_b": float(b.std(ddof=1)) if b.size > 1 else math.nan,
        "diff": w["diff"],
        "diff_lo": w["lo"],
        "diff_hi": w["hi"],
        "welch_df": w["df"],
        "ratio": r["ratio"],
        "ratio_lo": r["lo"],
        "ratio_hi": r["hi"],
        "cohens_d": cohens_d(a, b),
        "p_welch": welch_p(a, b),
        "verdict": verdict(w["lo"], w["hi"], expected),
    }


# ------------------------------------------------------------------------ metrics


def mature_dc_fraction(count_dc: np.ndarray, count_dc_mature: np.ndarray) -> np.ndarray:
    """Per-tick ``count_dc_mature / (count_dc + count_dc_mature)`` (NaN where no DC)."""
    dc = np.asarray(count_dc, dtype=np.float64)
    mature = np.asarray(count_dc_mature, dtype=np.float64)
    total = dc + mature
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, mature / total, np.nan)


def last_day(times_min: np.ndarray, days: float = 1.0) -> np.ndarray:
    """Boolean mask of the times within ``days`` of the last one (inclusive)."""
    t = np.asarray(times_min, dtype=np.float64)
    return t >= t[-1] - days * MIN_PER_DAY - 1e-9


def type_codes(flag_values: Sequence[int], flag_meanings: str) -> dict[str, int]:
    """Cell-type name -> lattice code, from the ``flag_values``/``flag_meanings`` attrs."""
    names = str(flag_meanings).split()
    return {n: int(v) for n, v in zip(names, flag_values, strict=True)}


def cd8_type_names(names: Iterable[str]) -> list[str]:
    """The cell types that count as CD8 cells: ``cd8`` and any ``cd8_<state>`` type."""
    return [n for n in names if n == "cd8" or n.startswith("cd8_")]


#: Width of the band outside the tumour edge counted with the tumour (µm).
COMPOSITION_MARGIN_UM = 100.0


def composition_metrics(
    lattice: np.ndarray,
    codes: dict[str, int],
    site_um: float,
    margin_um: float = COMPOSITION_MARGIN_UM,
) -> dict[str, float]:
    """Immune composition of the tumour sample of one snapshot.

    The sample is the tumour region plus ``margin_um`` around it, counted by
    :func:`tme_abm.analysis.composition.immune_composition` (every type that
    is not a tumour type is an immune cell). ``codes`` is cell-type name ->
    lattice code (``"empty"`` is ignored). Returns

    ``immune_fraction``
        immune cells / all cells in the sample.
    ``mdsc_share``, ``treg_share``, ``macrophage_share``, ``t_cell_share``
        the share of the immune cells in the sample that are of type ``mdsc``;
        of role ``treg`` (``treg``, ``treg_*``); of types ``m1`` and ``m2``;
        of the CD8 types (``cd8``, ``cd8_*``) and the Treg types together.
    ``macrophage_dc_share``
        the share of types ``m1``, ``m2``, ``dc`` and ``dc_mature`` (the
        CD11b+CD11c+F4/80+MHCII+ gate of the PyMT measurement holds both).
    ``cd8_in_tumour``, ``mdsc_in_tumour``, ``treg_in_tumour``
        cells of the CD8 types, of type ``mdsc`` and of the Treg types in the
        sample.
    ``cd8_per_treg``
        CD8 cells / Tregs in the sample (NaN with no Treg there).

    A metric is NaN when the scenario has none of its types; a share is NaN
    when the sample holds no immune cell (e.g. no tumour is left).
    """
    codes = {n: int(c) for n, c in codes.items() if n != "empty"}
    cd8 = cd8_type_names(codes)
    treg = [n for n in codes if n == "treg" or n.startswith("treg_")]
    mdsc = [n for n in ("mdsc",) if n in codes]
    macrophage = [n for n in ("m1", "m2") if n in codes]
    dc = [n for n in ("dc", "dc_mature") if n in codes]
    groups = {  # ":" keeps these apart from the type names
        "group:cd8": cd8,
        "group:treg": treg,
        "group:mdsc": mdsc,
        "group:macrophage": macrophage,
        "group:t_cell": cd8 + treg,
        "group:macrophage_dc": macrophage + dc,
    }
    comp = immune_composition(lattice, codes, site_um, margin_um, groups)

    def share(group: str) -> float:
        return float(comp["immune_share"][group]) if groups[group] else math.nan

    def count(group: str) -> float:
        return float(comp["counts"][group]) if groups[group] else math.nan

    return {
        "immune_fraction": float(comp["immune_fraction"]),
        "mdsc_share": share("group:mdsc"),
        "treg_share": share("group:treg"),
        "macrophage_share": share("group:macrophage"),
        "t_cell_share": share("group:t_cell"),
        "macrophage_dc_share": share("group:macrophage_dc"),
        "cd8_in_tumour": count("group:cd8"),
        "mdsc_in_tumour": count("group:mdsc"),
        "treg_in_tumour": count("group:treg"),
        "cd8_per_treg": float(comp["cd8_per_treg"]) if treg else math.nan,
    }


def run_metrics(path: str | Path) -> dict[str, Any]:
    """Every metric of one run file.

    Returns a dict with

    ``final_tumour``
        ``/timeseries/count_tumour`` at the last tick.
    ``tumour_t_min``, ``tumour_count``
        tick times (minutes) and ``count_tumour`` at every tick.
    ``mature_dc_fraction``
        mean over the ticks of the last simulated day of
        ``count_dc_mature / (count_dc + count_dc_mature)`` (ticks with no DC
        skipped; NaN if there was none all day or the scenario has no DC types).
    ``cd8_infiltration``
        mean over the snapshots of the last day of the number of CD8 cells
        (types ``cd8`` and ``cd8_*``) with at least one tumour cell among their
        Moore neighbours, from ``/lattice/cell_type``.
    ``cd8_infiltration_per_100_tumour``
        mean over the same snapshots of ``100 * infiltrating CD8 / tumour cells``
        on that snapshot's lattice (snapshots without tumour skipped).
    ``immune_fraction``, ``mdsc_share``, ``treg_share``, ``macrophage_share``,
    ``t_cell_share``, ``cd8_in_tumour``, ``mdsc_in_tumour``, ``treg_in_tumour``,
    ``cd8_per_treg``
        :func:`composition_metrics` of the last snapshot (the root attribute
        ``site_um`` gives the lattice spacing).
    """
    import h5py

    from tme_abm.io.reader import read_timeseries

    ts = read_timeseries(path)
    tick_t = ts["time"]
    recent = last_day(tick_t)
    if "count_dc" in ts and "count_dc_mature" in ts:
        frac = mature_dc_fraction(ts["count_dc"][recent], ts["count_dc_mature"][recent])
    else:  # a scenario without DCs
        frac = np.full(int(recent.sum()), np.nan)
    with h5py.File(path, "r") as f:
        n = int(f["time"].shape[0])
        snap_t = f["time"][:n]
        ds = f["lattice/cell_type"]
        codes = type_codes(ds.attrs["flag_values"], _text(ds.attrs["flag_meanings"]))
        keep = np.flatnonzero(last_day(snap_t))
        lattice = ds[keep[0] : keep[-1] + 1]
        stamps = [_text(f.attrs.get(k, "")) for k in ("created", "finished")]
        site_um = float(f.attrs["site_um"])
    spatial = lattice.ndim - 1
    cd8 = [codes[n] for n in cd8_type_names(codes)]
    tumour = [codes["tumour"]]
    infil = infiltrating_cd8(lattice, cd8, tumour, spatial).astype(np.float64)
    n_tumour = np.count_nonzero(np.isin(lattice, tumour), axis=tuple(range(1, lattice.ndim)))
    with np.errstate(divide="ignore", invalid="ignore"):
        per100 = np.where(n_tumour > 0, 100.0 * infil / n_tumour, np.nan)
    return {
        "final_tumour": float(ts["count_tumour"][-1]),
        "tumour_t_min": tick_t,
        "tumour_count": ts["count_tumour"],
        "mature_dc_fraction": _nanmean(frac),
        "cd8_infiltration": float(infil.mean()),
        "cd8_infiltration_per_100_tumour": _nanmean(per100),
        **composition_metrics(lattice[-1], codes, site_um),
        "n_last_day_ticks": int(recent.sum()),
        "n_last_day_snapshots": int(keep.size),
        "file_seconds": _seconds_between(*stamps),
    }


def _seconds_between(start: str, end: str) -> float:
    """Seconds between two ISO-8601 stamps (NaN if either is missing or malformed)."""
    try:
        t0 = _dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        t1 = _dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    return (t1 - t0).total_seconds()


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


# -------------------------------------------------------------- arms, comparisons

METRICS = {
    "final_tumour": "final tumour cells",
    "mature_dc_fraction": "mature-DC fraction (last day)",
    "cd8_infiltration": "CD8 touching tumour (last day)",
    "cd8_infiltration_per_100_tumour": "CD8 touching tumour per 100 tumour cells",
    "immune_fraction": "immune share of all cells in tumour (last snapshot)",
    "mdsc_share": "MDSC share of immune cells in tumour (last snapshot)",
    "treg_share": "Treg share of immune cells in tumour (last snapshot)",
    "macrophage_share": "macrophage (M1 + M2) share of immune cells in tumour (last snapshot)",
    "t_cell_share": "T-cell (CD8 + Treg) share of immune cells in tumour (last snapshot)",
    "macrophage_dc_share": "macrophage and DC share of immune cells in tumour (last snapshot)",
    "cd8_in_tumour": "CD8 cells in tumour (last snapshot)",
    "mdsc_in_tumour": "MDSCs in tumour (last snapshot)",
    "treg_in_tumour": "Tregs in tumour (last snapshot)",
    "cd8_per_treg": "CD8 per Treg in tumour (last snapshot)",
}
#: The metrics of :func:`composition_metrics`: their own table in the report.
COMPOSITION_METRICS = (
    "immune_fraction",
    "mdsc_share",
    "treg_share",
    "macrophage_share",
    "t_cell_share",
    "macrophage_dc_share",
    "cd8_in_tumour",
    "mdsc_in_tumour",
    "treg_in_tumour",
    "cd8_per_treg",
)


@dataclass(frozen=True)
class Arm:
    """A scenario file plus its own overrides."""

    name: str
    scenario: Path
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """Arm ``a`` vs arm ``b`` on ``metric``; ``expected``: a is ``lower``/``higher``."""

    a: str
    b: str
    metric: str
    expected: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.a} vs {self.b}: {METRICS[self.metric]}"


DEFAULT_ARMS = (
    Arm("baseline", SCENARIOS / "baseline.toml"),
    Arm("ko_haematopoietic", SCENARIOS / "ko_haematopoietic.toml"),
    Arm("ko_tumour", SCENARIOS / "ko_tumour.toml"),
    Arm("stat3_inhibitor", SCENARIOS / "stat3_inhibitor.toml"),
    Arm("anti_pd1", SCENARIOS / "anti_pd1.toml"),
    Arm("inhibitor_anti_pd1", SCENARIOS / "inhibitor_anti_pd1.toml"),
    Arm("deplete_treg", SCENARIOS / "deplete_treg.toml"),
    Arm("deplete_treg_day3", SCENARIOS / "deplete_treg_day3.toml"),
    Arm("deplete_mdsc", SCENARIOS / "deplete_mdsc.toml"),
    Arm("arginase_inhibitor", SCENARIOS / "arginase_inhibitor.toml"),
)

COMPARISONS = (
    Comparison(
        "ko_haematopoietic",
        "baseline",
        "final_tumour",
        "lower",
        "Kortylewski 2005 Nat Med (doi:10.1038/nm1325)",
    ),
    Comparison(
        "ko_tumour",
        "baseline",
        "mature_dc_fraction",
        "higher",
        "Wang T 2004 Nat Med (doi:10.1038/nm976)",
    ),
    # Infiltration as a density (per 100 tumour cells), as sections are read:
    # the absolute count scales with the tumour's perimeter, and a
    # STAT3-deficient tumour is several times smaller after 7 days.
    Comparison(
        "ko_tumour",
        "baseline",
        "cd8_infiltration_per_100_tumour",
        "higher",
        "Wang T 2004 Nat Med (doi:10.1038/nm976)",
    ),
    Comparison(
        "inhibitor_anti_pd1",
        "stat3_inhibitor",
        "final_tumour",
        "lower",
        "combination better than STAT3 inhibition alone (CL 2018: Wang Y 2018 Cancer Lett, "
        "doi:10.1016/j.canlet.2017.12.003)",
    ),
    Comparison(
        "inhibitor_anti_pd1",
        "anti_pd1",
        "final_tumour",
        "lower",
        "combination better than anti-PD-1 alone (CL 2018: Wang Y 2018 Cancer Lett, "
        "doi:10.1016/j.canlet.2017.12.003)",
    ),
    Comparison(
        "deplete_treg",
        "baseline",
        "final_tumour",
        "lower",
        "Treg depletion at implantation (Onizuka 1999 Cancer Res 59:3128; "
        "Quezada 2008 J Exp Med 205:2125)",
    ),
    Comparison(
        "deplete_treg_day3",
        "deplete_treg",
        "final_tumour",
        "higher",
        "depletion after day 2 helps less (Onizuka 1999 Cancer Res 59:3128)",
    ),
    Comparison(
        "deplete_mdsc",
        "baseline",
        "final_tumour",
        "lower",
        "MDSC removal, as 5-FU (Vincent 2010 Cancer Res 70:3052)",
    ),
    Comparison(
        "arginase_inhibitor",
        "baseline",
        "cd8_in_tumour",
        "higher",
        "arginase inhibition raises tumour CD8 (Steggerda 2017 J Immunother Cancer 5:101)",
    ),
    Comparison(
        "deplete_mdsc",
        "baseline",
        "cd8_in_tumour",
        "higher",
        "Vincent 2010 Cancer Res 70:3052 (T cell-dependent)",
    ),
)


@dataclass(frozen=True)
class CompositionTarget:
    """A plausibility range ``[lo, hi]`` for the baseline's mean of ``metric``."""

    metric: str
    lo: float
    hi: float
    source: str
    basis: str


#: Checked on the ``baseline`` arm (:func:`evaluate_composition`).
COMPOSITION_TARGETS = (
    CompositionTarget(
        "immune_fraction",
        0.05,
        0.50,
        "PMC4157098, Table 1 (MMTV-PyMT tumours)",
        "CD45+ cells 18.3 ± 7.1% (mean ± SEM, n = 5) of live cells in MMTV-PyMT tumours "
        "(PMC4157098, Table 1); range: mean ± 2 SD of single tumours "
        "(SD = SEM·√5 = 15.9%), floored at 5% (our choice: the lower bound would be negative)",
    ),
    CompositionTarget(
        "mdsc_share",
        0.016,
        0.168,
        "PMC4157098, Table 1 (MMTV-PyMT tumours)",
        "CD45+CD11b+CD11c−F4/80−MHCII−Gr1+ MDSC 9.2 ± 1.7% (mean ± SEM, n = 5) of CD45+ "
        "cells in the same tumours (PMC4157098, Table 1); range: mean ± 2 SD (SD = 3.8%); "
        "the baseline's MDSC influx is fitted to the mean (tools/calibrate_mdsc.py), so this "
        "checks the fit, not an independent prediction",
    ),
    CompositionTarget(
        "macrophage_dc_share",
        0.523,
        1.0,
        "PMC4157098, Table 1 (MMTV-PyMT tumours)",
        "CD45+CD11b+CD11c+F4/80+MHCII+Gr1− myeloid cells 76.5 ± 5.4% (mean ± SEM, n = 5) of "
        "CD45+ cells in the same tumours (PMC4157098, Table 1), a gate that holds macrophages "
        "and DCs; range: mean − 2 SD (SD = 12.1%) to 100%",
    ),
    CompositionTarget(
        "t_cell_share",
        0.0,
        0.144,
        "PMC4157098, Table 1 (MMTV-PyMT tumours)",
        "CD45+CD3+ T cells 11.7 ± 0.6% (mean ± SEM, n = 5) of CD45+ cells in the same "
        "tumours (PMC4157098, Table 1); the model's T cells (CD8 and Tregs) are a subset of "
        "CD3+ (it has no CD4 helper or γδ T cells), so the range is 0 to mean + 2 SD "
        "(SD = 1.3%)",
    ),
)
#: The arm the composition targets are checked on.
COMPOSITION_ARM = "baseline"


def _toml_inline(value: Any) -> str:
    """A value as a TOML inline value; dicts as inline tables (for ``therapy=[...]``)."""
    from tme_abm.scenario.load import toml_value

    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    return toml_value(value)


#: The therapies of the stand-ins for the suppressive-arm scenario files (as
#: those files give them; see their comments for the sources).
STANDIN_THERAPIES: dict[str, dict[str, Any]] = {
    "deplete_treg": {
        "kind": "depletion",
        "cell_types": ["treg"],
        "fraction": 1.0,
        "start_day": 0.0,
    },
    "deplete_treg_day3": {
        "kind": "depletion",
        "cell_types": ["treg"],
        "fraction": 1.0,
        "start_day": 3.0,
    },
    "deplete_mdsc": {
        "kind": "depletion",
        "cell_types": ["mdsc"],
        "fraction": 1.0,
        "start_day": 0.0,
    },
    "arginase_inhibitor": {
        "kind": "field_blockade",
        "field": "arginase",
        "extra_decay_per_min": 0.5,
        "start_day": 0.0,
    },
}


def standin_arms(baseline: Path = SCENARIOS / "baseline.toml") -> tuple[Arm, ...]:
    """Stand-ins for the default arms, built from ``baseline`` with overrides only.

    For developing the suite before the real scenario files exist
    (``--standin-arms``); read from the baseline so they follow its edits:

    - ``ko_haematopoietic``: ``stat3.knockout=true`` in every type but ``tumour``;
    - ``ko_tumour``: ``stat3.knockout=true`` in ``tumour``;
    - ``stat3_inhibitor``: the baseline's ``[stat3_inhibitor]`` field (or a new
      ``drug`` field) held uniform at 10 x its half-max, no decay;
    - ``anti_pd1``: the saturation of every tumour ``kill_resistance`` rule (the
      PD-L1 rules) set to 0, so PD-L1 no longer protects tumour cells;
    - ``inhibitor_anti_pd1``: both;
    - ``deplete_treg``, ``deplete_treg_day3``, ``deplete_mdsc``,
      ``arginase_inhibitor``: the baseline's ``therapy`` list plus the one
      therapy of the scenario file (:data:`STANDIN_THERAPIES`), as a
      ``therapy=[...]`` override of inline tables.
    """
    import tomllib

    data = tomllib.loads(baseline.read_text(encoding="utf-8"))
    types = list(data.get("cell_types", {}))
    therapies = list(data.get("therapy", []))
    inhibitor = data.get("stat3_inhibitor")
    if inhibitor:
        fld, half = inhibitor["field"], float(inhibitor["half_max_ng_per_ml"])
        drug: tuple[str, ...] = ()
    else:
        fld, half = "drug", 1.0
        drug = (
            f"fields.{fld}.diffusion_um2_per_min=600",
            f'stat3_inhibitor.field="{fld}"',
            f"stat3_inhibitor.half_max_ng_per_ml={half:g}",
        )
    drug += (f"fields.{fld}.initial_ng_per_ml={10 * half:g}", f"fields.{fld}.half_life_min=1e12")
    pd1 = tuple(
        f"rules.{i}.saturation=0"
        for i, r in enumerate(data.get("rules", []))
        if r.get("cell_type") == "tumour" and r.get("behaviour") == "kill_resistance"
    )
    return (
        Arm("baseline", baseline),
        Arm(
            "ko_haematopoietic",
            baseline,
            tuple(f"cell_types.{t}.stat3.knockout=true" for t in types if t != "tumour"),
        ),
        Arm("ko_tumour", baseline, ("cell_types.tumour.stat3.knockout=true",)),
        Arm("stat3_inhibitor", baseline, drug),
        Arm("anti_pd1", baseline, pd1),
        Arm("inhibitor_anti_pd1", baseline, drug + pd1),
        *(
            Arm(name, baseline, (f"therapy={_toml_inline([*therapies, therapy])}",))
            for name, therapy in STANDIN_THERAPIES.items()
        ),
    )


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets, braces and quotes (``a=[1,2],b=3`` -> 2 items)."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_arm(spec: str) -> Arm:
    """Parse ``NAME=FILE[,KEY=VALUE...]`` (values may hold commas inside ``[...]``)."""
    name, sep, rest = spec.partition("=")
    items = split_top_level(rest)
    if not sep or not name.strip() or not items:
        raise ValueError(f"--arm {spec!r}: expected NAME=FILE[,KEY=VALUE...]")
    name = name.strip()
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--arm {spec!r}: arm name must be letters, digits, _ or -")
    bad = [o for o in items[1:] if "=" not in o]
    if bad:
        raise ValueError(f"--arm {spec!r}: overrides must be KEY=VALUE, not {bad}")
    return Arm(name, Path(items[0]), tuple(items[1:]))


def _key(override: str) -> str:
    return override.partition("=")[0].strip()


def set_problems(sets: Sequence[str], suite: Sequence[str], arms: Sequence[Arm]) -> list[str]:
    """Problems with ``--set`` overrides, one line each (empty if none).

    Each must be ``KEY=VALUE``; its key may not appear twice in ``sets``, nor be
    a suite key (those have their own options), nor one of an arm's own keys
    (the arm would silently win, or lose what makes it that arm).
    """
    problems = []
    keys = [_key(o) for o in sets]
    for o, k in zip(sets, keys, strict=True):
        if "=" not in o or not k:
            problems.append(f"--set {o!r}: expected KEY=VALUE")
    for dup in sorted({k for k in keys if k and keys.count(k) > 1}):
        problems.append(f"--set {dup}: given more than once")
    suite_keys = {_key(o) for o in suite}
    for k in sorted(set(keys) & suite_keys):
        problems.append(f"--set {k}: set by the suite; use --shape, --days or --snapshot-every-min")
    for arm in arms:
        for k in sorted(set(keys) & {_key(o) for o in arm.overrides}):
            problems.append(f"--set {k}: arm {arm.name!r} sets it too")
    return problems


def suite_overrides(shape: Sequence[int], days: float, snapshot_every_min: float) -> list[str]:
    """Overrides every arm gets: lattice, duration, and output trimming."""
    snap = min(snapshot_every_min, days * MIN_PER_DAY)
    return [
        f"domain.shape=[{','.join(str(int(s)) for s in shape)}]",
        f"domain.duration_days={days:g}",
        "output.fields=[]",
        "output.cells=false",
        f"output.snapshot_every_min={snap:g}",
    ]


# ------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Task:
    arm: str
    scenario: str
    overrides: tuple[str, ...]
    seed: int
    out: str
    force: bool
    source_sha256: str


#: Root attribute the suite adds to each run file it made: the digest of the
#: tme_abm source the run was made with (see :func:`source_digest`).
SOURCE_ATTR = "validation_source_sha256"


def source_digest() -> str:
    """SHA-256 over the paths and contents of the installed ``tme_abm`` package's .py files.

    A run is reused only if it was made with the same engine source, so a
    change to the engine re-runs everything without ``--force``.
    """
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("tme_abm")
    h = hashlib.sha256()
    for root in spec.submodule_search_locations or []:
        for path in sorted(Path(root).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _reusable(task: Task, resolved_json: str) -> bool:
    """A complete run file of this seed, overrides, resolved scenario and engine source.

    The resolved scenario (``scenario_resolved_json``: after ``extends`` and
    overrides, defaults filled in) catches edits to a file an arm extends.
    """
    import h5py

    p = Path(task.out)
    if task.force or not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            a = f.attrs
            return (
                int(a.get("complete", 0)) == 1
                and int(a.get("seed", -1)) == task.seed
                and _text(a.get("overrides", "")) == "\n".join(task.overrides)
                and _text(a.get("scenario_resolved_json", "")) == resolved_json
                and _text(a.get(SOURCE_ATTR, "")) == task.source_sha256
            )
    except (OSError, ValueError, TypeError):
        return False


def run_task(task: Task) -> dict[str, Any]:
    """Worker (top level, so spawn can pickle it): simulate unless reusable, then measure."""
    import h5py

    from tme_abm.runner import run_scenario
    from tme_abm.scenario.load import load_scenario

    loaded = load_scenario(task.scenario, task.overrides)
    reused = _reusable(task, loaded.scenario.model_dump_json())
    seconds = None
    if not reused:
        Path(task.out).parent.mkdir(parents=True, exist_ok=True)
        result = run_scenario(loaded, task.out, seed=task.seed, force=True, progress=False)
        seconds = result.seconds
        with h5py.File(task.out, "a") as f:
            f.attrs[SOURCE_ATTR] = task.source_sha256
    metrics = run_metrics(task.out)
    return {
        "arm": task.arm,
        "seed": task.seed,
        "path": task.out,
        "reused": reused,
        # reused runs: from the file's created/finished stamps (1 s resolution)
        "sim_seconds": metrics.pop("file_seconds") if seconds is None else seconds,
        **metrics,
    }


def check_arms(arms: Sequence[Arm], extra: Sequence[str]) -> list[str]:
    """Problems with the arms (missing files, invalid scenarios), one line each."""
    from tme_abm.scenario.load import ScenarioError, load_scenario

    problems = []
    names = [a.name for a in arms]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"arm {dup!r} is given more than once")
    for arm in arms:
        if not arm.scenario.is_file():
            problems.append(
                f"arm {arm.name!r}: scenario file {arm.scenario} does not exist (not written "
                "yet?); substitute it with --arm NAME=FILE[,KEY=VALUE...] or use --standin-arms"
            )
            continue
        try:
            load_scenario(arm.scenario, [*extra, *arm.overrides])
        except ScenarioError as exc:
            problems += [f"arm {arm.name!r}: {line}" for line in exc.format().splitlines()]
    return problems


class RunFailed(RuntimeError):
    """Some runs failed; ``failures`` maps each failed task to its error."""

    def __init__(self, failures: dict[Task, str]) -> None:
        self.failures = failures
        super().__init__(
            "\n".join(f"{t.arm} seed {t.seed} ({t.out}): {why}" for t, why in failures.items())
        )


def run_all(
    arms: Sequence[Arm],
    extra: Sequence[str],
    seeds: Sequence[int],
    runs_dir: Path,
    workers: int,
    force: bool,
    source_sha256: str,
    retries: int = 2,
) -> list[dict[str, Any]]:
    """Run (or reuse) every arm x seed in a process pool; return the per-run records.

    A run that raises is reported, not retried (runs are deterministic). If a
    worker process dies (the pool breaks), the runs that had not finished are
    retried in a fresh pool, at most ``retries`` times; completed run files are
    kept either way, so a re-invocation only redoes what is missing.

    Raises
    ------
    RunFailed
        After all other runs finished, if any run failed.
    """
    from concurrent.futures.process import BrokenProcessPool

    from tqdm import tqdm

    tasks = [
        Task(
            arm.name,
            str(arm.scenario),
            (*extra, *arm.overrides),
            seed,
            str(runs_dir / arm.name / f"seed{seed}.h5"),
            force,
            source_sha256,
        )
        for arm in arms
        for seed in seeds
    ]
    records: list[dict[str, Any]] = []
    failures: dict[Task, str] = {}
    pending = tasks
    bar = tqdm(total=len(tasks), unit="run", desc="validation")
    with bar:
        for attempt in range(retries + 1):
            broken: list[Task] = []
            with cf.ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(run_task, t): t for t in pending}
                for fut in cf.as_completed(futures):
                    task = futures[fut]
                    try:
                        rec = fut.result()
                    except BrokenProcessPool:
                        broken.append(task)
                        continue
                    except Exception as exc:  # noqa: BLE001 - reported with the run named
                        failures[task] = f"{type(exc).__name__}: {exc}"
                        bar.update(1)
                        continue
                    records.append(rec)
                    bar.update(1)
                    bar.set_postfix_str(f"{rec['arm']} seed {rec['seed']}", refresh=False)
            if not broken:
                break
            if attempt < retries:
                bar.write(
                    f"validate: a worker process died; retrying {len(broken)} unfinished "
                    f"run(s) in a fresh pool ({attempt + 1} of {retries})"
                )
            else:
                failures.update({t: "worker process died (every retry)" for t in broken})
            pending = broken
    if failures:
        raise RunFailed(failures)
    order = {a.name: i for i, a in enumerate(arms)}
    records.sort(key=lambda r: (order[r["arm"]], r["seed"]))
    return records


# --------------------------------------------------------------------- analysis


def summarise(arms: Sequence[Arm], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-arm values, mean, sd and 95% CI of every metric."""
    out: dict[str, Any] = {}
    for arm in arms:
        recs = [r for r in records if r["arm"] == arm.name]
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in recs], "metrics": {}}
        for m in METRICS:
            vals = np.array([r[m] for r in recs], dtype=np.float64)
            fin = vals[np.isfinite(vals)]
            mean, lo, hi = mean_ci(fin)
            entry["metrics"][m] = {
                "values": [None if not np.isfinite(v) else float(v) for v in vals],
                "n": int(fin.size),
                "mean": mean,
                "sd": float(fin.std(ddof=1)) if fin.size > 1 else math.nan,
                "ci_lo": lo,
                "ci_hi": hi,
            }
        out[arm.name] = entry
    return out


def run_comparisons(
    summary: dict[str, Any], comparisons: Sequence[Comparison]
) -> list[dict[str, Any]]:
    """Statistics of each comparison whose two arms were run."""
    results = []
    for c in comparisons:
        base = {
            "a": c.a,
            "b": c.b,
            "metric": c.metric,
            "expected": c.expected,
            "source": c.source,
            "label": c.label,
        }
        if c.a not in summary or c.b not in summary:
            missing = [x for x in (c.a, c.b) if x not in summary]
            results.append({**base, "verdict": f"not run (arm {', '.join(missing)} not in suite)"})
            continue
        va = summary[c.a]["metrics"][c.metric]["values"]
        vb = summary[c.b]["metrics"][c.metric]["values"]
        clean = [[np.nan if v is None else v for v in x] for x in (va, vb)]
        results.append({**base, **compare(clean[0], clean[1], c.expected)})
    return results


def range_verdict(mean: float, lo: float, hi: float) -> str:
    """``"in range"`` when ``lo <= mean <= hi``, ``"OUT of range"`` when not,
    ``"not computed (no value)"`` when ``mean`` is NaN or infinite."""
    if not math.isfinite(mean):
        return "not computed (no value)"
    return "in range" if lo <= mean <= hi else "OUT of range"


def evaluate_composition(
    summary: dict[str, Any],
    targets: Sequence[CompositionTarget],
    arm: str = COMPOSITION_ARM,
) -> list[dict[str, Any]]:
    """Mean, 95% t CI (:func:`mean_ci`) over seeds and verdict of each target on ``arm``.

    Seeds with a NaN value are left out (``n`` says how many remain); the
    verdict is :func:`range_verdict` of the mean.
    """
    results = []
    for t in targets:
        base = {
            "arm": arm,
            "metric": t.metric,
            "lo": t.lo,
            "hi": t.hi,
            "source": t.source,
            "basis": t.basis,
        }
        if arm not in summary:
            results.append({**base, "verdict": f"not run (arm {arm} not in suite)"})
            continue
        vals = [np.nan if v is None else v for v in summary[arm]["metrics"][t.metric]["values"]]
        fin = _clean(vals)
        mean, lo, hi = mean_ci(fin)  # NaN with no value
        results.append(
            {
                **base,
                "n": int(fin.size),
                "mean": mean,
                "ci_lo": lo,
                "ci_hi": hi,
                "verdict": range_verdict(mean, t.lo, t.hi),
            }
        )
    return results


def growth_curves(
    arms: Sequence[Arm], records: Sequence[dict[str, Any]], every: int = 12
) -> dict[str, Any]:
    """Tumour count over time per arm: mean and 95% t band, every ``every`` ticks."""
    out = {}
    for arm in arms:
        recs = [r for r in records if r["arm"] == arm.name]
        n = min(len(r["tumour_count"]) for r in recs)
        t = recs[0]["tumour_t_min"][:n]
        x = np.stack([r["tumour_count"][:n] for r in recs])
        mean, lo, hi = mean_ci_columns(x)
        idx = np.unique(np.r_[np.arange(0, n, every), n - 1])
        out[arm.name] = {
            "t_day": t / MIN_PER_DAY,
            "mean": mean,
            "lo": lo,
            "hi": hi,
            "idx": idx,
        }
    return out


# ------------------------------------------------------------------------ figures


def _colours(n: int) -> list[Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def figure_growth(curves: dict[str, Any], n_seeds: int, path: Path) -> None:
    """(a) Tumour cells over time, mean and 95% CI band over seeds, one line per arm."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    for (name, c), col in zip(curves.items(), _colours(len(curves)), strict=True):
        ax.plot(c["t_day"], c["mean"], color=col, lw=1.5, label=name)
        if np.isfinite(c["lo"]).any():
            ax.fill_between(c["t_day"], c["lo"], c["hi"], color=col, alpha=0.2, lw=0)
    ax.set_xlabel("time (days)")
    ax.set_ylabel("tumour cells")
    ax.set_title(f"Tumour cells: mean and 95% CI over {n_seeds} seeds")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figure_comparisons(
    summary: dict[str, Any], results: Sequence[dict[str, Any]], path: Path
) -> None:
    """(b) Per comparison: each seed as a dot, arm mean and 95% t CI as a bar.

    At most 5 panels a row.
    """
    import textwrap

    import matplotlib.pyplot as plt

    shown = [r for r in results if "mean_a" in r]
    if not shown:
        return
    per_row = 5
    ncols = min(per_row, len(shown))
    nrows = -(-len(shown) // per_row)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(2.6 * ncols + 0.4, 3.8 * nrows),
        constrained_layout=True,
        squeeze=False,
    )
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    rng = np.random.default_rng(0)  # jitter only
    for k, (ax, r) in enumerate(zip(axes.flat, shown, strict=False)):
        for i, arm in enumerate((r["a"], r["b"])):
            m = summary[arm]["metrics"][r["metric"]]
            vals = np.array([np.nan if v is None else v for v in m["values"]], dtype=float)
            x = i + rng.uniform(-0.12, 0.12, vals.size)
            col = "#d62728" if i == 0 else "#1f77b4"
            ax.scatter(x, vals, s=14, color=col, alpha=0.6, lw=0)
            if np.isfinite(m["ci_lo"]):
                ax.errorbar(
                    i + 0.3,
                    m["mean"],
                    yerr=[[m["mean"] - m["ci_lo"]], [m["ci_hi"] - m["mean"]]],
                    fmt="o",
                    color="k",
                    ms=4,
                    capsize=3,
                )
            else:
                ax.plot(i + 0.3, m["mean"], "o", color="k", ms=4)
        ax.set_xticks([0, 1], [r["a"], r["b"]], rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.5, 1.6)
        ok = r["verdict"] == "reproduced"
        label = textwrap.fill(f"{k + 1}. {METRICS[r['metric']]}", 34)
        ax.set_title(
            f"{label}\nexpected {r['expected']}: {'reproduced' if ok else 'NOT reproduced'}",
            fontsize=8,
            color="k" if ok else "#b00000",
        )
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("Comparisons: seeds (dots), mean and 95% CI (black)", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------ report


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None or math.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}g}"


def _p(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return "< 1e-4" if x < 1e-4 else f"{x:.2g}"


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' (uncommitted changes)' if dirty else ''}" if head else "unknown"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tme_abm")
    except PackageNotFoundError:
        return "unknown"


#: Hand-written account of what the validation found, included in every report.
FINDINGS = REPO / "docs" / "validation" / "findings.md"


def write_report(
    out: Path,
    meta: dict[str, Any],
    arms: Sequence[Arm],
    summary: dict[str, Any],
    results: Sequence[dict[str, Any]],
    composition: Sequence[dict[str, Any]] = (),
) -> Path:
    """Write ``report.md`` (figures are expected next to it); ``composition`` is
    :func:`evaluate_composition`'s result."""
    lines = [
        "# Validation against published effects",
        "",
        "Generated by `tools/validate.py`; do not edit by hand (re-run the command below).",
        "",
        "## How it was made",
        "",
        f"- command: `{meta['command']}`",
        f"- arms: {meta['arms_note']}",
        f"- seeds: {meta['seeds'][0]}..{meta['seeds'][-1]} ({len(meta['seeds'])} per arm)",
        f"- lattice: {' x '.join(str(s) for s in meta['shape'])} sites; "
        f"{_f(meta['days'])} simulated days",
        f"- suite overrides on every arm: `{'`, `'.join(meta['suite_overrides'])}`",
        "- `--set` overrides on every arm: "
        + (f"`{'`, `'.join(meta['set_overrides'])}`" if meta["set_overrides"] else "none"),
        f"- date: {meta['date']}",
        f"- tme_abm {meta['version']}, git {meta['git']}, engine source sha256 "
        f"{meta['source_sha256'][:12]}",
        f"- wall time of this invocation: {meta['wall_seconds']:.0f} s with {meta['workers']} "
        f"worker(s); {meta['n_simulated']} runs simulated now, {meta['n_reused']} reused from "
        f"`{meta['runs_dir']}`; simulation time per run {_f(meta['mean_sim_seconds'])} s on "
        f"average ({_f(meta['total_sim_seconds'])} s in all)",
        "",
        "Statistics: difference of means A - B with a Welch t 95% CI and two-sided Welch "
        f"p-value; ratio of means A / B with a percentile-bootstrap 95% CI "
        f"({BOOTSTRAP_RESAMPLES} resamples, rng seed {BOOTSTRAP_SEED}); Cohen's d with the "
        "pooled sd. **Reproduced** means the 95% CI of the difference excludes 0 on the "
        "expected side.",
        "",
        "## Comparisons",
        "",
        "| # | A vs B | metric | expected | mean A | mean B | A - B [95% CI] "
        "| A / B [95% CI] | Cohen's d | p (Welch) | verdict | source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, r in enumerate(results, 1):
        if "mean_a" not in r:
            lines.append(
                f"| {k} | {r['a']} vs {r['b']} | {METRICS[r['metric']]} | "
                f"{r['expected']} | | | | | | | {r['verdict']} | {r['source']} |"
            )
            continue
        v = r["verdict"]
        shown = (
            "**reproduced**"
            if v == "reproduced"
            else v.replace("not reproduced", "**NOT reproduced**", 1)
        )
        lines.append(
            f"| {k} | {r['a']} vs {r['b']} | {METRICS[r['metric']]} | {r['expected']} | "
            f"{_f(r['mean_a'])} | {_f(r['mean_b'])} | "
            f"{_f(r['diff'])} [{_f(r['diff_lo'])}, {_f(r['diff_hi'])}] | "
            f"{_f(r['ratio'])} [{_f(r['ratio_lo'])}, {_f(r['ratio_hi'])}] | "
            f"{_f(r['cohens_d'], 2)} | {_p(r['p_welch'])} | "
            f"{shown} | "
            f"{r['source']} |"
        )
    ok = [r for r in results if r["verdict"] == "reproduced"]
    bad = [(k, r) for k, r in enumerate(results, 1) if r["verdict"] != "reproduced"]
    lines += ["", f"{len(ok)} of {len(results)} expected effects were reproduced."]
    for k, r in bad:
        lines.append(
            f"Comparison {k} ({r['a']} vs {r['b']}, {METRICS[r['metric']]}, expected "
            f"{r['expected']}) was **not reproduced**: {_why(r)}"
        )
    lines += [
        "",
        "![comparisons](comparisons.png)",
        "",
        *_composition_section(composition),
        "## Per-arm summary (mean ± sd over seeds)",
        "",
        "### Outcomes",
        "",
    ]
    outcomes = [m for m in METRICS if m not in COMPOSITION_METRICS]
    lines += [
        "| arm | scenario | overrides | n | " + " | ".join(METRICS[m] for m in outcomes) + " |",
        "|---|---|---|---|" + "---|" * len(outcomes),
    ]
    for arm in arms:
        ov = "<br>".join(f"`{o}`" for o in arm.overrides) or "-"
        lines.append(
            f"| {arm.name} | `{_rel(arm.scenario)}` | {ov} | "
            f"{len(summary[arm.name]['seeds'])} | " + _summary_cells(summary[arm.name], outcomes)
        )
    lines += [
        "",
        "### Immune composition of the tumour sample at the last snapshot",
        "",
        "Cells in the tumour region plus a "
        f"{_f(COMPOSITION_MARGIN_UM)} µm band around it; shares are of the immune cells "
        "there (see the definitions below). n/a: the arm has none of the types, or no "
        "seed had a value; (n=k): only k seeds had one.",
        "",
        "| arm | n | " + " | ".join(METRICS[m] for m in COMPOSITION_METRICS) + " |",
        "|---|---|" + "---|" * len(COMPOSITION_METRICS),
    ]
    for arm in arms:
        lines.append(
            f"| {arm.name} | {len(summary[arm.name]['seeds'])} | "
            + _summary_cells(summary[arm.name], COMPOSITION_METRICS)
        )
    lines += [
        "",
        "## Tumour growth",
        "",
        "![tumour cells over time](growth.png)",
        "",
        "## Metric definitions",
        "",
        "- **final tumour cells**: `/timeseries/count_tumour` at the last tick.",
        "- **mature-DC fraction**: `count_dc_mature / (count_dc + count_dc_mature)` at each "
        "tick of the last simulated day, averaged (ticks with no DC skipped).",
        "- **CD8 touching tumour**: CD8 cells (types `cd8`, `cd8_*`) with at least one tumour "
        "cell among their 8 Moore neighbours (bounded lattice) on `/lattice/cell_type`, "
        "averaged over the snapshots of the last day "
        f"({', '.join(map(str, meta['snapshots_last_day']))} snapshots per run).",
        "- **per 100 tumour cells**: `100 x` that count / tumour cells on the same snapshot, "
        "averaged over the same snapshots.",
        "- **in tumour (last snapshot)**: on the run's last lattice snapshot, the tumour "
        "sample is the tumour region (tumour sites and the holes they enclose) plus every "
        f"site within {_f(COMPOSITION_MARGIN_UM)} µm outside its edge, as a dissected tumour "
        "would be counted by flow cytometry (`tme_abm.analysis.composition`). Every cell type "
        "that is not a tumour type counts as an immune cell. **immune share of all cells**: "
        "immune / all cells in the sample; **shares of immune cells**: MDSC (type `mdsc`), "
        "Treg (types `treg`, `treg_*`), macrophage (types `m1`, `m2`), T cell (the CD8 and "
        "Treg types), each over the immune cells in the sample (n/a when there are none, "
        "e.g. no tumour left); **CD8 cells, MDSCs, Tregs in tumour**: counts of those "
        "types in the sample; **CD8 per Treg**: CD8 / Treg cells in the sample (n/a "
        "without a Treg there). Each is n/a in an arm whose scenario has none of its types.",
        "",
        "All numbers are in `results.json`.",
        "",
    ]
    if FINDINGS.exists():
        lines += [
            "## What calibration found",
            "",
            f"Hand-written in `{_rel(FINDINGS)}` and included here verbatim.",
            "",
            FINDINGS.read_text(encoding="utf-8").strip(),
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _summary_cells(entry: dict[str, Any], metrics: Sequence[str]) -> str:
    """``mean ± sd`` cells of one arm's row, ``(n=k)`` where some seeds had no value."""
    s = entry["metrics"]
    return (
        " | ".join(
            f"{_f(s[m]['mean'])} ± {_f(s[m]['sd'], 2)}"
            + ("" if s[m]["n"] == len(entry["seeds"]) else f" (n={s[m]['n']})")
            for m in metrics
        )
        + " |"
    )


def _composition_section(composition: Sequence[dict[str, Any]]) -> list[str]:
    """The report section on the baseline's composition against its ranges."""
    if not composition:
        return []
    arm = composition[0]["arm"]
    lines = [
        f"## Immune composition of the {arm} at the last snapshot",
        "",
        "The only verified anchor is one tumour model (spontaneous MMTV-PyMT mammary "
        "tumours), so these ranges are plausibility ranges, not calibration targets of a "
        "specific model. Mean over seeds with its 95% t CI; **in range** means the mean lies "
        "in the range.",
        "",
        "| metric | range | mean [95% CI] | n | verdict | basis |",
        "|---|---|---|---|---|---|",
    ]
    for r in composition:
        v = r["verdict"]
        shown = "**OUT of range**" if v == "OUT of range" else v
        if "mean" not in r:
            stat, n = "", ""
        else:
            stat = f"{_f(r['mean'])} [{_f(r['ci_lo'])}, {_f(r['ci_hi'])}]"
            n = str(r["n"])
        lines.append(
            f"| {METRICS[r['metric']]} | [{_f(r['lo'])}, {_f(r['hi'])}] | {stat} | {n} | "
            f"{shown} | {r['basis']} |"
        )
    ok = sum(r["verdict"] == "in range" for r in composition)
    lines += ["", f"{ok} of {len(composition)} composition metrics lie in range.", ""]
    return lines


def _why(r: dict[str, Any]) -> str:
    """One sentence on why a comparison was not reproduced."""
    if "mean_a" not in r:
        return r["verdict"] + "."
    ci = f"[{_f(r['diff_lo'])}, {_f(r['diff_hi'])}]"
    if "opposite" in r["verdict"]:
        other = "higher" if r["expected"] == "lower" else "lower"
        return (
            f"{r['a']} was significantly {other} than {r['b']} (difference {_f(r['diff'])}, "
            f"95% CI {ci}), the opposite of the published effect."
        )
    if "includes 0" in r["verdict"]:
        return (
            f"the difference {_f(r['diff'])} has a 95% CI {ci} that includes 0 "
            f"(p = {_p(r['p_welch'])}), so the model shows no detectable effect at "
            f"{r['n_a']} vs {r['n_b']} seeds."
        )
    return f"the confidence interval could not be computed ({r['n_a']} and {r['n_b']} values)."


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, Path):
        return str(x)
    return x


# -------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python tools/validate.py",
        description="Run replicate simulations of several arms and test published "
        "effects with 95% confidence intervals.",
    )
    ap.add_argument("--seeds", type=int, default=8, help="seeds 1..N per arm (default 8)")
    ap.add_argument("--workers", type=int, default=2, help="simulation processes (default 2)")
    ap.add_argument(
        "--shape",
        type=int,
        nargs="+",
        default=[200, 200],
        metavar="N",
        help="lattice [nz] ny nx (default 200 200, the baseline's own)",
    )
    ap.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    ap.add_argument(
        "--snapshot-every-min",
        type=float,
        default=180.0,
        help="lattice snapshot interval (default 180)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("docs/validation"),
        help="report folder (default docs/validation)",
    )
    ap.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("output/validation"),
        help="run files (default output/validation)",
    )
    ap.add_argument("--force", action="store_true", help="re-run even reusable run files")
    ap.add_argument(
        "--arm",
        action="append",
        default=[],
        metavar="NAME=FILE[,KEY=VALUE...]",
        help="an arm; repeat; replaces the default arm list",
    )
    ap.add_argument(
        "--standin-arms",
        action="store_true",
        help="use stand-ins built from baseline.toml with overrides instead of "
        "the default scenario files",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key in every arm, e.g. "
        "--set domain.field_solver=lod (repeatable)",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    err = lambda msg: print(f"validate: error: {msg}", file=sys.stderr)  # noqa: E731
    if args.seeds < 2 or args.workers < 1 or args.days <= 0 or len(args.shape) not in (2, 3):
        err("need --seeds >= 2, --workers >= 1, --days > 0 and 2 or 3 --shape values")
        return 2
    try:
        arms = [parse_arm(s) for s in args.arm] if args.arm else None
    except ValueError as exc:
        err(str(exc))
        return 2
    if arms is None:
        arms = list(standin_arms() if args.standin_arms else DEFAULT_ARMS)
    elif args.standin_arms:
        err("--arm and --standin-arms cannot be combined")
        return 2
    suite = suite_overrides(args.shape, args.days, args.snapshot_every_min)
    problems = set_problems(args.sets, suite, arms)
    if problems:
        for line in problems:
            err(line)
        return 2
    extra = [*suite, *args.sets]
    problems = check_arms(arms, extra)
    if problems:
        for line in problems:
            err(line)
        return 2

    seeds = list(range(1, args.seeds + 1))
    start = time.perf_counter()
    digest = source_digest()
    try:
        records = run_all(arms, extra, seeds, args.runs_dir, args.workers, args.force, digest)
    except RunFailed as exc:
        for line in str(exc).splitlines():
            err(f"run failed: {line}")
        err("no report written; completed runs are kept and reused by the next invocation")
        return 1
    summary = summarise(arms, records)
    results = run_comparisons(summary, COMPARISONS)
    composition = evaluate_composition(summary, COMPOSITION_TARGETS)
    curves = growth_curves(arms, records)
    args.out.mkdir(parents=True, exist_ok=True)
    figure_growth(curves, len(seeds), args.out / "growth.png")
    figure_comparisons(summary, results, args.out / "comparisons.png")
    sim = [r["sim_seconds"] for r in records if not r["reused"]]
    all_sim = np.array([r["sim_seconds"] for r in records], dtype=np.float64)
    meta = {
        "command": ("python tools/validate.py " + shlex.join(argv)).strip(),
        "seeds": seeds,
        "shape": list(args.shape),
        "days": args.days,
        "suite_overrides": suite,
        "set_overrides": list(args.sets),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": _version(),
        "git": _git(),
        "source_sha256": digest,
        "workers": args.workers,
        "wall_seconds": time.perf_counter() - start,
        "n_simulated": len(sim),
        "n_reused": len(records) - len(sim),
        "mean_sim_seconds": _nanmean(all_sim),
        "total_sim_seconds": float(np.nansum(all_sim)),
        "runs_dir": str(args.runs_dir),
        "arms_note": (
            "stand-ins built from the shipped baseline.toml with overrides (--standin-arms), "
            "NOT the intervention scenario files"
            if args.standin_arms
            else "given with --arm (see the overrides column below)"
            if args.arm
            else "the shipped scenario files (tme_abm/examples/)"
        ),
        "snapshots_last_day": sorted({r["n_last_day_snapshots"] for r in records}),
    }
    write_report(args.out, meta, arms, summary, results, composition)
    payload = {
        "meta": meta,
        "arms": [
            {
                "name": a.name,
                "scenario": _rel(a.scenario),
                "overrides": list(a.overrides),
                **summary[a.name],
            }
            for a in arms
        ],
        "comparisons": results,
        "composition": composition,
        "runs": [
            {k: v for k, v in r.items() if k not in ("tumour_t_min", "tumour_count")}
            for r in records
        ],
        "tumour_growth": {
            name: {k: c[k][c["idx"]] for k in ("t_day", "mean", "lo", "hi")}
            for name, c in curves.items()
        },
    }
    (args.out / "results.json").write_text(
        json.dumps(_jsonable(payload), indent=1) + "\n", encoding="utf-8"
    )
    n_ok = sum(r["verdict"] == "reproduced" for r in results)
    print(
        f"wrote {args.out / 'report.md'}: {n_ok} of {len(results)} effects reproduced "
        f"({meta['wall_seconds']:.0f} s)"
    )
    for k, r in enumerate(results, 1):
        print(f"  {k}. {r['label']} (expected {r['expected']}): {r['verdict']}")
    for r in composition:
        print(
            f"  {r['arm']} {METRICS[r['metric']]} {_f(r.get('mean'))} "
            f"(range [{_f(r['lo'])}, {_f(r['hi'])}]): {r['verdict']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
