"""``tme-abm calibrate``: run a calibration file into a folder, resumably, and report.

The folder (default ``output/calibrations/<name>``) holds ``calibration.toml``
(a copy), ``observed.csv`` (the data as read), ``fingerprint.json`` (what the
results depend on), pyabc's ``history.db``, ``calibration.log``, and the
results of :mod:`tme_abm.calibration.results` plus ``report.md``.  With
``method = "emulator"`` it holds ``design.csv`` (every model run and its
summaries, written as they finish) instead of ``history.db``, and
``waves.csv``, ``emulators.csv``, ``heldout.csv`` and ``emulator_check.png``
instead of the generations.  Running
the same command again continues after the last finished generation and
then makes any result that is missing; a folder holding a calibration of
another file, data or scenario is refused, so results are never mixed or
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from tme_abm.calibration.design_runs import write_csv as _write_csv
from tme_abm.calibration.spec import Calibration, CalibrationError, load_calibration

__all__ = ["CalibrationResult", "default_out", "run_calibration"]


def default_out(calibration: Calibration) -> Path:
    """``output/calibrations/<name>``."""
    return Path("output") / "calibrations" / calibration.spec.name


def fingerprint(calibration: Calibration) -> dict[str, Any]:
    """What a calibration's results depend on: its file, data and scenario text."""
    data = "\n".join(
        f"{p.quantity},{p.time_day!r},{p.value!r},{p.uncertainty!r},{p.units}"
        for p in calibration.data
    )
    parts = {"calibration": calibration.text, "data": data, "scenario": calibration.loaded.text}
    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in parts.items()}


