"""Variance-based (Sobol') sensitivity indices of a Saltelli or space-filling sweep.

A sweep whose design is ``kind = "saltelli"`` (see :mod:`tme_abm.batch.plan`)
runs SALib's cross-sampled points in SALib's order; :func:`sobol_indices`
reads the sweep folder (its ``sweep.toml`` copy and ``summary.csv``),
averages the replicates of each point and passes each output of each
scenario to :func:`SALib.analyze.sobol.analyze`.  ``S1`` is the share of the
output's variance that a parameter explains on its own, ``ST`` its share
including every interaction; ``*_conf`` are half-widths of bootstrap 95 %
confidence intervals.  :func:`plot_sobol` draws them.

A sweep with a space-filling design (``kind = "sobol"`` or ``"lhs"``) is
analysed through an emulator instead (Oakley & O'Hagan 2004, J R Stat Soc B
66:751): a Gaussian process of each output
(:class:`tme_abm.analysis.emulator.SummaryEmulator`) is fitted to every run,
replicates included, and Saltelli's estimator is applied to the emulator's
mean at ``emulator_samples`` base samples.  The white-noise term of the
process takes the run-to-run scatter, so the indices describe the
*expected* output: a noisy model no longer inflates them past 1, which a
Saltelli sweep of a few base samples does.  The table then adds, per
output, the emulator's leave-one-out predictive R² of single runs
(``emulator_q2``) and the share of the runs' variance that is scatter
(``noise_share``); ``*_conf`` is then the estimator's Monte Carlo error on
the emulator, and the emulator's own error shows in ``emulator_q2``.

The estimator needs every point: a failed or missing run is an error, not a
point to skip.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tme_abm.batch import DONE_STATUSES
from tme_abm.batch.plan import Sweep, design_points, load_sweep, scenario_labels

#: Run statuses in ``summary.csv`` whose outputs can be used.
DONE = DONE_STATUSES
#: Columns of :func:`sobol_indices`' table (second order adds ``parameter_2``,
#: ``S2`` and ``S2_conf``; an emulated analysis adds :data:`EMULATOR_COLUMNS`).
COLUMNS = ("scenario", "output", "parameter", "S1", "S1_conf", "ST", "ST_conf")
#: Per-output columns of an emulated analysis.
EMULATOR_COLUMNS = ("runs", "emulator_q2", "noise_share")
#: Designs analysed through an emulator rather than Saltelli's cross-sampling.
EMULATED_KINDS = ("sobol", "lhs")


class SensitivityError(ValueError):
    """A sweep folder that cannot be analysed; the message says why."""


class SensitivityWarning(UserWarning):
    """An output left out of the analysis (constant, or NaN at some point)."""


def _default_outputs(summary: pd.DataFrame) -> list[str]:
    # read at call time: OUTPUTS grows as the summary gains columns
    from tme_abm.batch import sweep as sweep_module

    return [name for name in sweep_module.OUTPUTS if name in summary.columns]


def _check_done(summary: pd.DataFrame, sweep: Sweep, n_points: int) -> None:
    """Every (scenario, point, replicate) must have a finished run."""
    stems = scenario_labels(sweep.scenarios)
    expected = {
        (s, p, r) for s in stems for p in range(n_points) for r in range(sweep.replicates)
    }
    have = set(
        zip(summary["scenario"].astype(str), summary["point"].astype(int),
            summary["replicate"].astype(int), strict=True)
    )
    missing = sorted(expected - have)
    status = summary["status"].fillna("missing").astype(str)
    bad = summary[~status.isin(DONE)]
    if not missing and bad.empty:
        return
    total = len(expected)
    parts = []
    if not bad.empty:
        counts = bad["status"].fillna("missing").value_counts()
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        ids = list(bad["run_id"].astype(str))
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        parts.append(f"{len(bad)} of {total} runs not done ({kinds}: {shown})")
    if missing:
        shown = ", ".join(f"{s} point {p} replicate {r}" for s, p, r in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        parts.append(f"{len(missing)} of {total} runs absent from summary.csv ({shown}{more})")
    raise SensitivityError(
        "; ".join(parts) + "; a Saltelli analysis needs every point: run the same "
        "`tme-abm sweep` again to finish them"
    )


def _check_design(summary: pd.DataFrame, sweep: Sweep, points: list[dict]) -> None:
    """The summary's parameter values must be the sweep file's design."""
    point = summary["point"].astype(int)
    if point.min() < 0 or point.max() >= len(points):
        raise SensitivityError(
            f"summary.csv has points up to {point.max()} but the design in sweep.toml has "
            f"{len(points)}; was sweep.toml edited after the sweep ran?"
        )
    for key in points[0]:
        if key not in summary.columns:
            raise SensitivityError(
                f"summary.csv has no column {key!r} of the design in sweep.toml; "
                "was sweep.toml edited after the sweep ran?"
            )
        want = np.array([pt[key] for pt in points], dtype=float)
        got = pd.to_numeric(summary[key], errors="coerce").to_numpy(dtype=float)
        if not np.allclose(got, want[point.to_numpy()], rtol=1e-9, atol=0.0):
            raise SensitivityError(
                f"summary.csv's values of {key!r} differ from the design in sweep.toml; "
                "was sweep.toml edited after the sweep ran?"
            )


def _usable(y: np.ndarray, scenario: str, output: str) -> bool:
    nan = int(np.isnan(y).sum())
    if nan:
        what = "every point" if nan == y.size else f"{nan} of {y.size} points"
        warnings.warn(
            f"{scenario}: {output} is NaN at {what}; skipped (a Saltelli analysis cannot "
            "leave points out)",
            SensitivityWarning, stacklevel=3,
        )
        return False
    return not _constant(y, scenario, output, "at every point")


def _constant(y: np.ndarray, scenario: str, output: str, where: str) -> bool:
    """True (with a warning) when an output does not vary."""
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        warnings.warn(
            f"{scenario}: {output} is the same ({y[0]:g}) {where}; skipped",
            SensitivityWarning, stacklevel=4,
        )
        return True
    return False


def sobol_indices(
    sweep_dir: str | Path,
    outputs: Sequence[str] | None = None,
    *,
    seed: int = 1,
    num_resamples: int = 100,
    conf_level: float = 0.95,
    emulator_samples: int = 4096,
) -> pd.DataFrame:
    """First-order and total Sobol' indices of a Saltelli or space-filling sweep.

    Parameters
    ----------
    sweep_dir
        A sweep folder written by :func:`tme_abm.batch.sweep.run_sweep` from a
        sweep file with ``[design] kind = "saltelli"`` (indices from the runs
        themselves) or ``"sobol"``/``"lhs"`` (indices of a Gaussian-process
        emulator fitted to the runs; module docstring).
    outputs
        Columns of ``summary.csv`` to analyse (default: the key outputs of
        :data:`tme_abm.batch.sweep.OUTPUTS` that the summary has).  An output
        that is constant, or NaN at some point, is skipped with a
        :class:`SensitivityWarning`.
    seed
        Seed of the bootstrap confidence intervals (at least 1; SALib treats
        0 as "unseeded"), so that the same sweep gives the same table.
    num_resamples
        Bootstrap resamples for the confidence intervals.
    conf_level
        Confidence level of ``S1_conf``, ``ST_conf`` (and ``S2_conf``).
    emulator_samples
        Base samples of Saltelli's estimator on an emulator (a power of two).

    Returns
    -------
    pandas.DataFrame
        One row per scenario, output and parameter, with columns
        ``scenario, output, parameter, S1, S1_conf, ST, ST_conf`` (and, for
        an emulated analysis, ``runs, emulator_q2, noise_share``); with a
        second-order design, also one row per pair of parameters with
        ``parameter``, ``parameter_2``, ``S2`` and ``S2_conf`` set (and S1..ST
        NaN; ``parameter_2`` is NaN in the per-parameter rows).  Parameters
        are the sweep's dotted keys, in the sweep file's order.

    Raises
    ------
    FileNotFoundError
        If the folder has no ``summary.csv`` or no ``sweep.toml``.
    tme_abm.scenario.ScenarioError
        If the folder's ``sweep.toml`` is not a valid sweep file.
    SensitivityError
        If the design is a grid, an output is not a numeric
        column of the summary, a run is missing or failed, or the summary
        does not match the design.
    """
    from SALib.analyze import sobol as salib_sobol

    from tme_abm.io.dataset import open_sweep

    folder = Path(sweep_dir)
    if seed < 1:
        raise SensitivityError(f"seed: must be at least 1, not {seed}")
    summary = open_sweep(folder)
    toml = folder / "sweep.toml"
    if not toml.is_file():
        raise FileNotFoundError(f"{folder}: no sweep.toml; is it a folder of `tme-abm sweep`?")
    sweep = load_sweep(toml)
    design = sweep.design
    if design.kind not in ("saltelli", *EMULATED_KINDS):
        raise SensitivityError(
            f"{toml}: design.kind is {design.kind!r}; Sobol' indices need a sweep run with "
            '[design] kind = "saltelli" (samples = a power of two) or a space-filling '
            'kind = "sobol" or "lhs" (analysed through an emulator), and low/high parameters'
        )
    if emulator_samples < 2 or emulator_samples & (emulator_samples - 1):
        raise SensitivityError(f"emulator_samples: a power of two, not {emulator_samples}")
    for column in ("scenario", "point", "replicate", "status", "run_id"):
        if column not in summary.columns:
            raise SensitivityError(f"{folder / 'summary.csv'}: no {column!r} column")
    points = design_points(sweep)
    n_points = len(points)
    _check_done(summary, sweep, n_points)
    _check_design(summary, sweep, points)

    if outputs is None:
        names = _default_outputs(summary)
        if not names:
            raise SensitivityError(f"{folder / 'summary.csv'}: none of the key outputs")
    else:
        names = list(dict.fromkeys(outputs))
        unknown = [n for n in names if n not in summary.columns]
        if unknown:
            choices = ", ".join(_default_outputs(summary)) or "none"
            raise SensitivityError(
                f"no output {', '.join(map(repr, unknown))} in summary.csv "
                f"(key outputs: {choices})"
            )
    for name in names:
        values = pd.to_numeric(summary[name], errors="coerce")
        if values.isna().all() and not summary[name].isna().all():
            raise SensitivityError(f"output {name!r} is not a numeric column of summary.csv")

    params = sweep.parameters
    problem = {
        "num_vars": len(params),
        "names": [p.key for p in params],
        "bounds": [[float(p.low), float(p.high)] for p in params],
    }
    if design.kind in EMULATED_KINDS:
        return _emulated_indices(
            summary, sweep, names, seed, num_resamples, conf_level, emulator_samples
        )
    rows: list[dict] = []
    for scenario in scenario_labels(sweep.scenarios):
        runs = summary[summary["scenario"].astype(str) == scenario]
        values = runs[names].apply(pd.to_numeric, errors="coerce")
        # a NaN replicate makes its point NaN, and the output is skipped below
        means = values.groupby(runs["point"].astype(int)).agg(
            lambda col: col.mean(skipna=False)
        ).reindex(range(n_points))
        for name in names:
            y = means[name].to_numpy(dtype=float)
            if not _usable(y, scenario, name):
                continue
            si = salib_sobol.analyze(
                problem, y, calc_second_order=design.second_order,
                num_resamples=num_resamples, conf_level=conf_level,
                print_to_console=False, seed=seed,
            )
            for j, key in enumerate(problem["names"]):
                row = {"scenario": scenario, "output": name, "parameter": key,
                       "S1": float(si["S1"][j]), "S1_conf": float(si["S1_conf"][j]),
                       "ST": float(si["ST"][j]), "ST_conf": float(si["ST_conf"][j])}
                if design.second_order:
                    row |= {"parameter_2": math.nan, "S2": math.nan, "S2_conf": math.nan}
                rows.append(row)
            if design.second_order:
                for j, key in enumerate(problem["names"]):
                    for k in range(j + 1, len(params)):
                        rows.append({
                            "scenario": scenario, "output": name, "parameter": key,
                            "S1": math.nan, "S1_conf": math.nan,
                            "ST": math.nan, "ST_conf": math.nan,
                            "parameter_2": problem["names"][k],
                            "S2": float(si["S2"][j, k]), "S2_conf": float(si["S2_conf"][j, k]),
                        })
    columns = list(COLUMNS) + (["parameter_2", "S2", "S2_conf"] if design.second_order else [])
    return pd.DataFrame(rows, columns=columns)


def unit_coordinates(sweep: Sweep, values: pd.DataFrame) -> np.ndarray:
    """Each row's parameters as positions between low (0) and high (1), on their scale."""
    cols = []
    for p in sweep.parameters:
        x = pd.to_numeric(values[p.key], errors="coerce").to_numpy(dtype=float)
        if p.scale == "log":
            cols.append((np.log(x) - math.log(p.low)) / (math.log(p.high) - math.log(p.low)))
        else:
            cols.append((x - p.low) / (p.high - p.low))
    return np.column_stack(cols)


