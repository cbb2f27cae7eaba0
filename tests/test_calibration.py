"""tme-abm calibrate and the simulate API: checks, summaries, seeds, resume, recovery.

The quick recovery test fits two parameters of the tiny test scenario to data
simulated at known values; the slow one (``-m slow``) three parameters of the
baseline on a 60 x 60 lattice.  Both assert that the true values lie inside
the 90% credible intervals and that the posteriors are narrower than the
priors.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tme_abm.analysis.composition import immune_composition
from tme_abm.analysis.spatial import _run_layout
from tme_abm.calibration import CalibrationError, load_calibration, simulate, simulate_batch
from tme_abm.calibration.simulate import replicate_seeds
from tme_abm.calibration.spec import DATA_COLUMNS, DataPoint, SummarySpec
from tme_abm.calibration.summaries import evaluate
from tme_abm.io import read_snapshot, read_timeseries

pytest.importorskip("pyabc")

TINY = Path(__file__).parent / "data" / "tiny.toml"
TRUTH = {"tumour_division": 2e-3, "cd8_influx": 1e-3}


def _write_data(folder: Path, rows: list[dict]) -> None:
    """``folder/data.csv``: the observed-data table, columns as the loader reads them."""
    with (folder / "data.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(DATA_COLUMNS))
        w.writeheader()
        w.writerows(rows)


def _write_calibration(
    folder: Path,
    data_rows: list[dict],
    *,
    population: int = 12,
    generations: int = 2,
    draws: int = 4,
    extra: str = "",
) -> Path:
    _write_data(folder, data_rows)
    text = f'''name = "tiny_fit"
seed = 3
{extra}
[model]
scenario = "{TINY.as_posix()}"
overrides = {{ "output.cells" = false, "cell_types.cd8.kill_rate_per_min" = 0.0 }}

[[parameters]]
name = "tumour_division"
key = "cell_types.tumour.division_rate_per_min"
prior = "log-uniform"
low = 3e-4
high = 1e-2
units = "1/min"

[[parameters]]
name = "cd8_influx"
key = "cell_types.cd8.recruitment.rate_per_vessel_per_min"
prior = "log-uniform"
low = 1e-4
high = 1e-2

[data]
file = "data.csv"

[summaries.tumour_divisions]
kind = "events"
event = "divisions"
types = ["tumour"]

[summaries.cd8_recruited]
kind = "events"
event = "recruited"
types = ["cd8"]

[abc]
population = {population}
generations = {generations}

[check]
draws = {draws}
'''
    path = folder / "cal.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _rows(values: dict[str, float], sd: dict[str, float] | None = None) -> list[dict]:
    rows = []
    for key, v in values.items():
        q, _, t = key.partition("@")
        rows.append(
            {
                "quantity": q,
                "time_day": t.rstrip("d"),
                "value": v,
                "uncertainty": (sd or {}).get(key, max(1.0, 0.1 * v)),
                "units": "cells",
                "source": "simulated at known values",
            }
        )
    return rows


PLACEHOLDER = {
    "tumour_divisions@0.25d": 40.0,
    "tumour_divisions@0.5d": 110.0,
    "cd8_recruited@0.25d": 4.0,
    "cd8_recruited@0.5d": 9.0,
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tme_abm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


# ------------------------------------------------------------------ checks


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("seed = 3", "seed = 3\nfoo = 1"), "foo: unknown key"),
        (
            ('prior = "log-uniform"\nlow = 3e-4', 'prior = "logunif"\nlow = 3e-4'),
            "parameters.0.prior",
        ),
        (("low = 3e-4", "low = 3e-1"), "parameters.0: low (0.3) must be below high"),
        (
            ("cell_types.tumour.division_rate_per_min", "cell_types.tumour.divison_rate"),
            "parameters.0 (cell_types.tumour.divison_rate): unknown key",
        ),
        (
            ("cell_types.tumour.division_rate_per_min", "rules.99.saturation"),
            "cannot descend into 'rules.99'",
        ),
        (('types = ["cd8"]', 'types = ["cd9"]'), "summaries.cd8_recruited.types: 'cd9'"),
        (('file = "data.csv"', 'file = "nodata.csv"'), "nodata.csv: no such data file"),
        (("population = 12", "population = 1"), "abc.population"),
        (
            (
                'prior = "log-uniform"\nlow = 1e-4\nhigh = 1e-2',
                'prior = "normal"\nmean = 1e-3\nsd = 1e-3',
            ),
            "parameters.1: the prior reaches -0.00209023, which the scenario rejects",
        ),
        (
            ('kind = "events"\nevent = "recruited"', 'kind = "events"\nevent = "arrived"'),
            "summaries.cd8_recruited.event",
        ),
    ],
)
def test_bad_calibration_files_exit_2_naming_the_key(tmp_path, edit, needle) -> None:
    path = _write_calibration(tmp_path, _rows(PLACEHOLDER))
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    r = _cli("calibrate", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_bad_data_rows_are_named_by_line(tmp_path) -> None:
    rows = _rows(PLACEHOLDER)
    rows[0]["uncertainty"] = 0
    rows[1]["time_day"] = 3
    rows[2]["units"] = "mm2"
    rows[3]["quantity"] = "cd4_recruited"
    path = _write_calibration(tmp_path, rows)
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    text = info.value.format()
    assert "data.csv row 2: uncertainty must be > 0" in text
    assert "data.csv row 3 (tumour_divisions at day 3): after the end of the run" in text
    assert "units 'mm2', but summary 'cd8_recruited' is in 'cells'" in text
    assert "no [summaries.cd4_recruited]" in text


def test_a_folder_of_another_calibration_is_refused(tmp_path) -> None:
    path = _write_calibration(tmp_path, _rows(PLACEHOLDER), population=4, generations=1, draws=0)
    out = tmp_path / "out"
    assert _cli("calibrate", str(path), "--out", str(out), "--quiet", cwd=tmp_path).returncode == 0
    before = (out / "posterior.csv").read_bytes()
    path.write_text(path.read_text().replace("seed = 3", "seed = 4"))
    r = _cli("calibrate", str(path), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2
    assert "holds a calibration with another calibration text" in r.stderr
    assert (out / "posterior.csv").read_bytes() == before


# ---------------------------------------------------------------- summaries


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from tme_abm.runner import run_scenario
    from tme_abm.scenario import load_scenario

    path = tmp_path_factory.mktemp("run") / "tiny.h5"
    run_scenario(load_scenario(TINY), path, seed=5, progress=False)
    return path


def test_summaries_read_what_the_run_file_holds(tiny_run) -> None:
    ts = read_timeseries(tiny_run)
    i = int(np.argmin(np.abs(ts["time"] - 360.0)))
    specs = {
        "n": SummarySpec(kind="count", types=["tumour", "cd8"]),
        "born": SummarySpec(kind="events", types=["tumour"], event="divisions"),
        "ratio": SummarySpec(kind="ratio", types=["cd8"], of=["tumour"]),
        "fold": SummarySpec(kind="count", types=["tumour"], relative_to_day=0),
        "share": SummarySpec(kind="immune_share", types=["cd8"]),
        "rate": SummarySpec(kind="growth_rate", types=["tumour"], from_day=0.1),
    }
    pts = [DataPoint(q, 0.25, 1.0, 1.0, "", "") for q in specs]
    got = evaluate(tiny_run, specs, pts)
    assert got["n@0.25d"] == ts["count_tumour"][i] + ts["count_cd8"][i]
    assert got["born@0.25d"] == ts["divisions_tumour"][: i + 1].sum()
    assert got["ratio@0.25d"] == pytest.approx(ts["count_cd8"][i] / ts["count_tumour"][i])
    assert got["fold@0.25d"] == pytest.approx(ts["count_tumour"][i] / ts["count_tumour"][0])
    # the growth rate of a series that is exactly exponential is its exponent
    t = ts["time"]
    window = (t >= 0.1 * 1440 - 2.5) & (t <= 360 + 2.5)
    slope = np.polyfit(t[window] / 1440, np.log(ts["count_tumour"][window]), 1)[0]
    assert got["rate@0.25d"] == pytest.approx(slope)
    with h5py.File(tiny_run) as f:
        k = int(np.argmin(np.abs(f["time"][:] - 360.0)))
    snap = read_snapshot(tiny_run, k)
    _, site_um, codes = _run_layout(tiny_run)
    comp = immune_composition(snap["cell_type"], codes, site_um)
    assert got["share@0.25d"] == pytest.approx(comp["counts"]["cd8"] / comp["n_immune"])


def test_growth_rate_of_exponential_counts_is_the_exponent(tmp_path) -> None:
    """Analytic check: counts N0 exp(r t) give back r."""
    path = tmp_path / "fake.h5"
    t = np.arange(0, 2 * 1440 + 1, 5.0)
    counts = np.round(100 * np.exp(0.3 * t / 1440))
    from tme_abm.calibration.summaries import _RunReader, _value

    run = _RunReader.__new__(_RunReader)
    run.path, run.dt_min = path, 5.0
    run.series = {"time": t, "count_tumour": counts}
    r = _value(SummarySpec(kind="growth_rate", types=["tumour"]), run, 2.0)
    assert r == pytest.approx(0.3, abs=2e-3)


# ------------------------------------------------------------------- simulate


def test_simulate_matches_tme_abm_run(tmp_path) -> None:
    """A one-replicate simulation at seed S is the run `tme-abm run --seed S --set ...`."""
    got = simulate({"cell_types.tumour.division_rate_per_min": 3e-3}, 11, scenario=TINY)
    out = tmp_path / "r.h5"
    r = _cli(
        "run",
        str(TINY),
        "--seed",
        "11",
        "--set",
        "cell_types.tumour.division_rate_per_min=0.003",
        "--out",
        str(out),
        "--quiet",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    ts = read_timeseries(out)
    assert got["final_tumour"] == ts["count_tumour"][-1]
    assert replicate_seeds(11, 1) == [11]
    seeds = replicate_seeds(11, 3)
    assert len(set(seeds)) == 3 and seeds == replicate_seeds(11, 3)


def test_simulate_batch_is_in_order_and_independent_of_workers(tmp_path) -> None:
    path = _write_calibration(tmp_path, _rows(PLACEHOLDER))
    sets = [{"tumour_division": d, "cd8_influx": 1e-3} for d in (5e-4, 2e-3, 8e-3)]
    one = simulate_batch(sets, calibration=path, workers=1, progress=False)
    two = simulate_batch(sets, calibration=path, workers=2, progress=False)
    assert one == two
    assert one[0]["tumour_divisions@0.5d"] < one[2]["tumour_divisions@0.5d"]
    with pytest.raises(KeyError, match="missing cd8_influx"):
        simulate({"tumour_division": 1e-3}, 1, calibration=path)


# ------------------------------------------------------ reproducible, resumable


def test_posterior_is_identical_for_any_worker_count_and_after_interruption(tmp_path) -> None:
    from tme_abm.calibration.command import run_calibration

    path = _write_calibration(tmp_path, _rows(PLACEHOLDER), population=10, generations=2, draws=3)
    a = run_calibration(path, tmp_path / "a", workers=1, progress=False)
    b = run_calibration(path, tmp_path / "b", workers=2, progress=False)

    class Stop(KeyboardInterrupt):
        pass

    def stop_after_first(line: str) -> None:
        if line.startswith("generation 0"):
            raise Stop

    with pytest.raises(Stop):
        run_calibration(path, tmp_path / "c", workers=2, progress=False, log=stop_after_first)
    assert not (tmp_path / "c" / "posterior.csv").exists()
    c = run_calibration(path, tmp_path / "c", workers=2, progress=False)
    for name in ("posterior.csv", "predictive.csv"):
        ref = (tmp_path / "a" / name).read_bytes()
        assert (tmp_path / "b" / name).read_bytes() == ref
        assert (tmp_path / "c" / name).read_bytes() == ref
    assert len(a.generations) == 2 and b.reason == c.reason == "2 generations"
    log = (tmp_path / "c" / "calibration.log").read_text()
    assert log.count("generation 0:") == 1  # the resumed run did not redo generation 0


# ------------------------------------------------------------------ recovery


def test_recovery_of_two_parameters_on_the_tiny_lattice(tmp_path) -> None:
    """Data simulated at known values is fitted: truth in the 90% CIs, posteriors narrower."""
    from tme_abm.calibration.command import run_calibration

    path = _write_calibration(tmp_path, _rows(PLACEHOLDER), population=40, generations=4, draws=10)
    runs = simulate_batch([TRUTH] * 6, calibration=path, entropy=99, workers=2, progress=False)
    df = pd.DataFrame(runs)
    sd = {k: max(float(df[k].std(ddof=1)), 1.0) for k in df}
    _write_calibration(
        tmp_path, _rows(df.mean().to_dict(), sd), population=40, generations=4, draws=10
    )
    res = run_calibration(path, tmp_path / "fit", workers=2, progress=False, truth=TRUTH)
    ci = res.intervals.set_index("parameter")
    for name, value in TRUTH.items():
        assert ci.loc[name, "ci90_low"] <= value <= ci.loc[name, "ci90_high"], ci
        assert ci.loc[name, "width_ratio"] < 0.8, ci
    assert (tmp_path / "fit" / "posterior.png").stat().st_size > 10_000
    assert res.predictive is not None and res.predictive["inside95"].all()
    post = pd.read_csv(tmp_path / "fit" / "posterior.csv")
    assert math.isclose(post["weight"].sum(), 1.0)
    gens = pd.read_csv(tmp_path / "fit" / "generations.csv")
    assert list(gens["generation"]) == [0, 1, 2, 3]
    assert (np.diff(gens["epsilon"]) < 0).all()


SLOW_CAL = """name = "baseline_recovery"
seed = 11

