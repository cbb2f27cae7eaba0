"""Saltelli designs and Sobol' indices: the design, the analysis, the command."""

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tme_abm.batch.plan import design_points, load_sweep, parse_sweep_file
from tme_abm.batch.sensitivity import (
    SensitivityError,
    SensitivityWarning,
    plot_sobol,
    short_name,
    sobol_indices,
)
from tme_abm.cli import main
from tme_abm.scenario import ScenarioError, load_scenario
from tme_abm.scenario.library import list_sweeps

PI = math.pi


def sweep_text(kind="saltelli", samples=8, params=(("a", 1.0, 3.0, "linear"),), seed=0,
               second_order=None, replicates=1, scenarios=("x.toml",)):
    listed = ", ".join(f'"{s}"' for s in scenarios)
    lines = [f'name = "s"\nscenarios = [{listed}]\nreplicates = {replicates}',
             f'[design]\nkind = "{kind}"\nsamples = {samples}\nseed = {seed}']
    if second_order is not None:
        lines.append(f"second_order = {'true' if second_order else 'false'}")
    for key, low, high, scale in params:
        lines.append(f'[[parameters]]\nkey = "{key}"\nlow = {low!r}\nhigh = {high!r}\n'
                     f'scale = "{scale}"')
    return "\n".join(lines) + "\n"