def _emulated_indices(
    summary: pd.DataFrame,
    sweep: Sweep,
    names: list[str],
    seed: int,
    num_resamples: int,
    conf_level: float,
    emulator_samples: int,
) -> pd.DataFrame:
    """Sobol' indices of a Gaussian-process emulator of each output (module docstring)."""
    from SALib.analyze import sobol as salib_sobol
    from SALib.sample import sobol as salib_sample

    from tme_abm.analysis.emulator import SummaryEmulator

    params = sweep.parameters
    d = len(params)
    unit_problem = {"num_vars": d, "names": [p.key for p in params], "bounds": [[0.0, 1.0]] * d}
    cross = salib_sample.sample(
        unit_problem, emulator_samples, calc_second_order=False, scramble=True, seed=seed
    )
    rows: list[dict] = []
    for scenario in scenario_labels(sweep.scenarios):
        runs = summary[summary["scenario"].astype(str) == scenario]
        u = unit_coordinates(sweep, runs)
        for name in names:
            y = pd.to_numeric(runs[name], errors="coerce").to_numpy(dtype=float)
            finite = np.isfinite(y)
            if not _usable_runs(y, finite, scenario, name):
                continue
            emulator = SummaryEmulator(seed).fit(u[finite], y[finite])
            mean, _ = emulator.predict(cross)
            si = salib_sobol.analyze(
                unit_problem, mean, calc_second_order=False, num_resamples=num_resamples,
                conf_level=conf_level, print_to_console=False, seed=seed,
            )
            q2, noise = emulator.q2(), emulator.noise_share()
            for j, key in enumerate(unit_problem["names"]):
                rows.append({"scenario": scenario, "output": name, "parameter": key,
                             "S1": float(si["S1"][j]), "S1_conf": float(si["S1_conf"][j]),
                             "ST": float(si["ST"][j]), "ST_conf": float(si["ST_conf"][j]),
                             "runs": int(finite.sum()), "emulator_q2": q2,
                             "noise_share": noise})
    return pd.DataFrame(rows, columns=list(COLUMNS) + list(EMULATOR_COLUMNS))