def _check_folder(out: Path, calibration: Calibration) -> None:
    if out.exists() and not out.is_dir():
        raise CalibrationError(str(out), [("--out", "exists and is not a folder")])
    if not out.exists() or not any(out.iterdir()):
        return
    fp_path = out / "fingerprint.json"
    if not fp_path.is_file():
        raise CalibrationError(
            str(out),
            [("--out", "holds files that are not a tme-abm calibration; choose another folder")],
        )
    try:
        old = json.loads(fp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CalibrationError(
            str(out), [("--out", "fingerprint.json is unreadable; choose another folder")]
        ) from None
    new = fingerprint(calibration)
    changed = [k for k in new if old.get(k) != new[k]]
    if changed:
        raise CalibrationError(
            str(out),
            [
                (
                    "--out",
                    f"holds a calibration with another {' and '.join(changed)} "
                    "text; its results are kept: choose another --out (or rename the folder)",
                )
            ],
        )


class CalibrationResult:
    """What :func:`run_calibration` made: the folder, tables and why it stopped.

    ``generations`` is the ABC-SMC generations table, or the emulator's waves.
    """

    def __init__(
        self,
        out: Path,
        intervals: pd.DataFrame,
        generations: pd.DataFrame,
        predictive: pd.DataFrame | None,
        reason: str,
    ) -> None:
        self.out = out
        self.intervals = intervals
        self.generations = generations
        self.predictive = predictive
        self.reason = reason


def run_calibration(
    path: str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 2,
    executor: Executor | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    truth: dict[str, float] | None = None,
) -> CalibrationResult:
    """Run (or continue) a calibration and write its results.

    Parameters
    ----------
    path
        The calibration file.
    out
        Result folder (default ``output/calibrations/<name>``).
    workers
        Processes of the local pool (1: run in this process); ignored with
        ``executor``.
    executor
        A ``concurrent.futures.Executor`` (e.g. a Dask client's) to run on.
    progress
        Progress bars on stderr (None: only on a terminal).
    log
        Called with each progress line (also written to ``calibration.log``).
    truth
        Known parameter values, drawn on the posterior plot (recovery tests).

    Raises
    ------
    CalibrationError
        Bad file, data or folder (before any simulation).
    """
    from tme_abm.batch.guard import FolderLock, bind_worker_to_parent
    from tme_abm.calibration import results as res
    from tme_abm.calibration.simulate import Simulator, map_in_order

    calibration = load_calibration(path)
    out = Path(out) if out is not None else default_out(calibration)
    _check_folder(out, calibration)
    out.mkdir(parents=True, exist_ok=True)
    params = calibration.spec.parameters
    with (
        FolderLock(out),
        ExitStack() as stack,
        (out / "calibration.log").open("a", encoding="utf-8") as log_file,
    ):

        def say(line: str) -> None:
            log_file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            log_file.flush()
            if log is not None:
                log(line)

        (out / "fingerprint.json").write_text(
            json.dumps(fingerprint(calibration), indent=1) + "\n", encoding="utf-8"
        )
        if calibration.path.resolve() != (out / "calibration.toml").resolve():
            shutil.copyfile(calibration.path, out / "calibration.toml")
        pd.DataFrame([vars(p) for p in calibration.data]).to_csv(out / "observed.csv", index=False)
        if executor is None and workers > 1:
            executor = stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=workers,
                    initializer=bind_worker_to_parent,
                    initargs=(os.getpid(), str(out)),
                )
            )
        if calibration.spec.method == "emulator":
            posterior, trace, reason, extra = _run_emulator(
                calibration, out, executor, progress, say
            )
        else:
            posterior, trace, reason, extra = _run_abc(calibration, out, executor, progress, say)
        intervals = res.credible_intervals(posterior, params)
        _write_csv(intervals, out / "intervals.csv")
        res.plot_posterior(posterior, params, out / "posterior.png", truth)

        predictive = None
        n_draws = calibration.spec.check.draws
        if n_draws:
            runs_path = out / "predictive.csv"
            draws = res.predictive_draws(posterior, n_draws, calibration.spec.seed)
            runs = _read_matching(runs_path, draws)
            if runs is None:
                say(f"posterior predictive check: {n_draws} runs at posterior draws")
                sim = Simulator.from_calibration(calibration)
                from tqdm import tqdm

                bar = tqdm(
                    total=n_draws,
                    unit="run",
                    desc="predictive check",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    disable=None if progress is None else not progress,
                )
                with bar:
                    values = map_in_order(
                        sim,
                        [
                            ({p.name: float(r[p.name]) for p in params}, int(r.seed))
                            for _, r in draws.iterrows()
                        ],
                        executor=executor,
                        on_done=bar.update,
                    )
                runs = pd.concat([draws, pd.DataFrame(values)], axis=1)
                _write_csv(runs, runs_path)
            predictive = res.predictive_summary(runs, calibration)
            _write_csv(predictive, out / "predictive_summary.csv")
            res.plot_predictive(
                predictive,
                out / "predictive.png",
                f"{calibration.spec.name}: posterior predictive check ({n_draws} runs)",
            )
        _write_report(out, calibration, intervals, extra, predictive)
        say(f"results in {out}")
    return CalibrationResult(out, intervals, trace, predictive, reason)