def write_folder(folder, text, model, *, status=None, replicates=1, noise=0.0):
    """A sweep folder as `tme-abm sweep` leaves it, with outputs from `model`.

    ``model(point) -> {output: value}``; replicate r of point i adds
    ``noise * (-1)**r * sin(i)``, which swamps the model's variation but
    cancels in the mean over an even number of replicates.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.toml").write_text(text)
    sweep = load_sweep(folder / "sweep.toml")
    points = design_points(sweep)
    keys = list(points[0])
    outs = list(model(points[0]))
    status = status or {}
    with (folder / "summary.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run_id", "scenario", "point", "replicate", "seed", *keys, "status",
                    *outs, "wall_s", "error", "file"])
        for scenario in (Path(s).stem for s in sweep.scenarios):
            for i, p in enumerate(points):
                y = model(p)
                for r in range(replicates):
                    run_id = f"{scenario}-p{i:04d}-r{r:03d}"
                    st = status.get(run_id, "ok")
                    shift = noise * (-1) ** r * math.sin(i)
                    vals = ["" if st != "ok" else repr(y[o] + shift) for o in outs]
                    w.writerow([run_id, scenario, i, r, 0, *(repr(p[k]) for k in keys), st,
                                *vals, 1.0, "" if st == "ok" else "boom", ""])
    return folder


def ishigami(p):
    x1, x2, x3 = p["x.x1"], p["x.x2"], p["x.x3"]
    return {"final_tumour": math.sin(x1) + 7 * math.sin(x2) ** 2
            + 0.1 * x3**4 * math.sin(x1)}


ISHIGAMI = tuple((f"x.x{k}", -PI, PI, "linear") for k in (1, 2, 3))


# ---------------------------------------------------------------- the design


def test_saltelli_design_size_bounds_log_scale_and_seed(tmp_path):
    params = (("a", 1.0, 3.0, "linear"), ("b", 0.001, 10.0, "log"))
    path = tmp_path / "s.toml"
    path.write_text(sweep_text(samples=64, params=params, seed=3))
    points = design_points(load_sweep(path))
    n, d = 64, 2
    assert len(points) == n * (d + 2)
    a = np.array([p["a"] for p in points])
    b = np.array([p["b"] for p in points])
    assert a.min() >= 1.0 and a.max() <= 3.0
    assert b.min() >= 0.001 and b.max() <= 10.0
    # SALib's order, per base sample: A, A with column j from B (j = 1..D), B
    blocks_a = a.reshape(n, d + 2)
    blocks_b = b.reshape(n, d + 2)
    assert np.array_equal(blocks_a[:, 1], blocks_a[:, -1])  # AB_1 takes a from B
    assert np.array_equal(blocks_b[:, 1], blocks_b[:, 0])   # ... and b from A
    assert np.array_equal(blocks_a[:, 2], blocks_a[:, 0])   # AB_2 keeps a from A
    assert np.array_equal(blocks_b[:, 2], blocks_b[:, -1])  # ... and takes b from B
    # log-uniform: the A column of b has one point in each of n equal strata of log(b)
    u = np.log(blocks_b[:, 0] / 0.001) / np.log(1e4)
    assert sorted(np.floor(u * n).astype(int)) == list(range(n))
    # a linear scale would put ~all points above 0.1 (99 % of the range)
    assert np.mean(b < 0.1) == pytest.approx(0.5, abs=0.1)
    # the same seed gives the same points, another seed other points
    assert design_points(load_sweep(path)) == points
    path.write_text(sweep_text(samples=64, params=params, seed=4))
    assert design_points(load_sweep(path)) != points


def test_saltelli_second_order_size(tmp_path):
    path = tmp_path / "s.toml"
    params = tuple((k, 0.0, 1.0, "linear") for k in "abc")
    path.write_text(sweep_text(samples=16, params=params, second_order=True))
    assert len(design_points(load_sweep(path))) == 16 * (2 * 3 + 2)
    path.write_text(sweep_text(samples=16, params=params, second_order=False))
    assert len(design_points(load_sweep(path))) == 16 * (3 + 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (sweep_text(samples=12), "power of two"),
        (sweep_text(params=()), "at least one"),
        (sweep_text(kind="lhs", second_order=True), "second_order is for a saltelli"),
        (sweep_text(samples=2**19, second_order=True,
                    params=tuple((k, 0.0, 1.0, "linear") for k in "abc")),
         "expands to 4,194,304 points"),
        ('name = "s"\nscenarios = ["x.toml"]\n[design]\nkind = "saltelli"\n'
         '[[parameters]]\nkey = "a"\nvalues = [1, 2]\n', "needs low/high"),
    ],
)
def test_saltelli_design_bad_input(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_sweep(path)


def test_example_sensitivity_sweep_expands_and_its_runs_validate():
    path = list_sweeps()["sensitivity"]
    sweep, runs = parse_sweep_file(path)
    d = len(sweep.parameters)
    assert sweep.design.kind == "saltelli" and d == 3
    assert len(runs) == sweep.design.samples * (d + 2) * sweep.replicates
    for p in sweep.parameters:
        values = [r.params[p.key] for r in runs]
        assert p.low <= min(values) and max(values) <= p.high
    for spec in runs[: d + 2]:  # every varied key addresses a real scenario value
        loaded = load_scenario(spec.scenario, spec.overrides)
        rule = loaded.scenario.rules[0]  # addressed by index: must stay tumour division
        assert (rule.cell_type, rule.signal, rule.behaviour) == ("tumour", "stat3", "division")
        assert rule.saturation == spec.params["rules.0.saturation"]


# -------------------------------------------------------------- the analysis


def test_ishigami_indices_match_the_analytic_values(tmp_path):
    folder = write_folder(tmp_path / "ish", sweep_text(samples=1024, params=ISHIGAMI, seed=5),
                          ishigami)
    df = sobol_indices(folder)
    assert list(df.columns) == ["scenario", "output", "parameter", "S1", "S1_conf", "ST",
                                "ST_conf"]
    assert list(df["parameter"]) == ["x.x1", "x.x2", "x.x3"]
    assert set(df["output"]) == {"final_tumour"} and set(df["scenario"]) == {"x"}
    # a = 7, b = 0.1 (Ishigami & Homma 1990; Sobol' & Levitan 1999)
    assert df["S1"].to_numpy() == pytest.approx([0.3139, 0.4424, 0.0], abs=0.04)
    assert df["ST"].to_numpy() == pytest.approx([0.5576, 0.4424, 0.2437], abs=0.04)
    assert (df["S1_conf"] > 0).all() and (df["S1_conf"] < 0.15).all()
    again = sobol_indices(folder)  # seeded bootstrap: the same intervals
    pd.testing.assert_frame_equal(df, again)


def test_linear_model_replicates_are_averaged_and_second_order_is_zero(tmp_path):
    params = (("x1", 0.0, 1.0, "linear"), ("x2", 0.0, 1.0, "linear"))
    text = sweep_text(samples=256, params=params, second_order=True, replicates=2,
                      scenarios=("one.toml", "two.toml"))

    def model(p):
        return {"final_tumour": 2 * p["x1"] + p["x2"], "final_cd8": 3.0,
                "cd8_treg_ratio": math.nan if p["x1"] > 0.5 else p["x2"]}

    # large replicate noise (+-50) that cancels in the mean of two replicates
    folder = write_folder(tmp_path / "lin", text, model, replicates=2, noise=50.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = sobol_indices(folder)
    said = [str(w.message) for w in caught if issubclass(w.category, SensitivityWarning)]
    assert any("final_cd8 is the same" in s for s in said)
    assert any("cd8_treg_ratio is NaN at" in s for s in said)
    assert set(df["output"]) == {"final_tumour"} and set(df["scenario"]) == {"one", "two"}
    first = df[df["parameter_2"].isna()]
    for scenario in ("one", "two"):
        rows = first[first["scenario"] == scenario]
        assert rows["S1"].to_numpy() == pytest.approx([0.8, 0.2], abs=0.03)
        assert rows["ST"].to_numpy() == pytest.approx([0.8, 0.2], abs=0.03)
    pairs = df[df["parameter_2"].notna()]
    assert len(pairs) == 2 and list(pairs["parameter_2"]) == ["x2", "x2"]
    assert pairs["S2"].abs().max() < 0.05  # additive: no interaction
    # explicit outputs: only those, in that order
    only = sobol_indices(folder, ["final_tumour"])
    assert set(only["output"]) == {"final_tumour"}


def test_a_grid_sweep_is_refused(tmp_path):
    text = 'name = "s"\nscenarios = ["x.toml"]\n[[parameters]]\nkey = "a"\nvalues = [1, 2]\n'
    folder = write_folder(tmp_path / "grid", text, lambda p: {"final_tumour": p["a"]})
    with pytest.raises(SensitivityError, match=r"design.kind is 'grid'.*saltelli.*sobol"):
        sobol_indices(folder)


def test_ishigami_through_an_emulator_of_a_noisy_space_filling_sweep(tmp_path):
    """256 Sobol' points, 2 replicates with scatter: the indices of the expected output."""
    text = sweep_text(kind="sobol", samples=256, params=ISHIGAMI, seed=3, replicates=2)
    folder = write_folder(tmp_path / "ish", text, ishigami, replicates=2, noise=1.0)
    df = sobol_indices(folder)
    assert list(df.columns) == ["scenario", "output", "parameter", "S1", "S1_conf", "ST",
                                "ST_conf", "runs", "emulator_q2", "noise_share"]
    assert df["S1"].to_numpy() == pytest.approx([0.3139, 0.4424, 0.0], abs=0.05)
    assert df["ST"].to_numpy() == pytest.approx([0.5576, 0.4424, 0.2437], abs=0.05)
    assert (df["runs"] == 512).all()
    # replicate scatter of +-sin(i): variance 0.5, beside the Ishigami variance 13.84
    assert df["noise_share"].iloc[0] == pytest.approx(0.5 / 14.34, abs=0.03)
    assert 0.75 < df["emulator_q2"].iloc[0] <= 1.0 - 0.8 * df["noise_share"].iloc[0]
    pd.testing.assert_frame_equal(df, sobol_indices(folder))  # seeded
    png = plot_sobol(df, tmp_path / "s.png")
    assert png.stat().st_size > 10_000


