"""The statistics and metrics of tools/validate.py, against known answers."""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import stats

TOOL = Path(__file__).resolve().parents[1] / "tools" / "validate.py"


def _load_tool():
    name = "tme_abm_tools_validate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


V = _load_tool()


# ------------------------------------------------------------------ Welch interval

A = np.array([12.1, 14.3, 11.8, 13.9, 15.2, 12.7, 13.1, 14.8])
B = np.array([10.2, 9.1, 11.5, 10.8, 8.7, 12.9, 9.9])


def test_welch_ci_by_hand():
    # hand computation: se^2 = va/na + vb/nb, Welch-Satterthwaite df, t quantile
    va, vb = A.var(ddof=1) / A.size, B.var(ddof=1) / B.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (A.size - 1) + vb**2 / (B.size - 1))
    half = stats.t.ppf(0.975, df) * se
    diff = A.mean() - B.mean()
    w = V.welch_ci(A, B)
    assert w["diff"] == pytest.approx(diff, rel=1e-12)
    assert w["se"] == pytest.approx(se, rel=1e-12)
    assert w["df"] == pytest.approx(df, rel=1e-12)
    assert (w["lo"], w["hi"]) == pytest.approx((diff - half, diff + half), rel=1e-12)


def test_welch_ci_and_p_match_scipy():
    res = stats.ttest_ind(A, B, equal_var=False)
    ci = res.confidence_interval(confidence_level=0.95)
    w = V.welch_ci(A, B)
    assert (w["lo"], w["hi"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert V.welch_p(A, B) == pytest.approx(res.pvalue, rel=1e-10)
    ci90 = res.confidence_interval(confidence_level=0.90)
    w90 = V.welch_ci(A, B, level=0.90)
    assert (w90["lo"], w90["hi"]) == pytest.approx((ci90.low, ci90.high), rel=1e-10)


def test_welch_ci_is_antisymmetric_and_drops_nan():
    w, r = V.welch_ci(A, B), V.welch_ci(B, A)
    assert (r["lo"], r["hi"]) == pytest.approx((-w["hi"], -w["lo"]))
    with_nan = V.welch_ci(np.r_[A, np.nan], B)
    assert with_nan["lo"] == pytest.approx(w["lo"])


def test_welch_degenerate_samples():
    same = V.welch_ci([3.0, 3.0, 3.0], [1.0, 1.0])
    assert (same["diff"], same["lo"], same["hi"]) == (2.0, 2.0, 2.0)
    assert V.welch_p([3.0, 3.0], [1.0, 1.0]) == 0.0
    assert V.welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0
    short = V.welch_ci([1.0], [1.0, 2.0])
    assert math.isnan(short["lo"]) and math.isnan(short["hi"])
    assert math.isnan(V.welch_p([1.0], [1.0, 2.0]))


def test_mean_ci_matches_scipy_t_interval():
    m, lo, hi = V.mean_ci(A)
    ref = stats.t.interval(0.95, A.size - 1, loc=A.mean(), scale=stats.sem(A))
    assert m == pytest.approx(A.mean())
    assert (lo, hi) == pytest.approx(ref)
    x = np.stack([A, A * 2, A + 1], axis=1)
    mean, lo_c, hi_c = V.mean_ci_columns(x)
    assert lo_c[1] == pytest.approx(V.mean_ci(A * 2)[1])
    assert hi_c[2] == pytest.approx(V.mean_ci(A + 1)[2])


# -------------------------------------------------------------------- bootstrap


def test_bootstrap_ratio_ci_covers_known_ratio_and_is_reproducible():
    rng = np.random.default_rng(1)
    a = rng.normal(200.0, 20.0, 40)  # true ratio of means: 2
    b = rng.normal(100.0, 10.0, 40)
    r = V.bootstrap_ratio_ci(a, b)
    assert r["ratio"] == pytest.approx(a.mean() / b.mean())
    assert r["lo"] < 2.0 < r["hi"]
    assert r["lo"] < r["ratio"] < r["hi"]
    assert r["hi"] - r["lo"] < 0.3
    assert V.bootstrap_ratio_ci(a, b) == r  # fixed rng seed
    assert V.bootstrap_ratio_ci(a, b, seed=2) != r


def test_bootstrap_ratio_ci_coverage_near_nominal():
    # 300 synthetic experiments with 8 vs 8 values and true ratio 1.5: the
    # percentile interval should cover it in roughly 95% of them (percentile
    # bootstrap undercovers a little at n = 8)
    rng = np.random.default_rng(7)
    hits = 0
    trials = 300
    for k in range(trials):
        a = rng.normal(150.0, 15.0, 8)
        b = rng.normal(100.0, 10.0, 8)
        r = V.bootstrap_ratio_ci(a, b, n_resamples=2000, seed=k)
        hits += r["lo"] <= 1.5 <= r["hi"]
    assert 0.86 <= hits / trials <= 0.99


def test_bootstrap_ratio_degenerate():
    assert math.isnan(V.bootstrap_ratio_ci([1.0, 2.0], [0.0, 0.0])["ratio"])
    assert math.isnan(V.bootstrap_ratio_ci([], [1.0])["lo"])
    const = V.bootstrap_ratio_ci([4.0, 4.0, 4.0], [2.0, 2.0])
    assert (const["ratio"], const["lo"], const["hi"]) == (2.0, 2.0, 2.0)


# -------------------------------------------------------------------- Cohen's d


def test_cohens_d_known_values():
    assert V.cohens_d([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(-3.0)
    assert V.cohens_d([1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0, 4.0]) == 0.0
    # unequal sizes: pooled variance ((3-1)*1 + (5-1)*2.5) / 6 = 2, difference 1
    assert V.cohens_d([2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 4.0]) == pytest.approx(
        1.0 / math.sqrt(2.0)
    )
    assert V.cohens_d([1.0, 1.0], [0.0, 0.0]) == math.inf
    assert math.isnan(V.cohens_d([1.0], [0.0, 1.0]))


# ---------------------------------------------------------------------- verdict


@pytest.mark.parametrize(
    ("lo", "hi", "expected", "verdict"),
    [
        (-5.0, -1.0, "lower", "reproduced"),
        (1.0, 5.0, "higher", "reproduced"),
        (-5.0, 1.0, "lower", "not reproduced (CI includes 0: no detectable difference)"),
        (-1.0, 5.0, "higher", "not reproduced (CI includes 0: no detectable difference)"),
        (0.0, 5.0, "higher", "not reproduced (CI includes 0: no detectable difference)"),
        (1.0, 5.0, "lower", "not reproduced (opposite: significantly higher)"),
        (-5.0, -1.0, "higher", "not reproduced (opposite: significantly lower)"),
        (math.nan, math.nan, "lower", "not reproduced (CI could not be computed)"),
    ],
)
def test_verdict(lo, hi, expected, verdict):
    assert V.verdict(lo, hi, expected) == verdict


def test_verdict_rejects_unknown_direction():
    with pytest.raises(ValueError, match="lower"):
        V.verdict(-1.0, 1.0, "less")


def test_compare_end_to_end():
    res = V.compare(B, A, "lower")
    assert res["verdict"] == "reproduced"
    assert res["diff_hi"] < 0 and res["ratio_hi"] < 1 and res["cohens_d"] < 0
    assert res["p_welch"] == pytest.approx(stats.ttest_ind(B, A, equal_var=False).pvalue)
    assert V.compare(B, A, "higher")["verdict"].startswith("not reproduced (opposite")
    assert (res["n_a"], res["n_b"]) == (B.size, A.size)


# ---------------------------------------------------------------------- metrics

T, C, X = 0, 1, 2  # tumour, cd8, cd8_exhausted codes in the hand-made lattices


def _lattice(rows: list[str]) -> np.ndarray:
    code = {".": -1, "T": T, "C": C, "X": X, "o": 5}
    return np.array([[code[ch] for ch in row] for row in rows], dtype=np.int8)


def test_infiltrating_cd8_hand_made_lattice_with_edges_and_corners():
    # CD8 at (1,1): diagonal of the corner tumour (0,0), counts; (3,4): below the
    # edge tumour (2,4), counts; (0,2), (3,0), (4,3), (4,4): two or more sites from
    # any tumour; (0,4) and (3,0) would touch a tumour only on a periodic lattice
    lat = _lattice(
        [
            "T.C.C",
            ".C...",
            "....T",
            "C...C",
            "o..CC",
        ]
    )
    assert int(V.infiltrating_cd8(lat, [C], [T])) == 2
    # corner CD8 next to a corner tumour, and a CD8 surrounded by tumour
    lat2 = _lattice(["CT...", ".....", "..TTT", "..TCT", "..TTT"])
    assert int(V.infiltrating_cd8(lat2, [C], [T])) == 2
    # cells of other types do not count, and CD8 next to CD8 only does not count
    lat3 = _lattice(["CCo", "Coo", "ooT"])
    assert int(V.infiltrating_cd8(lat3, [C], [T])) == 0


def test_infiltrating_cd8_counts_each_snapshot_and_all_cd8_types():
    lat = _lattice(["TC.", "...", "X.T"])
    stack = np.stack([lat, np.full_like(lat, -1), lat])
    assert V.infiltrating_cd8(stack, [C], [T]).tolist() == [1, 0, 1]
    # the exhausted CD8 at (2,0) is two sites from both tumours
    assert V.infiltrating_cd8(stack, [C, X], [T]).tolist() == [1, 0, 1]
    lat[1, 1] = X  # centre: neighbour of both tumours
    assert int(V.infiltrating_cd8(lat, [C, X], [T])) == 2
    assert V.cd8_type_names(["tumour", "cd8", "cd8_exhausted", "cd4", "nk"]) == [
        "cd8",
        "cd8_exhausted",
    ]


def test_neighbour_any_moore_2d_and_3d_bounded():
    m = np.zeros((5, 5), dtype=bool)
    m[2, 2] = True
    out = V.neighbour_any(m)
    assert out.sum() == 8 and not out[2, 2] and out[1:4, 1:4].sum() == 8
    corner = np.zeros((4, 4), dtype=bool)
    corner[0, 0] = True
    assert V.neighbour_any(corner).sum() == 3  # no wrap-around
    assert not V.neighbour_any(corner)[3, 3] and not V.neighbour_any(corner)[0, 3]
    cube = np.zeros((3, 3, 3), dtype=bool)
    cube[1, 1, 1] = True
    out3 = V.neighbour_any(cube, spatial_ndim=3)
    assert out3.sum() == 26 and not out3[1, 1, 1]


def test_mature_dc_fraction_and_last_day():
    frac = V.mature_dc_fraction(np.array([3, 0, 1]), np.array([1, 0, 3]))
    assert frac[0] == pytest.approx(0.25) and math.isnan(frac[1]) and frac[2] == 0.75
    t = np.arange(0, 3 * 1440 + 1, 360.0)
    mask = V.last_day(t)
    assert t[mask].tolist() == [
        2 * 1440.0,
        2 * 1440 + 360,
        2 * 1440 + 720,
        2 * 1440 + 1080,
        3 * 1440.0,
    ]
    assert V.type_codes([-1, 0, 1], "empty tumour cd8") == {"empty": -1, "tumour": 0, "cd8": 1}


def test_run_metrics_on_a_real_run_file(tmp_path):
    from tme_abm.io.reader import cell_type_labels, read_snapshot, read_timeseries
    from tme_abm.runner import run_scenario
    from tme_abm.scenario.load import load_scenario

    path = tmp_path / "tiny.h5"
    tiny = Path(__file__).parent / "data" / "tiny.toml"
    run_scenario(load_scenario(tiny), path, progress=False)
    m = V.run_metrics(path)
    ts = read_timeseries(path)
    assert m["final_tumour"] == ts["count_tumour"][-1]
    assert math.isnan(m["mature_dc_fraction"])  # tiny has no DCs
    # brute force over the snapshots of the last day (tiny lasts half a day: all)
    import h5py

    with h5py.File(path) as f:
        names = [n for c, n in cell_type_labels(f["lattice/cell_type"]).items() if c >= 0]
        n = f["time"].shape[0]
    counts, per100 = [], []
    for i in range(n):
        lat = read_snapshot(path, i)["cell_type"]
        ny, nx = lat.shape
        cd8 = {names.index("cd8"), names.index("cd8_exhausted")}
        tum = names.index("tumour")
        k = 0
        for y in range(ny):
            for x in range(nx):
                if lat[y, x] in cd8 and any(
                    lat[yy, xx] == tum
                    for yy in range(max(0, y - 1), min(ny, y + 2))
                    for xx in range(max(0, x - 1), min(nx, x + 2))
                    if (yy, xx) != (y, x)
                ):
                    k += 1
        counts.append(k)
        if np.count_nonzero(lat == tum):  # snapshots without tumour are skipped
            per100.append(100.0 * k / np.count_nonzero(lat == tum))
    assert m["n_last_day_snapshots"] == n
    assert m["cd8_infiltration"] == pytest.approx(np.mean(counts))
    assert m["cd8_infiltration_per_100_tumour"] == pytest.approx(np.mean(per100))
    assert max(counts) > 0  # the check is not vacuous


# ------------------------------------------------------------ composition metrics

COMP_CODES = {
    "empty": -1,
    "tumour": 0,
    "cd8": 1,
    "cd8_exhausted": 2,
    "treg": 3,
    "mdsc": 4,
    "m1": 5,
    "m2": 6,
    "nk": 7,
    "dc_mature": 8,
}


def _tumour_disc(n: int = 41, radius: float = 8.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    lat = np.full((n, n), -1, dtype=np.int8)
    lat[(yy - n // 2) ** 2 + (xx - n // 2) ** 2 <= radius**2] = COMP_CODES["tumour"]
    return lat


def test_composition_metrics_hand_made_lattice():
    lat = _tumour_disc()
    n_cells = int(np.count_nonzero(lat >= 0))
    c = 41 // 2
    # eight immune cells inside the tumour (in place of tumour cells) ...
    for (y, x), name in {
        (c, c): "cd8",
        (c, c + 1): "cd8_exhausted",
        (c + 1, c): "treg",
        (c - 1, c): "mdsc",
        (c, c - 1): "m1",
        (c + 2, c): "m2",
        (c - 2, c): "nk",
        (c + 1, c + 1): "dc_mature",
    }.items():
        lat[y, x] = COMP_CODES[name]
    # ... and two far outside the 100 um band (site 20 um, tumour radius 8 sites)
    lat[2, 2] = COMP_CODES["mdsc"]
    lat[2, 38] = COMP_CODES["cd8"]
    m = V.composition_metrics(lat, COMP_CODES, 20.0)
    assert m == pytest.approx(
        {
            "immune_fraction": 8 / n_cells,
            "mdsc_share": 1 / 8,
            "treg_share": 1 / 8,
            "macrophage_share": 2 / 8,
            "t_cell_share": 3 / 8,
            "macrophage_dc_share": 3 / 8,
            "cd8_in_tumour": 2.0,
            "mdsc_in_tumour": 1.0,
            "treg_in_tumour": 1.0,
            "cd8_per_treg": 2.0,
        }
    )
    assert set(m) == set(V.COMPOSITION_METRICS)
    # a margin wide enough to reach the corners takes the two outsiders in
    wide = V.composition_metrics(lat, COMP_CODES, 20.0, margin_um=1000.0)
    assert (wide["cd8_in_tumour"], wide["mdsc_in_tumour"]) == (3.0, 2.0)


def test_composition_metrics_nan_without_the_types_or_a_tumour():
    codes = {"empty": -1, "tumour": 0, "cd8": 1}
    lat = _tumour_disc()
    lat[20, 20] = 1
    m = V.composition_metrics(lat, codes, 20.0)
    for k in (
        "mdsc_share",
        "treg_share",
        "macrophage_share",
        "macrophage_dc_share",
        "mdsc_in_tumour",
    ):
        assert math.isnan(m[k]), k
    assert math.isnan(m["treg_in_tumour"]) and math.isnan(m["cd8_per_treg"])
    assert m["t_cell_share"] == 1.0 and m["cd8_in_tumour"] == 1.0
    # Tregs in the scenario but none in the sample: a count of 0, no ratio
    no_treg = V.composition_metrics(lat, {**codes, "treg": 2}, 20.0)
    assert no_treg["treg_in_tumour"] == 0.0 and no_treg["treg_share"] == 0.0
    assert math.isnan(no_treg["cd8_per_treg"])
    # no tumour left: an empty sample, shares NaN, counts 0
    gone = np.full((20, 20), -1, dtype=np.int8)
    gone[3, 3] = COMP_CODES["mdsc"]
    m = V.composition_metrics(gone, COMP_CODES, 20.0)
    assert math.isnan(m["immune_fraction"]) and math.isnan(m["mdsc_share"])
    assert m["mdsc_in_tumour"] == 0.0 and math.isnan(m["cd8_per_treg"])


#: Overrides that give the tiny scenario Tregs, MDSCs and macrophages around the tumour
#: and keep the run short enough that the tumour is still there at the last snapshot.
SUPPRESSIVE_TINY = (
    "domain.duration_days=0.05",
    "output.snapshot_every_min=30",
    'cell_types.treg.colour="#9467bd"',
    'cell_types.mdsc.colour="#d62728"',
    'cell_types.m1.colour="#2ca02c"',
    'placement=[{cell_type = "tumour", region = "disc", radius_um = 100.0}, '
    + ", ".join(
        f'{{cell_type = "{t}", region = "annulus", radius_um = 300.0, '
        f"inner_radius_um = 110.0, fraction = {f}}}"
        for t, f in (("cd8", 0.1), ("treg", 0.05), ("mdsc", 0.1), ("m1", 0.05))
    )
    + "]",
)


def test_run_metrics_composition_of_the_last_snapshot(tmp_path):
    from tme_abm.analysis import run_composition
    from tme_abm.runner import run_scenario
    from tme_abm.scenario.load import load_scenario

    tiny = Path(__file__).parent / "data" / "tiny.toml"
    path = tmp_path / "suppressive.h5"
    run_scenario(load_scenario(tiny, SUPPRESSIVE_TINY), path, progress=False)
    m = V.run_metrics(path)
    ref = run_composition(path, -1, margin_um=100.0)  # the last snapshot
    n = ref["counts"]
    immune = ref["n_immune"]
    assert immune > 0 and n["treg"] > 0 and n["mdsc"] > 0 and n["m1"] > 0  # not vacuous
    cd8 = n["cd8"] + n["cd8_exhausted"]
    assert m["immune_fraction"] == pytest.approx(immune / (immune + ref["n_tumour"]))
    assert m["mdsc_share"] == pytest.approx(n["mdsc"] / immune)
    assert m["treg_share"] == pytest.approx(n["treg"] / immune)
    assert m["macrophage_share"] == pytest.approx(n["m1"] / immune)  # no m2 type here
    assert m["t_cell_share"] == pytest.approx((cd8 + n["treg"]) / immune)
    assert m["macrophage_dc_share"] == pytest.approx(n["m1"] / immune)  # no DC type here
    assert (m["cd8_in_tumour"], m["mdsc_in_tumour"], m["treg_in_tumour"]) == (
        cd8,
        n["mdsc"],
        n["treg"],
    )
    assert m["cd8_per_treg"] == pytest.approx(cd8 / n["treg"])
    # the tiny scenario itself has no Tregs, MDSCs or macrophages
    plain = tmp_path / "tiny.h5"
    run_scenario(load_scenario(tiny, SUPPRESSIVE_TINY[:2]), plain, progress=False)
    p = V.run_metrics(plain)
    for k in ("mdsc_share", "treg_share", "macrophage_share", "mdsc_in_tumour", "cd8_per_treg"):
        assert math.isnan(p[k]), k
    assert math.isfinite(p["immune_fraction"]) and math.isfinite(p["cd8_in_tumour"])


@pytest.mark.parametrize(
    ("mean", "verdict"),
    [
        (0.10, "in range"),
        (0.05, "in range"),
        (0.50, "in range"),
        (0.049, "OUT of range"),
        (0.51, "OUT of range"),
        (math.nan, "not computed (no value)"),
        (math.inf, "not computed (no value)"),
    ],
)
def test_range_verdict(mean, verdict):
    assert V.range_verdict(mean, 0.05, 0.50) == verdict


def test_evaluate_composition_on_the_baseline_arm():
    targets = (
        V.CompositionTarget("immune_fraction", 0.05, 0.50, "src", "why"),
        V.CompositionTarget("mdsc_share", 0.02, 0.17, "src", "why"),
        V.CompositionTarget("treg_share", 0.0, 1.0, "src", "why"),
    )
    values = {"immune_fraction": [0.2, 0.3, None, 0.25], "mdsc_share": [0.3, 0.4, 0.35, 0.2]}
    values["treg_share"] = [None] * 4
    summary = {"baseline": {"metrics": {k: {"values": v} for k, v in values.items()}}}
    out = V.evaluate_composition(summary, targets)
    assert [r["verdict"] for r in out] == ["in range", "OUT of range", "not computed (no value)"]
    assert out[0]["n"] == 3 and out[2]["n"] == 0
    m, lo, hi = V.mean_ci([0.2, 0.3, 0.25])
    assert (out[0]["mean"], out[0]["ci_lo"], out[0]["ci_hi"]) == pytest.approx((m, lo, hi))
    assert out[1]["mean"] == pytest.approx(0.3125) and out[0]["basis"] == "why"
    missing = V.evaluate_composition({"other": summary["baseline"]}, targets[:1])
    assert missing[0]["verdict"] == "not run (arm baseline not in suite)"
    section = "\n".join(V._composition_section(out))
    assert "**OUT of range**" in section and "1 of 3 composition metrics lie in range" in section


def test_composition_targets_name_known_metrics():
    assert set(V.COMPOSITION_METRICS) <= set(V.METRICS)
    for t in V.COMPOSITION_TARGETS:
        assert t.metric in V.COMPOSITION_METRICS and 0 <= t.lo < t.hi <= 1
        assert "PMC4157098" in t.source and "PMC4157098" in t.basis
    assert V.COMPOSITION_ARM in {a.name for a in V.DEFAULT_ARMS}


# ------------------------------------------------------------------ arm parsing


def test_parse_arm_with_bracketed_values():
    arm = V.parse_arm("ko=scenarios/baseline.toml,domain.shape=[50,60],rules.0.half_max=2")
    assert arm.name == "ko"
    assert arm.scenario == Path("scenarios/baseline.toml")
    assert arm.overrides == ("domain.shape=[50,60]", "rules.0.half_max=2")
    assert V.parse_arm("b=x.toml").overrides == ()
    for bad in ("noequals", "=x.toml", "a b=x.toml", "a=x.toml,novalue"):
        with pytest.raises(ValueError, match="--arm"):
            V.parse_arm(bad)


def test_comparisons_name_known_metrics_and_arms():
    arms = {a.name for a in V.DEFAULT_ARMS}
    assert {a.name for a in V.standin_arms()} == arms
    for c in V.COMPARISONS:
        assert c.a in arms and c.b in arms and c.metric in V.METRICS
        assert c.expected in ("lower", "higher")


@pytest.mark.parametrize("name", sorted(V.STANDIN_THERAPIES))
def test_therapy_standins_resolve_to_their_scenario_files(name):
    # the stand-in (baseline + a therapy=[...] override) is the scenario file but for its
    # name and description, so the two cannot drift apart unnoticed
    from tme_abm.scenario.load import load_scenario

    standin = {a.name: a for a in V.standin_arms()}[name]
    real = {a.name: a for a in V.DEFAULT_ARMS}[name]
    a = json.loads(load_scenario(standin.scenario, standin.overrides).scenario.model_dump_json())
    b = json.loads(load_scenario(real.scenario, real.overrides).scenario.model_dump_json())
    for d in (a, b):
        d.pop("name"), d.pop("description")
    assert a == b


def test_run_task_reuses_only_a_matching_complete_run(tmp_path):
    tiny = str(Path(__file__).parent / "data" / "tiny.toml")
    out = str(tmp_path / "tiny" / "seed1.h5")
    task = V.Task("tiny", tiny, ("domain.duration_days=0.1",), 1, out, False, "abc")
    first = V.run_task(task)
    assert not first["reused"] and first["seed"] == 1 and first["final_tumour"] > 0
    again = V.run_task(task)
    assert again["reused"] and again["final_tumour"] == first["final_tumour"]
    for changed in (
        replace(task, source_sha256="other"),
        replace(task, overrides=("domain.duration_days=0.2",)),
        replace(task, force=True),
    ):
        assert not V.run_task(changed)["reused"]


def test_set_problems():
    suite = V.suite_overrides([40, 40], 0.1, 60)
    arms = [V.Arm("ko", Path("x.toml"), ("cell_types.tumour.stat3.knockout=true",))]
    assert V.set_problems(["domain.field_solver=lod", "seed=3"], suite, arms) == []
    assert V.set_problems([], suite, arms) == []
    bad = V.set_problems(
        [
            "novalue",
            "=1",
            "a=1",
            "a=2",
            "domain.shape=[9,9]",
            "cell_types.tumour.stat3.knockout=false",
        ],
        suite,
        arms,
    )
    assert bad == [
        "--set 'novalue': expected KEY=VALUE",
        "--set '=1': expected KEY=VALUE",
        "--set a: given more than once",
        "--set domain.shape: set by the suite; use --shape, --days or --snapshot-every-min",
        "--set cell_types.tumour.stat3.knockout: arm 'ko' sets it too",
    ]


def test_set_reaches_every_run_its_header_and_the_reuse_check(tmp_path, monkeypatch):
    # threads, not processes: importing mesa makes multiprocessing spawn, and a spawned
    # worker cannot import this test's copy of the tool by name
    monkeypatch.setattr(V.cf, "ProcessPoolExecutor", cf.ThreadPoolExecutor)
    tiny = Path(__file__).parent / "data" / "tiny.toml"
    runs = tmp_path / "runs"

    def suite(*sets):
        out = tmp_path / f"report{len(sets)}"
        argv = [
            "--arm",
            f"a={tiny}",
            "--arm",
            f"b={tiny}",
            "--seeds",
            "2",
            "--workers",
            "1",
            "--shape",
            "20",
            "20",
            "--days",
            "0.05",
            "--out",
            str(out),
            "--runs-dir",
            str(runs),
        ]
        for s in sets:
            argv += ["--set", s]
        assert V.main(argv) == 0
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        return (out / "report.md").read_text(encoding="utf-8"), results["meta"]

    report, meta = suite("domain.field_solver=lod")
    assert "- `--set` overrides on every arm: `domain.field_solver=lod`" in report
    assert meta["set_overrides"] == ["domain.field_solver=lod"] and meta["n_simulated"] == 4
    with h5py.File(runs / "b" / "seed2.h5", "r") as f:
        assert f.attrs["overrides"].split("\n")[-1] == "domain.field_solver=lod"
        assert json.loads(f.attrs["scenario_resolved_json"])["domain"]["field_solver"] == "lod"
    # without --set (the exact solver) nothing is reused; with it again, everything
    report, meta = suite()
    assert "- `--set` overrides on every arm: none" in report and meta["n_simulated"] == 4
    assert suite()[1]["n_reused"] == 4
    assert suite("domain.field_solver=lod")[1]["n_simulated"] == 4
