"""The Gaussian-process emulator method of ``tme-abm calibrate``.

Against a model with a known posterior: two parameters (one on a
log-uniform prior), two outputs that are their sum and difference plus
Gaussian run-to-run noise, so the exact posterior is Gaussian with known
means and sds.  Then the command on the tiny scenario: its files, its
report, and the same posterior for any worker count and after an
interruption.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tme_abm.analysis.emulator import SummaryEmulator
from tme_abm.calibration.emulator import (
    history_match,
    implausibility,
    log_likelihood,
    sobol_unit,
    unit_to_natural,
)
from tme_abm.calibration.spec import DataPoint, EmulatorSettings, ParameterSpec

pytest.importorskip("sklearn")

PARAMS = [
    ParameterSpec(name="a", key="x.a", prior="uniform", low=-5.0, high=5.0),
    ParameterSpec(name="b", key="x.b", prior="log-uniform", low=0.01, high=100.0),
]
POINTS = [
    DataPoint("sum", 1.0, 1.0, 0.1, "", "analytic"),
    DataPoint("difference", 1.0, 0.2, 0.1, "", "analytic"),
]
NOISE_SD = 0.05


def _linear_model(design: pd.DataFrame, nan_every: int = 0) -> pd.DataFrame:
    """sum = a + log10 b, difference = a - log10 b, each + N(0, 0.05) from the run's seed."""
    out = design.copy()
    a = design["a"].to_numpy()
    lb = np.log10(design["b"].to_numpy())
    noise = np.array(
        [np.random.default_rng(int(s)).normal(0.0, NOISE_SD, 2) for s in design["seed"]]
    )
    out[POINTS[0].key] = a + lb + noise[:, 0]
    out[POINTS[1].key] = a - lb + noise[:, 1]
    if nan_every:
        out.loc[out["run"] % nan_every == 0, POINTS[0].key] = math.nan
    return out


def test_sobol_points_map_onto_each_prior() -> None:
    u = sobol_unit(2, 1000, 5)
    assert u.shape == (1000, 2) and (u >= 0).all() and (u < 1).all()
    x = unit_to_natural(PARAMS, u)
    assert (x[:, 0] >= -5).all() and (x[:, 0] <= 5).all()
    # log-uniform: log10 b is uniform on [-2, 2]
    assert abs(np.median(np.log10(x[:, 1]))) < 0.05
    assert np.allclose(unit_to_natural(PARAMS, np.array([[0.5, 0.5]])), [[0.0, 1.0]])
    assert np.array_equal(sobol_unit(2, 1000, 5), u)  # seeded


def test_implausibility_and_likelihood_by_hand() -> None:
    mean = np.array([[1.0, 0.5]])
    var = np.array([[0.03, 0.0]])
    obs, sd = np.array([1.2, 0.5]), np.array([0.1, 0.2])
    i = implausibility(mean, var, obs, sd)
    assert np.allclose(i, [[0.2 / math.sqrt(0.04), 0.0]])
    ll = log_likelihood(mean, var, obs, sd)
    expected = -0.5 * (0.04 / 0.04 + math.log(2 * math.pi * 0.04)) - 0.5 * math.log(
        2 * math.pi * 0.04
    )
    assert math.isclose(ll[0], expected)


def test_an_emulator_separates_the_trend_from_the_run_to_run_noise() -> None:
    rng = np.random.default_rng(1)
    u = sobol_unit(2, 64, 2)
    y = 3.0 * u[:, 0] + rng.normal(0.0, 0.1, 64)  # ignores u1
    e = SummaryEmulator(0).fit(u, y)
    assert 0.06 < math.sqrt(e.noise_var) < 0.14
    mean, var = e.predict(np.array([[0.5, 0.2], [0.5, 0.9]]))
    assert np.allclose(mean, 1.5, atol=0.08)
    assert (np.sqrt(var) < 0.08).all()  # the expected value is known better than one run
    assert e.length_scales[1] > 5 * e.length_scales[0]