def _run_abc(
    calibration: Calibration,
    out: Path,
    executor: Executor | None,
    progress: bool | None,
    say: Callable[[str], None],
) -> tuple[pd.DataFrame, pd.DataFrame, str, tuple[str, list[str]]]:
    """ABC-SMC into ``history.db``: posterior, generations, reason, report lines."""
    from tme_abm.calibration import results as res
    from tme_abm.calibration.smc import run_generations

    s = calibration.spec.abc
    say(
        f"calibration {calibration.spec.name}: {len(calibration.spec.parameters)} parameter(s), "
        f"{len(calibration.data)} data points, population {s.population}, up to "
        f"{s.generations} generations, into {out}"
    )

    def report(history, generations: range) -> None:
        table = res.generations_table(history).set_index("generation")
        for t in generations:
            g = table.loc[t]
            say(
                f"generation {t}: epsilon {g.epsilon:.4g}, acceptance "
                f"{g.acceptance_rate:.3g} ({int(g.simulations)} simulations), ESS {g.ess:.1f}"
            )

    history, reason = run_generations(
        calibration,
        out / "history.db",
        executor=executor,
        progress=progress,
        on_generation=report,
    )
    say(f"stopped: {reason}")
    posterior = res.posterior_table(history, calibration)
    _write_csv(posterior, out / "posterior.csv")
    generations = res.generations_table(history)
    _write_csv(generations, out / "generations.csv")
    res.plot_generations(generations, out / "generations.png")
    how = (
        f"ABC-SMC (pyabc), population {s.population}, "
        f"{calibration.spec.model.replicates} run(s) per particle, seed "
        f"{calibration.spec.seed}. Stopped: {reason}."
    )
    body = [
        "## Generations",
        "",
        "| generation | epsilon | acceptance | simulations | ESS |",
        "|---|---|---|---|---|",
    ]
    for _, g in generations.iterrows():
        body.append(
            f"| {int(g.generation)} | {_fmt(g.epsilon)} | {_fmt(g.acceptance_rate)} | "
            f"{int(g.simulations)} | {g.ess:.1f} |"
        )
    body += ["", "![generations](generations.png)", ""]
    return posterior, generations, reason, (how, body)


def _run_emulator(
    calibration: Calibration,
    out: Path,
    executor: Executor | None,
    progress: bool | None,
    say: Callable[[str], None],
) -> tuple[pd.DataFrame, pd.DataFrame, str, tuple[str, list[str]]]:
    """Gaussian-process history matching: posterior, waves, reason, report lines."""
    from tme_abm.calibration import results as res
    from tme_abm.calibration.design_runs import evaluate_design
    from tme_abm.calibration.emulator import history_match

    spec = calibration.spec
    e = spec.emulator
    say(
        f"calibration {spec.name}: {len(spec.parameters)} parameter(s), "
        f"{len(calibration.data)} data points, emulator: {e.design} runs then "
        f"{e.waves - 1} wave(s) of {e.wave_runs or e.design}, into {out}"
    )
    design_path = out / "design.csv"

    def evaluate(design: pd.DataFrame) -> pd.DataFrame:
        return evaluate_design(calibration, design, design_path, executor, progress, say)

    fit = history_match(spec.parameters, calibration.data, e, spec.seed, evaluate, say)
    say(f"stopped: {fit.reason}")
    _write_csv(fit.posterior, out / "posterior.csv")
    _write_csv(fit.waves, out / "waves.csv")
    _write_csv(fit.emulators, out / "emulators.csv")
    if len(fit.heldout):
        _write_csv(fit.heldout, out / "heldout.csv")
        res.plot_emulator_check(fit.heldout, calibration, out / "emulator_check.png")
    how = (
        f"Gaussian-process history matching (scikit-learn), {len(fit.runs)} runs in "
        f"{len(fit.waves)} wave(s), {spec.model.replicates} run(s) per design point, "
        f"implausibility cutoff {e.cutoff:g}, seed {spec.seed}. Stopped: {fit.reason}. "
        f"Posterior: {e.samples} weighted prior points inside the plausible region, "
        f"effective sample size {fit.ess:.0f}, resampled to {e.draws}."
    )
    body = [
        "## Waves",
        "",
        "| wave | runs | total runs | prior still plausible | its runs inside the earlier "
        "emulator's 95% band |",
        "|---|---|---|---|---|",
    ]
    for _, w in fit.waves.iterrows():
        body.append(
            f"| {int(w.wave)} | {int(w.runs)} | {int(w.total_runs)} | "
            f"{_fmt(w.plausible_fraction)} | "
            + ("-" if not math.isfinite(w.heldout_inside95) else f"{w.heldout_inside95:.0%}")
            + " |"
        )
    body += [
        "",
        "## Emulators",
        "",
        "| data point | runs | run-to-run sd | "
        + " | ".join(f"length scale {p.name}" for p in spec.parameters)
        + " |",
        "|---|---|---|" + "---|" * len(spec.parameters),
    ]
    for _, r in fit.emulators.iterrows():
        body.append(
            f"| {r.key} | {int(r.runs)} | {_fmt(r.noise_sd)} | "
            + " | ".join(_fmt(r[f"length_scale_{p.name}"]) for p in spec.parameters)
            + " |"
        )
    body += [
        "",
        "Length scales are in the prior's cumulative-probability coordinates (0-1): a "
        "scale well above 1 means the summary hardly depends on that parameter.",
        "",
    ]
    if len(fit.heldout):
        body += ["![emulator check](emulator_check.png)", ""]
    return fit.posterior, fit.waves, fit.reason, (how, body)


