"""What a calibration reports: posterior table, credible intervals, trace, predictive check.

Everything here reads pyabc's :class:`pyabc.History`, the emulator's tables
(:mod:`tme_abm.calibration.emulator`) or tables made from them, and writes
plain files: ``posterior.csv`` (the final population's weighted
particles in natural units), ``intervals.csv`` (weighted posterior quantiles
beside the prior's), ``generations.csv`` (epsilon, acceptance rate and
effective sample size per generation), ``predictive.csv`` and
``predictive_summary.csv`` (runs at posterior draws against the data), and
the figures ``posterior.png`` (marginals on the diagonal, pairs below it),
``generations.png`` and ``predictive.png``.  Weighted quantiles are the
inverse of the weighted empirical distribution function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tme_abm.calibration.spec import Calibration, ParameterSpec

__all__ = [
    "credible_intervals",
    "generations_table",
    "plot_emulator_check",
    "plot_generations",
    "plot_posterior",
    "plot_predictive",
    "posterior_table",
    "predictive_draws",
    "predictive_summary",
    "weighted_quantile",
]


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a weighted sample (inverse of its weighted ECDF)."""
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights, dtype=float)
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cdf = np.cumsum(w) / w.sum()
    i = int(np.searchsorted(cdf, q, side="left"))
    return float(v[min(i, v.size - 1)])


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size, (sum w)^2 / sum w^2."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / (w**2).sum()) if w.size else math.nan


def posterior_table(history, calibration: Calibration, t: int | None = None) -> pd.DataFrame:
    """One row per particle of generation ``t`` (default last): weight, values, distance."""
    params = calibration.spec.parameters
    df, w = history.get_distribution(m=0, t=t)
    out = pd.DataFrame({"particle": np.arange(len(w)), "weight": w})
    for p in params:
        out[p.name] = [p.to_natural(v) for v in df[p.fitted_name].to_numpy()]
    dist = history.get_weighted_distances(t=t)
    if len(dist) == len(out):
        out["distance"] = dist["distance"].to_numpy()
    return out


CI_LEVELS = (0.90, 0.95)


def credible_intervals(posterior: pd.DataFrame, params: Sequence[ParameterSpec]) -> pd.DataFrame:
    """Weighted posterior median, mean and central 90%/95% intervals beside the prior's.

    ``width_ratio`` is the posterior's 90% interval width over the prior's,
    on the scale the parameter is fitted on (log10 for log-uniform priors).
    """
    w = posterior["weight"].to_numpy()
    rows = []
    for p in params:
        x = posterior[p.name].to_numpy(dtype=float)
        rv = p.scipy_rv()
        row = {
            "parameter": p.name,
            "units": p.units,
            "prior": p.prior,
            "mean": float(np.average(x, weights=w)),
            "median": weighted_quantile(x, w, 0.5),
        }
        for level in CI_LEVELS:
            lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
            pct = round(level * 100)
            row[f"ci{pct}_low"] = weighted_quantile(x, w, lo)
            row[f"ci{pct}_high"] = weighted_quantile(x, w, hi)
            row[f"prior_ci{pct}_low"] = p.to_natural(float(rv.ppf(lo)))
            row[f"prior_ci{pct}_high"] = p.to_natural(float(rv.ppf(hi)))
        fit = np.log10 if p.prior == "log-uniform" else (lambda v: v)
        post_w = fit(row["ci90_high"]) - fit(row["ci90_low"])
        prior_w = fit(row["prior_ci90_high"]) - fit(row["prior_ci90_low"])
        row["width_ratio"] = float(post_w / prior_w) if prior_w > 0 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def generations_table(history) -> pd.DataFrame:
    """Per generation: epsilon, particles, simulations, acceptance rate, ESS, wall time."""
    pops = history.get_all_populations()
    pops = pops[pops.t >= 0].sort_values("t")
    particles = history.get_nr_particles_per_population()
    rows = []
    for _, r in pops.iterrows():
        t = int(r.t)
        _, w = history.get_distribution(m=0, t=t)
        n = int(particles[t])
        rows.append(
            {
                "generation": t,
                "epsilon": float(r.epsilon),
                "particles": n,
                "simulations": int(r.samples),
                "acceptance_rate": n / r.samples if r.samples else math.nan,
                "ess": effective_sample_size(w),
                "wall_s": float(r.wall_time)
                if "wall_time" in r and r.wall_time is not None
                else math.nan,
            }
        )
    return pd.DataFrame(rows)