def test_leave_one_out_is_the_refit_without_each_run() -> None:
    """The closed form (hyperparameters fixed) against 30 refits that leave a run out."""
    from sklearn.gaussian_process import GaussianProcessRegressor

    rng = np.random.default_rng(0)
    u = rng.random((30, 2))
    y = np.sin(4 * u[:, 0]) + rng.normal(0.0, 0.1, 30)
    e = SummaryEmulator(0).fit(u, y)
    values, mean, var = e.loo()
    assert np.allclose(values, y)
    mu, sd = e.gp._y_train_mean, e.gp._y_train_std
    for i in range(30):
        keep = np.arange(30) != i
        gp = GaussianProcessRegressor(kernel=e.gp.kernel_, optimizer=None)
        gp.fit(u[keep], (y[keep] - mu) / sd)
        m, s = gp.predict(u[i : i + 1], return_std=True)
        assert math.isclose(m[0] * sd + mu, mean[i], abs_tol=1e-9)
        assert math.isclose((s[0] * sd) ** 2, var[i], rel_tol=1e-6)
    assert 0.8 < e.q2() < 1.0 and 0.0 < e.noise_share() < 0.15


def test_history_matching_recovers_a_known_gaussian_posterior() -> None:
    settings = EmulatorSettings(design=40, waves=3, wave_runs=30, samples=16384, draws=2000)
    fit = history_match(PARAMS, POINTS, settings, 1, _linear_model)
    # exact posterior (flat prior far wider than it): a ~ N(0.6, s), log10 b ~ N(0.4, s)
    s = 0.1 / math.sqrt(2)
    a = fit.posterior["a"].to_numpy()
    lb = np.log10(fit.posterior["b"].to_numpy())
    assert abs(a.mean() - 0.6) < 0.02 and abs(lb.mean() - 0.4) < 0.02
    assert 0.85 * s < a.std() < 1.15 * s and 0.85 * s < lb.std() < 1.15 * s
    assert abs(np.corrcoef(a, lb)[0, 1]) < 0.1
    # the plausible region at cutoff 3: |a + lb - 1| and |a - lb - 0.2| below ~0.3,
    # a square of area 0.18 in a prior box of 10 x 4
    waves = fit.waves
    assert list(waves["runs"]) == [40, 30, 30]
    assert 0.7 * 0.18 / 40 < waves["plausible_fraction"].iloc[-1] < 1.3 * 0.18 / 40
    # every later-wave run was chosen inside it (with the emulator's slack)
    later = fit.runs[fit.runs["wave"] > 0]
    la = later["a"] + np.log10(later["b"])
    ld = later["a"] - np.log10(later["b"])
    assert (np.abs(la - 1.0) < 0.45).all() and (np.abs(ld - 0.2) < 0.45).all()
    # the emulator predicted the runs made after it, and saw the noise
    assert fit.heldout["inside95"].mean() > 0.85
    assert np.allclose(fit.emulators["noise_sd"], NOISE_SD, rtol=0.35)
    assert fit.ess > 500 and fit.reason == "3 wave(s)"


def test_runs_without_a_value_are_left_out_of_that_emulator() -> None:
    settings = EmulatorSettings(design=40, waves=2, wave_runs=20, samples=8192, draws=500)
    fit = history_match(PARAMS, POINTS, settings, 2, lambda d: _linear_model(d, nan_every=4))
    runs = fit.emulators.set_index("key")["runs"]
    assert runs[POINTS[1].key] == 60 and runs[POINTS[0].key] == 60 - 10 - 5
    assert abs(fit.posterior["a"].mean() - 0.6) < 0.05


# ------------------------------------------------------------------ the command

def _tiny_calibration(folder: Path) -> Path:
    """test_calibration's tiny two-parameter file and data, by the emulator."""
    from test_calibration import PLACEHOLDER, _rows, _write_calibration

    path = _write_calibration(folder, _rows(PLACEHOLDER), draws=3, extra='method = "emulator"')
    text = path.read_text().replace(
        "[abc]\npopulation = 12\ngenerations = 2\n",
        "[emulator]\ndesign = 16\nwaves = 2\nwave_runs = 8\nsamples = 4096\ndraws = 400\n",
    )
    assert "[emulator]" in text
    path.write_text(text, encoding="utf-8")
    return path