def _usable_runs(y: np.ndarray, finite: np.ndarray, scenario: str, output: str) -> bool:
    """An emulator needs a few finite runs that are not all the same."""
    if finite.sum() < 3:
        warnings.warn(
            f"{scenario}: {output} has {int(finite.sum())} finite run(s); skipped (an "
            "emulator needs at least 3)",
            SensitivityWarning, stacklevel=3,
        )
        return False
    if not finite.all():
        warnings.warn(
            f"{scenario}: {output} is NaN in {int((~finite).sum())} of {y.size} runs; "
            "the emulator is fitted to the others",
            SensitivityWarning, stacklevel=3,
        )
    return not _constant(y[finite], scenario, output, "in every run")


def short_name(key: str) -> str:
    """A readable label for a dotted key: its last two parts.

    A list index keeps its list's name, so ``rules.0.saturation`` stays whole
    and ``cell_types.cd8.stat3.inputs.0.half_max_ng_per_ml`` becomes
    ``inputs.0.half_max_ng_per_ml``.
    """
    parts = key.split(".")
    n = 3 if len(parts) >= 3 and parts[-2].isdigit() else 2
    return ".".join(parts[-n:])


def first_order_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The per-parameter rows (S1, ST) of a :func:`sobol_indices` table."""
    if "parameter_2" in df.columns:
        return df[df["parameter_2"].isna()]
    return df


def plot_sobol(df: pd.DataFrame, out_png: str | Path) -> Path:
    """Bar chart of S1 and ST with their confidence intervals, one panel per output.

    Parameters
    ----------
    df
        A table from :func:`sobol_indices` (second-order rows are ignored).
    out_png
        PNG file to write (replaced if it exists).

    Returns
    -------
    pathlib.Path
        ``out_png``.

    Raises
    ------
    ValueError
        If the table has no rows to plot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    df = first_order_rows(df)
    if df.empty:
        raise ValueError("no Sobol' indices to plot")
    panels = list(dict.fromkeys(zip(df["scenario"], df["output"], strict=True)))
    several = len({s for s, _ in panels}) > 1
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    n_params = df.groupby(["scenario", "output"]).size().max()
    width = max(3.6, 0.9 * n_params + 1.6)
    fig = Figure(figsize=(width * ncols, 3.6 * nrows + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    bar = 0.38
    for ax, (scenario, output) in zip(axes, panels, strict=False):
        sub = df[(df["scenario"] == scenario) & (df["output"] == output)]
        x = np.arange(len(sub))
        kw = {"capsize": 3, "error_kw": {"elinewidth": 1}}
        ax.bar(x - bar / 2, sub["S1"], bar, yerr=sub["S1_conf"], label="S1 (first order)",
               color="#1f77b4", **kw)
        ax.bar(x + bar / 2, sub["ST"], bar, yerr=sub["ST_conf"], label="ST (total)",
               color="#ff7f0e", **kw)
        ax.set_xticks(x, [short_name(p) for p in sub["parameter"]], rotation=30, ha="right",
                      fontsize=8)
        ax.axhline(0.0, color="0.4", lw=0.8)
        ax.set_ylim(min(-0.1, float((sub["S1"] - sub["S1_conf"]).min()) - 0.05),
                    max(1.05, float((sub["ST"] + sub["ST_conf"]).max()) + 0.05))
        title = f"{scenario}: {output}" if several else output
        if "emulator_q2" in sub.columns:
            title += (f"\n(emulator Q² {sub['emulator_q2'].iloc[0]:.2f}, "
                      f"scatter {sub['noise_share'].iloc[0]:.0%} of variance)")
        ax.set_title(title, fontsize=10 if "emulator_q2" not in sub.columns else 9)
        ax.set_ylabel("Sobol' index")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8, loc="upper left")
    what = ("Sobol' indices of an emulator of the expected output"
            if "emulator_q2" in df.columns else "Sobol' indices")
    fig.suptitle(f"{what}; error bars: bootstrap confidence intervals", fontsize=11)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.97))
    out = Path(out_png)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, out)
    return out