def predictive_draws(posterior: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` particles drawn by weight (with replacement), each with its own run seed."""
    ss = np.random.SeedSequence([int(seed), 2**31 - 1])
    rng = np.random.default_rng(ss)
    w = posterior["weight"].to_numpy(dtype=float)
    idx = rng.choice(len(posterior), size=n, replace=True, p=w / w.sum())
    seeds = [int(c.generate_state(1, dtype=np.uint32)[0]) for c in ss.spawn(n)]
    draws = posterior.iloc[idx].reset_index(drop=True)
    draws.insert(0, "draw", np.arange(n))
    draws.insert(1, "seed", seeds)
    return draws


def predictive_summary(runs: pd.DataFrame, calibration: Calibration) -> pd.DataFrame:
    """Per data point: observed value and uncertainty beside the runs' mean and 95% band."""
    rows = []
    for pt in calibration.data:
        v = runs[pt.key].to_numpy(dtype=float) if pt.key in runs else np.array([])
        v = v[np.isfinite(v)]
        rows.append(
            {
                "quantity": pt.quantity,
                "time_day": pt.time_day,
                "units": pt.units,
                "observed": pt.value,
                "uncertainty": pt.uncertainty,
                "mean": float(v.mean()) if v.size else math.nan,
                "low95": float(np.quantile(v, 0.025)) if v.size else math.nan,
                "high95": float(np.quantile(v, 0.975)) if v.size else math.nan,
                "runs": int(v.size),
                "inside95": bool(
                    v.size and np.quantile(v, 0.025) <= pt.value <= np.quantile(v, 0.975)
                ),
                "source": pt.source,
            }
        )
    return pd.DataFrame(rows)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def plot_posterior(
    posterior: pd.DataFrame,
    params: Sequence[ParameterSpec],
    path: Path,
    truth: Mapping[str, float] | None = None,
) -> None:
    """Corner plot: weighted marginals (with the prior) on the diagonal, pairs below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = len(params)
    w = posterior["weight"].to_numpy(dtype=float)
    fig, axes = plt.subplots(d, d, figsize=(2.8 * d + 0.6, 2.6 * d + 0.4), squeeze=False)

    def scaled(p: ParameterSpec) -> np.ndarray:
        x = posterior[p.name].to_numpy(dtype=float)
        return np.log10(x) if p.prior == "log-uniform" else x

    def label(p: ParameterSpec) -> str:
        unit = f" ({p.units})" if p.units else ""
        return f"log10 {p.name}{unit}" if p.prior == "log-uniform" else f"{p.name}{unit}"

    for i, pi in enumerate(params):
        xi = scaled(pi)
        rv = pi.scipy_rv()
        lo, hi = rv.ppf(0.001), rv.ppf(0.999)
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(
                    xi,
                    bins=20,
                    range=(lo, hi),
                    weights=w,
                    density=True,
                    color="#4c72b0",
                    alpha=0.75,
                    label="posterior",
                )
                grid = np.linspace(lo, hi, 200)
                ax.plot(grid, rv.pdf(grid), color="0.3", lw=1, ls="--", label="prior")
                for q in (0.05, 0.95):
                    ax.axvline(weighted_quantile(xi, w, q), color="#4c72b0", lw=0.8, ls=":")
                if truth and pi.name in truth:
                    t = truth[pi.name]
                    ax.axvline(
                        math.log10(t) if pi.prior == "log-uniform" else t,
                        color="#c44e52",
                        lw=1.5,
                        label="true value",
                    )
                ax.set_yticks([])
                if i == 0:
                    ax.legend(fontsize=7, frameon=False)
            else:
                pj = params[j]
                xj = scaled(pj)
                ax.scatter(
                    xj,
                    xi,
                    s=6 + 300 * w / w.max() / max(len(w) ** 0.5, 1),
                    color="#4c72b0",
                    alpha=0.5,
                    lw=0,
                )
                if truth and pi.name in truth and pj.name in truth:
                    tj, ti = truth[pj.name], truth[pi.name]
                    ax.plot(
                        math.log10(tj) if pj.prior == "log-uniform" else tj,
                        math.log10(ti) if pi.prior == "log-uniform" else ti,
                        marker="*",
                        color="#c44e52",
                        ms=10,
                    )
                rvj = pj.scipy_rv()
                ax.set_xlim(rvj.ppf(0.001), rvj.ppf(0.999))
                ax.set_ylim(lo, hi)
            if i == d - 1:
                ax.set_xlabel(label(params[j]), fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(label(pi), fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle("Posterior (dotted: 90% credible interval; dashed: prior)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_generations(table: pd.DataFrame, path: Path) -> None:
    """Epsilon, acceptance rate and ESS per generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    g = table["generation"]
    for ax, col, title, log in (
        (axes[0], "epsilon", "acceptance threshold (epsilon)", True),
        (axes[1], "acceptance_rate", "acceptance rate", True),
        (axes[2], "ess", "effective sample size", False),
    ):
        ax.plot(g, table[col], marker="o", color="#4c72b0")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        if log and (table[col] > 0).all():
            ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[2].axhline(table["particles"].max(), color="0.5", ls="--", lw=1)
    axes[2].set_ylim(0, table["particles"].max() * 1.1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_predictive(summary: pd.DataFrame, path: Path, title: str = "") -> None:
    """Per quantity: posterior predictive mean and 95% band, data with error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quantities = list(dict.fromkeys(summary["quantity"]))
    rows, cols = _grid(len(quantities))
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel()[len(quantities) :]:
        ax.axis("off")
    for ax, q in zip(axes.ravel(), quantities, strict=False):
        s = summary[summary["quantity"] == q].sort_values("time_day")
        t = s["time_day"].to_numpy(dtype=float)
        mean, low, high = (s[c].to_numpy(dtype=float) for c in ("mean", "low95", "high95"))
        if len(s) > 1:
            ax.fill_between(t, low, high, color="#4c72b0", alpha=0.25, label="model 95%")
            ax.plot(t, mean, color="#4c72b0", label="model mean")
        else:
            ax.errorbar(
                t,
                mean,
                yerr=np.vstack([mean - low, high - mean]),
                fmt="s",
                color="#4c72b0",
                capsize=4,
                label="model mean, 95%",
            )
        ax.errorbar(
            t,
            s["observed"].to_numpy(dtype=float),
            yerr=s["uncertainty"].to_numpy(dtype=float),
            fmt="o",
            color="#c44e52",
            capsize=3,
            label="data",
        )
        ax.set_title(q, fontsize=10)
        ax.set_xlabel("day")
        ax.set_ylabel(s["units"].iloc[0])
    axes.ravel()[0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_emulator_check(heldout: pd.DataFrame, calibration: Calibration, path: Path) -> None:
    """Per data point: each later wave's runs against the earlier emulator's 95% band.

    A point on the diagonal is a run the emulator predicted exactly; its bar
    is the emulator's 95% band (its own uncertainty plus the run-to-run
    scatter); the observed value is marked on both axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [pt for pt in calibration.data if pt.key in set(heldout["key"])]
    rows, cols = _grid(len(points))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel()[len(points) :]:
        ax.axis("off")
    for ax, pt in zip(axes.ravel(), points, strict=False):
        h = heldout[heldout["key"] == pt.key]
        inside = h["inside95"].to_numpy(bool)
        for mask, colour, label in ((inside, "#4c72b0", "inside"), (~inside, "#c44e52", "outside")):
            if mask.any():
                ax.errorbar(
                    h["emulated"][mask],
                    h["simulated"][mask],
                    xerr=1.96 * h["emulated_sd"][mask],
                    fmt="o",
                    ms=3,
                    lw=0.6,
                    color=colour,
                    alpha=0.7,
                    label=f"{label} 95% ({int(mask.sum())})",
                )
        lo = float(np.nanmin([h["emulated"].min(), h["simulated"].min(), pt.value]))
        hi = float(np.nanmax([h["emulated"].max(), h["simulated"].max(), pt.value]))
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        ax.axvline(pt.value, color="#55a868", lw=0.8, ls="--")
        ax.axhline(pt.value, color="#55a868", lw=0.8, ls="--", label="observed")
        ax.set_title(pt.quantity, fontsize=10)
        ax.set_xlabel("emulated (earlier waves)")
        ax.set_ylabel("simulated")
        ax.legend(fontsize=6, frameon=False)
    fig.suptitle("emulator check: new runs against the emulator fitted before them", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