def test_the_command_gives_the_same_posterior_for_any_workers_and_after_an_interruption(
    tmp_path,
) -> None:
    from tme_abm.calibration.command import run_calibration

    path = _tiny_calibration(tmp_path)
    a = run_calibration(path, tmp_path / "a", workers=2, progress=False)

    class Stop(KeyboardInterrupt):
        pass

    def stop_at_wave_1(line: str) -> None:
        if line == "wave 1: 8 run(s)":
            raise Stop

    with pytest.raises(Stop):
        run_calibration(path, tmp_path / "c", workers=1, progress=False, log=stop_at_wave_1)
    assert len(pd.read_csv(tmp_path / "c" / "design.csv")) == 16
    assert not (tmp_path / "c" / "posterior.csv").exists()
    lines: list[str] = []
    run_calibration(path, tmp_path / "c", workers=1, progress=False, log=lines.append)
    assert "wave 0: 16 run(s) reused from design.csv" in lines
    for name in ("design.csv", "posterior.csv", "intervals.csv", "predictive.csv"):
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "a" / name).read_bytes(), name

    out = tmp_path / "a"
    for name in ("waves.csv", "emulators.csv", "heldout.csv", "report.md"):
        assert (out / name).stat().st_size > 0, name
    for name in ("posterior.png", "emulator_check.png", "predictive.png"):
        assert (out / name).stat().st_size > 10_000, name
    assert not (out / "history.db").exists()
    design = pd.read_csv(out / "design.csv")
    assert list(design.groupby("wave").size()) == [16, 8]
    assert all(design[c].dtype.kind == "i" for c in ("wave", "run", "seed"))
    assert design["tumour_divisions@0.5d"].notna().all()
    assert design["cd8_recruited@0.25d"].notna().all()
    report = (out / "report.md").read_text()
    assert "Gaussian-process history matching" in report and "## Waves" in report
    assert len(a.generations) == 2 and a.reason == "2 wave(s)"
    post = pd.read_csv(out / "posterior.csv")
    assert len(post) == 400 and math.isclose(post["weight"].sum(), 1.0)


def test_settings_of_the_other_method_are_refused(tmp_path) -> None:
    from test_calibration import _cli

    path = _tiny_calibration(tmp_path)
    text = path.read_text()
    path.write_text(text.replace("[emulator]", "[abc]\npopulation = 10\n\n[emulator]"))
    r = _cli("calibrate", str(path), "--check", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert '[abc]: settings of another method; this file uses method = "emulator"' in r.stderr
    assert "Traceback" not in r.stderr
    path.write_text(text.replace('method = "emulator"', 'method = "mcmc"'))
    r = _cli("calibrate", str(path), "--check", cwd=tmp_path)
    assert r.returncode == 2 and "method" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_recovery_of_three_baseline_parameters_by_the_emulator(tmp_path) -> None:
    """The ABC-SMC recovery problem of test_calibration (60 x 60, 3 days), by the emulator.

    ABC-SMC needs 735 simulations there; here 64 + 48 runs.
    """
    from test_calibration import RECOVERY_KEYS, RECOVERY_TRUTH, SLOW_CAL, _write_data

    from tme_abm.calibration import simulate_batch
    from tme_abm.calibration.command import run_calibration

    truth = RECOVERY_TRUTH
    keys = RECOVERY_KEYS
    text = SLOW_CAL.format().replace(
        '[abc]\npopulation = 60\ngenerations = 5\n',
        "[emulator]\ndesign = 64\nwaves = 2\nwave_runs = 48\n",
    ).replace('seed = 11\n', 'seed = 11\nmethod = "emulator"\n')
    assert "[emulator]" in text
    path = tmp_path / "cal.toml"
    path.write_text(text, encoding="utf-8")

    def rows(values: dict | None = None, sd: dict | None = None) -> list[dict]:
        return [
            {
                "quantity": q,
                "time_day": t,
                "value": 1.0 if values is None else values[f"{q}@{t:g}d"],
                "uncertainty": 1.0 if sd is None else sd[f"{q}@{t:g}d"],
                "units": u,
                "source": "simulated at known values",
            }
            for q, t, u in keys
        ]

    _write_data(tmp_path, rows())
    df = pd.DataFrame(
        simulate_batch([truth] * 6, calibration=path, entropy=7, workers=2, progress=False)
    )
    floor = {f"{q}@{t:g}d": 0.01 if u == "1/day" else 1.0 for q, t, u in keys}
    _write_data(
        tmp_path,
        rows(df.mean().to_dict(), {k: max(df[k].std(ddof=1), floor[k]) for k in floor}),
    )
    res = run_calibration(path, tmp_path / "fit", workers=2, progress=False, truth=truth)
    ci = res.intervals.set_index("parameter")
    for name, value in truth.items():
        assert ci.loc[name, "ci90_low"] <= value <= ci.loc[name, "ci90_high"], ci
        assert ci.loc[name, "width_ratio"] < 0.75, ci
    assert len(pd.read_csv(tmp_path / "fit" / "design.csv")) == 112
