"""Fit the MDSC influx rate to a measured MDSC share of tumour immune cells.

Usage::

    python tools/calibrate_mdsc.py [--sweep-dir output/sweeps/mdsc_recruitment]
                                   [--target 0.092] [--out docs/validation/calibration]

Runs (or reuses) the shipped sweep ``mdsc_recruitment`` -- the baseline at
six MDSC influx rates, four replicates each -- measures in every run file the
MDSC share of immune cells in the tumour sample at the last snapshot
(:func:`tme_abm.analysis.run_composition`: tumour region plus 100 µm), and
interpolates ``logit(mean share)`` linearly in ``log10(rate)`` between the
two rates that bracket the target share.  The 95% interval comes from a bootstrap that
resamples the replicates within each rate (2000 resamples, fixed seed).
Writes ``mdsc_recruitment.json`` and ``mdsc_recruitment.png`` to ``--out``.

Target: 9.2% (mean of 5 MMTV-PyMT tumours, SEM 1.7%; PMC4157098, Table 1),
the only verified measurement of the MDSC share of tumour CD45+ cells found.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tme_abm.analysis import run_composition

KEY = "cell_types.mdsc.recruitment.rate_per_vessel_per_min"
TARGET = 0.092
TARGET_SEM = 0.017
BOOTSTRAP = 2000
RNG_SEED = 20261205


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def fit_rate(log_rate: np.ndarray, share: np.ndarray, target: float) -> float:
    """``log10(rate)`` at which the mean share reaches ``target``.

    Linear interpolation of ``logit(mean share)`` against ``log10(rate)``
    between the two grid rates that bracket the target (no global curve is
    assumed: a straight logit line over the whole grid misfits its middle).
    NaN when the target lies outside the grid's range.
    """
    levels = np.unique(log_rate)
    y = _logit(np.array([share[log_rate == v].mean() for v in levels]))
    t = float(_logit(np.array(target)))
    for k in range(len(levels) - 1):
        if (y[k] - t) * (y[k + 1] - t) <= 0 and y[k] != y[k + 1]:
            return float(levels[k] + (t - y[k]) * (levels[k + 1] - levels[k]) / (y[k + 1] - y[k]))
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep-dir", type=Path, default=Path("output/sweeps/mdsc_recruitment"))
    ap.add_argument("--target", type=float, default=TARGET)
    ap.add_argument("--out", type=Path, default=Path("docs/validation/calibration"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    cmd = ["tme-abm", "sweep", "mdsc_recruitment", "--workers", str(args.workers),
           "--out", str(args.sweep_dir)]  # fmt: skip
    if subprocess.run(cmd).returncode != 0:
        print("calibrate_mdsc: the sweep failed", file=sys.stderr)
        return 1
    rows = list(csv.DictReader((args.sweep_dir / "summary.csv").open()))
    rate, share, count = [], [], []
    for r in rows:
        c = run_composition(r["file"])
        rate.append(float(r[KEY]))
        share.append(c["immune_share"]["mdsc"])
        count.append(c["counts"]["mdsc"])
    rate_a, share_a = np.array(rate), np.array(share)
    ok = (share_a > 0) & (share_a < 1)
    lr = np.log10(rate_a[ok])
    x = fit_rate(lr, share_a[ok], args.target)
    if not np.isfinite(x):
        print("calibrate_mdsc: the target share lies outside the swept range", file=sys.stderr)
        return 1
    rng = np.random.default_rng(RNG_SEED)
    levels = np.unique(lr)
    boots = []
    for _ in range(BOOTSTRAP):
        idx = np.concatenate(
            [rng.choice(np.flatnonzero(lr == v), size=int((lr == v).sum())) for v in levels]
        )
        boots.append(fit_rate(lr[idx], share_a[ok][idx], args.target))
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    result = {
        "parameter": KEY,
        "target_share": args.target,
        "target_source": "MMTV-PyMT, 9.2 +/- 1.7% (SEM, n = 5) of CD45+ cells; PMC4157098 Table 1",
        "method": "logit(mean share) interpolated linearly in log10(rate) between bracketing "
        "rates; bootstrap over replicates within each rate",
        "rate_per_vessel_per_min": 10**x,
        "ci95": [10**lo, 10**hi],
        "runs": [
            {"rate": q, "mdsc_share": s, "mdsc_in_tumour": int(n)}
            for q, s, n in zip(rate, share, count, strict=True)
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mdsc_recruitment.json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    ax.scatter(rate_a, share_a * 100, s=14, color="#d62728", label="runs (last snapshot)")
    levels = np.unique(lr)
    means = [share_a[ok][lr == v].mean() * 100 for v in levels]
    ax.plot(10**levels, means, color="k", lw=1, marker="_", label="mean per rate")
    ax.axhspan((args.target - TARGET_SEM) * 100, (args.target + TARGET_SEM) * 100,
               color="0.85", label="PyMT 9.2 ± 1.7% (SEM)")  # fmt: skip
    ax.axvline(10**x, color="#1f77b4", lw=1, label=f"fitted rate {10**x:.2g}")
    ax.axvspan(10**lo, 10**hi, color="#1f77b4", alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("MDSC influx (per vessel per min)")
    ax.set_ylabel("MDSC share of immune cells in tumour (%)")
    ax.legend(fontsize=8)
    fig.savefig(args.out / "mdsc_recruitment.png", dpi=120)
    print(f"MDSC influx for a {args.target:.1%} share: {10**x:.3g} per vessel per min "
          f"[95% CI {10**lo:.3g}, {10**hi:.3g}]")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