[model]
scenario = "baseline"
overrides = {{ "domain.shape" = [60, 60], "domain.duration_days" = 3, "output.cells" = false }}

[[parameters]]
name = "tumour_stat3_division"
key = "rules.0.saturation"
prior = "log-uniform"
low = 1.2e-4
high = 1.92e-3

[[parameters]]
name = "mdsc_influx"
key = "cell_types.mdsc.recruitment.rate_per_vessel_per_min"
prior = "log-uniform"
low = 2e-5
high = 2e-3

[[parameters]]
name = "monocyte_influx"
key = "cell_types.m1.recruitment.rate_per_vessel_per_min"
prior = "log-uniform"
low = 5e-6
high = 5e-4

[data]
file = "data.csv"

[summaries.tumour_growth_rate]
kind = "growth_rate"
types = ["tumour"]

[summaries.mdsc_recruited]
kind = "events"
event = "recruited"
types = ["mdsc"]

[summaries.m1_recruited]
kind = "events"
event = "recruited"
types = ["m1"]

[abc]
population = 60
generations = 5

[check]
draws = 20
"""


#: The slow recovery problem: true values, and the (quantity, day, units) fitted.
RECOVERY_TRUTH = {"tumour_stat3_division": 4.8e-4, "mdsc_influx": 2e-4, "monocyte_influx": 5e-5}
RECOVERY_KEYS = [
    ("tumour_growth_rate", 3, "1/day"),
    ("mdsc_recruited", 1.5, "cells"),
    ("mdsc_recruited", 3, "cells"),
    ("m1_recruited", 1.5, "cells"),
    ("m1_recruited", 3, "cells"),
]


@pytest.mark.slow
def test_recovery_of_three_baseline_parameters(tmp_path) -> None:
    """Three assumed baseline rates are recovered from day-1.5 and day-3 data (60 x 60)."""
    from tme_abm.calibration.command import run_calibration

    truth = RECOVERY_TRUTH
    keys = RECOVERY_KEYS

    def write(rows: list[dict]) -> Path:
        _write_data(tmp_path, rows)
        path = tmp_path / "cal.toml"
        path.write_text(SLOW_CAL.format(), encoding="utf-8")
        return path

    write(
        [
            {
                "quantity": q,
                "time_day": t,
                "value": 1.0,
                "uncertainty": 1.0,
                "units": u,
                "source": "placeholder",
            }
            for q, t, u in keys
        ]
    )
    path = tmp_path / "cal.toml"
    df = pd.DataFrame(
        simulate_batch([truth] * 6, calibration=path, entropy=7, workers=2, progress=False)
    )
    write(
        [
            {
                "quantity": q,
                "time_day": t,
                "value": df[f"{q}@{t:g}d"].mean(),
                "uncertainty": max(df[f"{q}@{t:g}d"].std(ddof=1), 0.01 if u == "1/day" else 1.0),
                "units": u,
                "source": "simulated at known values",
            }
            for q, t, u in keys
        ]
    )
    res = run_calibration(path, tmp_path / "fit", workers=2, progress=False, truth=truth)
    ci = res.intervals.set_index("parameter")
    for name, value in truth.items():
        assert ci.loc[name, "ci90_low"] <= value <= ci.loc[name, "ci90_high"], ci
        assert ci.loc[name, "width_ratio"] < 0.75, ci


def test_gaussian_likelihood_tempers_down_to_one(tmp_path) -> None:
    """distance = "gaussian": pyabc's stochastic acceptor ends at temperature 1."""
    from tme_abm.calibration.command import run_calibration

    path = _write_calibration(
        tmp_path, _rows(PLACEHOLDER), population=8, generations=2, draws=0, extra=""
    )
    path.write_text(
        path.read_text().replace("generations = 2", 'generations = 2\ndistance = "gaussian"')
    )
    res = run_calibration(path, tmp_path / "g", workers=2, progress=False)
    eps = res.generations["epsilon"].to_numpy()
    assert eps[-1] == 1.0 and eps[0] > 1.0
    assert res.predictive is None
    post = pd.read_csv(tmp_path / "g" / "posterior.csv")
    assert len(post) == 8 and math.isclose(post["weight"].sum(), 1.0)