def test_an_lhs_sweep_with_nan_runs_is_emulated_from_the_others(tmp_path):
    params = (("x1", 0.1, 10.0, "log"), ("x2", 0.0, 1.0, "linear"))
    text = sweep_text(kind="lhs", samples=60, params=params, seed=2)

    def model(p):
        return {"final_tumour": math.log10(p["x1"]) + 0.1 * p["x2"],
                "final_cd8": math.nan if p["x2"] > 0.9 else p["x2"]}

    folder = write_folder(tmp_path / "lhs", text, model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = sobol_indices(folder)
    said = [str(w.message) for w in caught if issubclass(w.category, SensitivityWarning)]
    assert any("final_cd8 is NaN in" in s and "fitted to the others" in s for s in said)
    tumour = df[df["output"] == "final_tumour"]
    # log10(x1) is uniform on [-1, 1] (variance 1/3), 0.1 x2 has variance 1/1200
    assert tumour["S1"].to_numpy() == pytest.approx([0.9975, 0.0025], abs=0.02)
    cd8 = df[df["output"] == "final_cd8"]
    assert cd8["ST"].to_numpy() == pytest.approx([0.0, 1.0], abs=0.03)
    assert cd8["runs"].iloc[0] < 60


def test_the_command_on_a_space_filling_sweep_reports_the_emulators(tmp_path, capsys):
    params = (("x1", 0.0, 1.0, "linear"), ("x2", 0.0, 1.0, "linear"))
    text = sweep_text(kind="sobol", samples=32, params=params, seed=1)
    folder = write_folder(tmp_path / "s", text, lambda p: {"final_tumour": 3 * p["x1"] + p["x2"]})
    assert main(["sensitivity", str(folder)]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert "emulator Q2" in head and "noise share" in head
    written = pd.read_csv(folder / "sensitivity" / "sobol.csv")
    assert (written["emulator_q2"] > 0.99).all() and (written["runs"] == 32).all()
    assert written["S1"].to_numpy() == pytest.approx([0.9, 0.1], abs=0.02)


def test_failed_or_missing_runs_are_refused(tmp_path):
    text = sweep_text(samples=8, params=(("a", 0.0, 1.0, "linear"), ("b", 1.0, 2.0, "linear")))

    def model(p):
        return {"final_tumour": p["a"] + p["b"]}

    folder = write_folder(tmp_path / "f", text, model,
                          status={"x-p0003-r000": "failed", "x-p0007-r000": "pending"})
    with pytest.raises(SensitivityError,
                       match=r"2 of 32 runs not done \(1 failed, 1 pending: "
                             r"x-p0003-r000, x-p0007-r000\)"):
        sobol_indices(folder)
    ok = write_folder(tmp_path / "m", text, model)
    lines = (ok / "summary.csv").read_text().splitlines()
    (ok / "summary.csv").write_text("\n".join(lines[:-3]) + "\n")  # the last 3 runs lost
    with pytest.raises(SensitivityError, match="3 of 32 runs absent from summary.csv"):
        sobol_indices(ok)
    (ok / "summary.csv").write_text("\n".join(lines) + "\n")
    assert len(sobol_indices(ok)) == 2  # complete again: analysed
    with pytest.raises(SensitivityError, match="no output 'nope'"):
        sobol_indices(ok, ["nope"])
    (ok / "sweep.toml").write_text(text.replace("seed = 0", "seed = 9"))
    with pytest.raises(SensitivityError, match="differ from the design"):
        sobol_indices(ok)


def test_short_names_and_the_plot(tmp_path):
    assert short_name("cell_types.cd8.kill_rate_per_min") == "cd8.kill_rate_per_min"
    assert short_name("rules.0.saturation") == "rules.0.saturation"
    assert short_name("cell_types.cd8.stat3.inputs.0.half_max_ng_per_ml") == \
        "inputs.0.half_max_ng_per_ml"
    df = pd.DataFrame({"scenario": ["s"] * 4, "output": ["y"] * 2 + ["z"] * 2,
                       "parameter": ["a.b.c", "a.b.d"] * 2, "S1": [0.5, 0.2, 0.1, 0.0],
                       "S1_conf": [0.1] * 4, "ST": [0.6, 0.3, 0.2, 0.1], "ST_conf": [0.1] * 4})
    out = plot_sobol(df, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no Sobol"):
        plot_sobol(df.iloc[:0], tmp_path / "q.png")


# --------------------------------------------------------------- the command


def test_sensitivity_command(tmp_path, capsys):
    folder = write_folder(tmp_path / "ish", sweep_text(samples=256, params=ISHIGAMI), ishigami)
    assert main(["sensitivity", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "S1 ± conf" in out and "x.x2" in out and "wrote" in out
    written = pd.read_csv(folder / "sensitivity" / "sobol.csv")
    assert list(written["parameter"]) == ["x.x1", "x.x2", "x.x3"]
    png = folder / "sensitivity" / "sobol.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    before = png.stat().st_mtime_ns
    # existing output without --force: refused, nothing touched
    assert main(["sensitivity", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "already exist" in err and "--force" in err and "Traceback" not in err
    assert png.stat().st_mtime_ns == before
    assert main(["sensitivity", str(folder), "--force", "--output", "final_tumour"]) == 0
    capsys.readouterr()
    # --out elsewhere
    assert main(["sensitivity", str(folder), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "sobol.csv").is_file()
    capsys.readouterr()


@pytest.mark.parametrize("case", ["no folder", "not a sweep", "grid", "unknown output"])
def test_sensitivity_command_bad_input(tmp_path, capsys, case):
    folder = tmp_path / "f"
    args = []
    if case == "not a sweep":
        folder.mkdir()
    elif case == "grid":
        text = 'name = "s"\nscenarios = ["x.toml"]\n[[parameters]]\nkey = "a"\nvalues = [1, 2]\n'
        write_folder(folder, text, lambda p: {"final_tumour": p["a"]})
    elif case == "unknown output":
        write_folder(folder, sweep_text(samples=8), lambda p: {"final_tumour": p["a"]})
        args = ["--output", "nope"]
    assert main(["sensitivity", str(folder), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tme-abm: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    expected = {"no folder": "no such sweep folder", "not a sweep": "no summary.csv",
                "grid": "design.kind is 'grid'", "unknown output": "no output 'nope'"}[case]
    assert expected in err
    assert not (folder / "sensitivity").exists()