def _read_matching(path: Path, draws: pd.DataFrame) -> pd.DataFrame | None:
    """An earlier predictive.csv if it holds exactly these draws."""
    if not path.is_file():
        return None
    try:
        old = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if len(old) != len(draws) or list(old["seed"]) != list(draws["seed"]):
        return None
    return old


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def _write_report(
    out: Path,
    calibration: Calibration,
    intervals: pd.DataFrame,
    method: tuple[str, list[str]],
    predictive: pd.DataFrame | None,
) -> None:
    """``report.md``: the method in one line, the posterior, the method's own tables, the check."""
    spec = calibration.spec
    how, body = method
    lines = [f"# Calibration `{spec.name}`", ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [
        f"Scenario `{calibration.scenario_path.name}` with {len(spec.parameters)} fitted "
        f"parameter(s) and {len(calibration.data)} data points; {how}",
        "",
        "## Posterior",
        "",
        "| parameter | prior | prior 90% | posterior median | 90% CI | 95% CI | width ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in intervals.iterrows():
        units = f" {r.units}" if r.units else ""
        lines.append(
            f"| {r.parameter}{units} | {r.prior} | {_fmt(r.prior_ci90_low)}-"
            f"{_fmt(r.prior_ci90_high)} | {_fmt(r['median'])} | {_fmt(r.ci90_low)}-"
            f"{_fmt(r.ci90_high)} | {_fmt(r.ci95_low)}-{_fmt(r.ci95_high)} | "
            f"{_fmt(r.width_ratio)} |"
        )
    lines += [
        "",
        "Width ratio: the posterior's 90% interval over the prior's (log10 scale "
        "for log-uniform priors).",
        "",
        "![posterior](posterior.png)",
        "",
        *body,
    ]
    if predictive is not None:
        inside = int(predictive["inside95"].sum())
        lines += [
            "## Posterior predictive check",
            "",
            f"{inside} of {len(predictive)} observed values lie inside the model's "
            f"95% band ({int(predictive['runs'].min())} runs at posterior draws).",
            "",
            "| quantity | day | observed | model mean | model 95% | source |",
            "|---|---|---|---|---|---|",
        ]
        for _, r in predictive.iterrows():
            lines.append(
                f"| {r.quantity} | {r.time_day:g} | {_fmt(r.observed)} ± "
                f"{_fmt(r.uncertainty)} {r.units} | {_fmt(r['mean'])} | "
                f"{_fmt(r.low95)}-{_fmt(r.high95)} | {r.source} |"
            )
        lines += ["", "![predictive check](predictive.png)", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")


def format_intervals(intervals: pd.DataFrame) -> str:
    """The credible intervals as a plain-text table for the terminal."""
    head = f"{'parameter':<24} {'median':>10} {'90% CI':>23} {'prior 90%':>23} {'ratio':>6}"
    rows = [head]
    for _, r in intervals.iterrows():
        rows.append(
            f"{r.parameter:<24} {_fmt(r['median']):>10} "
            f"{_fmt(r.ci90_low) + ' - ' + _fmt(r.ci90_high):>23} "
            f"{_fmt(r.prior_ci90_low) + ' - ' + _fmt(r.prior_ci90_high):>23} "
            f"{_fmt(r.width_ratio):>6}"
        )
    return "\n".join(rows)
