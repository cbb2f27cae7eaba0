"""Do Tregs and MDSCs respond to their own STAT3, and does that change CD8 function?

Usage::

    python tools/stat3_responses.py [--sweep-dir output/sweeps/suppressive_stat3]
                                    [--out docs/validation/stat3_responses] [--workers 2]

Runs (or reuses) the shipped sweep ``suppressive_stat3`` -- the baseline and
the STAT3 knockouts in MDSCs only (``ko_mdsc``) and in Tregs only
(``ko_treg``), 8 replicates each, 200 x 200 sites, 7 days -- and compares each
knockout with the baseline on the suppressive cells themselves (their numbers,
their division, the arginase field) and on CD8 function (kills, divisions,
kills per CD8-day, CD8 cells in the tumour sample, final tumour).

Differences are knockout − baseline with a Welch 95% interval and p-value
(:func:`tme_abm.analysis.replicates.welch_ci`); replicates of different arms
are independent runs. Writes ``stat3_responses.md``, ``stat3_responses.json``
and ``stat3_responses.png`` (each metric relative to the baseline's mean) to
``--out``.

This is a measurement of the model's behaviour, not a comparison with
published effects: the rules that make these cells respond to STAT3 are
sourced in ``tme_abm/examples/baseline.toml``; how large the responses come out
is what this tool reports.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from tme_abm.analysis import run_composition
from tme_abm.analysis.replicates import mean_ci, welch_ci, welch_p

SWEEP = "suppressive_stat3"
BASELINE = "baseline"
ARMS = ("ko_mdsc", "ko_treg")

#: metric -> label; every value is per run.
METRICS = {
    "mdsc_final": "MDSCs on the lattice (last tick)",
    "arginase_mean": "arginase, mean over the week (ng/mL)",
    "treg_final": "Tregs on the lattice (last tick)",
    "treg_divisions": "Treg divisions (week)",
    "cd8_kills": "CD8 kills (week)",
    "cd8_divisions": "CD8 divisions (week)",
    "cd8_kills_per_cd8_day": "CD8 kills per CD8-day",
    "cd8_in_tumour": "CD8 cells in tumour sample (last snapshot)",
    "final_tumour": "tumour cells (last tick)",
}


def run_values(path: str | Path) -> dict[str, float]:
    """The metrics of :data:`METRICS` for one run file."""
    with h5py.File(path, "r", locking=False) as f:
        t = f["timeseries"]
        # CD8-days: the count integrated over the run (tick_time is in minutes)
        n_cd8 = t["count_cd8"][:].astype(np.float64)
        cd8_days = float(np.sum(0.5 * (n_cd8[1:] + n_cd8[:-1]) * np.diff(t["tick_time"][:])))
        cd8_days /= 1440.0
        kills = float(t["kills_cd8"][:].sum())
        values = {
            "mdsc_final": float(t["count_mdsc"][-1]),
            "arginase_mean": float(t["field_mean_arginase"][:].mean()),
            "treg_final": float(t["count_treg"][-1]),
            "treg_divisions": float(t["divisions_treg"][:].sum()),
            "cd8_kills": kills,
            "cd8_divisions": float(t["divisions_cd8"][:].sum()),
            "cd8_kills_per_cd8_day": kills / cd8_days if cd8_days > 0 else float("nan"),
            "final_tumour": float(t["count_tumour"][-1]),
        }
    values["cd8_in_tumour"] = float(run_composition(path)["counts"]["cd8"])
    return values


def collect(summary_csv: Path) -> dict[str, list[dict[str, float]]]:
    """:func:`run_values` of every finished run (run now or reused) of each arm."""
    by_arm: dict[str, list[dict[str, float]]] = {BASELINE: [], **{a: [] for a in ARMS}}
    with summary_csv.open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r["scenario"] in by_arm and r["status"] in ("ok", "reused"):
                by_arm[r["scenario"]].append(run_values(r["file"]))
    return by_arm


def compare(by_arm: dict[str, list[dict[str, float]]]) -> list[dict]:
    """Per knockout arm and metric: means with CIs, and the Welch difference."""
    base = by_arm[BASELINE]
    rows = []
    for arm in ARMS:
        for key, label in METRICS.items():
            a = [r[key] for r in by_arm[arm]]
            b = [r[key] for r in base]
            ma, ha, na = mean_ci(a)
            mb, hb, nb = mean_ci(b)
            w = welch_ci(a, b)
            rows.append(
                {
                    "arm": arm,
                    "metric": key,
                    "label": label,
                    "mean_arm": ma,
                    "ci_arm": [ma - ha, ma + ha],
                    "n_arm": na,
                    "mean_baseline": mb,
                    "ci_baseline": [mb - hb, mb + hb],
                    "n_baseline": nb,
                    "diff": w["diff"],
                    "diff_ci": [w["lo"], w["hi"]],
                    "p_welch": welch_p(a, b),
                    "ratio": ma / mb if mb else float("nan"),
                }
            )
    return rows


def _g(x: float) -> str:
    return f"{x:.3g}"


def markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# Tregs and MDSCs respond to their STAT3",
        "",
        f"Generated by `tools/stat3_responses.py`; do not edit by hand. Command: `{command}`.",
        "",
        "STAT3 knocked out in MDSCs only (`ko_mdsc`) or in Tregs only (`ko_treg`), against "
        "the baseline; 200 x 200 sites, 7 days. Means over replicates with their 95% t "
        "intervals; the difference is knockout − baseline with a Welch 95% interval. A "
        "response is **detected** when that interval excludes 0.",
        "",
        "| knockout | metric | knockout [95% CI] | baseline [95% CI] | ratio | "
        "difference [95% CI] | p (Welch) | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["diff_ci"]
        detected = np.isfinite(lo) and (lo > 0 or hi < 0)
        verdict = "**detected**" if detected else "no detectable change"
        lines.append(
            f"| {r['arm']} | {r['label']} | {_g(r['mean_arm'])} [{_g(r['ci_arm'][0])}, "
            f"{_g(r['ci_arm'][1])}] | {_g(r['mean_baseline'])} [{_g(r['ci_baseline'][0])}, "
            f"{_g(r['ci_baseline'][1])}] | {_g(r['ratio'])} | {_g(r['diff'])} [{_g(lo)}, "
            f"{_g(hi)}] | {_g(r['p_welch'])} | {verdict} |"
        )
    lines += ["", "![responses](stat3_responses.png)", ""]
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(METRICS)
    fig, ax = plt.subplots(figsize=(8.0, 4.4), layout="constrained")
    colours = {"ko_mdsc": "#d62728", "ko_treg": "#9467bd"}
    for k, arm in enumerate(ARMS):
        sub = {r["metric"]: r for r in rows if r["arm"] == arm}
        y = np.arange(len(keys)) + (k - 0.5) * 0.3
        mb = np.array([sub[m]["mean_baseline"] for m in keys])
        rel = np.array([sub[m]["diff"] for m in keys]) / mb
        lo = np.array([sub[m]["diff_ci"][0] for m in keys]) / mb
        hi = np.array([sub[m]["diff_ci"][1] for m in keys]) / mb
        ax.errorbar(100 * rel, y, xerr=[100 * (rel - lo), 100 * (hi - rel)], fmt="o",
                    color=colours[arm], label=arm, capsize=2)  # fmt: skip
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(np.arange(len(keys)), [METRICS[m] for m in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("knockout − baseline, % of the baseline mean (95% Welch CI)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep-dir", type=Path, default=Path(f"output/sweeps/{SWEEP}"))
    ap.add_argument("--out", type=Path, default=Path("docs/validation/stat3_responses"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    cmd = ["tme-abm", "sweep", SWEEP, "--workers", str(args.workers), "--out", str(args.sweep_dir)]
    if subprocess.run(cmd).returncode != 0:
        print("stat3_responses: the sweep failed", file=sys.stderr)
        return 1
    by_arm = collect(args.sweep_dir / "summary.csv")
    missing = [a for a, v in by_arm.items() if len(v) < 2]
    if missing:
        print(f"stat3_responses: fewer than 2 runs of {', '.join(missing)}", file=sys.stderr)
        return 1
    rows = compare(by_arm)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python tools/stat3_responses.py " + " ".join(argv or sys.argv[1:])
    (args.out / "stat3_responses.md").write_text(markdown(rows, command.strip()))
    (args.out / "stat3_responses.json").write_text(json.dumps(rows, indent=1))
    figure(rows, args.out / "stat3_responses.png")
    for r in rows:
        lo, hi = r["diff_ci"]
        print(f"{r['arm']:8s} {r['label']:45s} {_g(r['mean_baseline']):>8s} -> "
              f"{_g(r['mean_arm']):>8s}  diff {_g(r['diff'])} [{_g(lo)}, {_g(hi)}]")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