def format_table(df: pd.DataFrame) -> str:
    """A plain-text table of a :func:`sobol_indices` result, for the terminal.

    One line per scenario, output and parameter (``S1 ± conf``, ``ST ± conf``),
    then the second-order pairs if the table has them.
    """
    head = ("scenario", "output", "parameter", "S1 ± conf", "ST ± conf")
    first = first_order_rows(df)
    lines = [
        (r.scenario, r.output, r.parameter, f"{r.S1:6.3f} ± {r.S1_conf:.3f}",
         f"{r.ST:6.3f} ± {r.ST_conf:.3f}")
        for r in first.itertuples(index=False)
    ]
    if "emulator_q2" in df.columns:
        head = (*head, "emulator Q2", "noise share")
        lines = [
            (*line, f"{r.emulator_q2:.2f}", f"{r.noise_share:.2f}")
            for line, r in zip(lines, first.itertuples(index=False), strict=True)
        ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    text = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
            for row in (head, *lines)]
    if "parameter_2" in df.columns:
        pairs = df[df["parameter_2"].notna()]
        if not pairs.empty:
            text.append("")
            text.append("second order (S2 ± conf):")
            text += [f"{r.scenario}  {r.output}  {r.parameter} x {r.parameter_2}  "
                     f"{r.S2:6.3f} ± {r.S2_conf:.3f}" for r in pairs.itertuples(index=False)]
    return "\n".join(text)
