"""tools/stat3_responses.py: its per-run metrics on a file with known values, and
its differences against scipy's Welch test."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import stats
from tool_loader import load_tool


def _tool():
    return load_tool("stat3_responses")


def test_run_values_from_a_file_with_known_series(tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.setattr(tool, "run_composition", lambda path: {"counts": {"cd8": 7}})
    n = 289  # one day at 5 min, both ends included
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        t = f.create_group("timeseries")
        t["tick_time"] = np.arange(n) * 5.0
        t["count_cd8"] = np.full(n, 10)  # 10 CD8-days
        t["kills_cd8"] = np.r_[0, np.full(n - 1, 0)]
        t["kills_cd8"][5] = 15
        t["kills_cd8"][9] = 5
        t["divisions_cd8"] = np.zeros(n)
        t["divisions_cd8"][3] = 4
        t["divisions_treg"] = np.ones(n)
        t["count_mdsc"] = np.r_[np.zeros(n - 1), 3]
        t["count_treg"] = np.r_[np.zeros(n - 1), 11]
        t["count_tumour"] = np.r_[np.zeros(n - 1), 500]
        t["field_mean_arginase"] = np.linspace(0.0, 0.02, n)
    v = tool.run_values(path)
    assert v == pytest.approx(
        {
            "mdsc_final": 3.0,
            "arginase_mean": 0.01,
            "treg_final": 11.0,
            "treg_divisions": float(n),
            "cd8_kills": 20.0,
            "cd8_divisions": 4.0,
            "cd8_kills_per_cd8_day": 2.0,
            "cd8_in_tumour": 7.0,
            "final_tumour": 500.0,
        }
    )
    assert set(v) == set(tool.METRICS)


def test_compare_matches_scipy_welch():
    tool = _tool()
    rng = np.random.default_rng(3)

    def runs(shift):
        return [{k: float(rng.normal(10 + shift, 2)) for k in tool.METRICS} for _ in range(6)]

    by_arm = {"baseline": runs(0), "ko_mdsc": runs(5), "ko_treg": runs(0)}
    rows = tool.compare(by_arm)
    assert len(rows) == len(tool.ARMS) * len(tool.METRICS)
    for r in rows:
        a = [x[r["metric"]] for x in by_arm[r["arm"]]]
        b = [x[r["metric"]] for x in by_arm["baseline"]]
        res = stats.ttest_ind(a, b, equal_var=False)
        assert r["p_welch"] == pytest.approx(res.pvalue, rel=1e-10)
        ci = res.confidence_interval(0.95)
        assert r["diff_ci"] == pytest.approx([ci.low, ci.high], rel=1e-10)
        assert r["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    md = tool.markdown(rows, "python tools/stat3_responses.py")
    # a 5-sd shift over 6 vs 6 runs is detected; the table says so
    assert md.count("**detected**") >= len(tool.METRICS) - 1


def test_collect_takes_run_and_reused_rows_and_skips_failed(tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.setattr(tool, "run_values", lambda path: {"file": path})
    rows = [
        ("baseline", "ok", "a.h5"),
        ("baseline", "reused", "b.h5"),
        ("ko_mdsc", "failed", ""),
        ("ko_mdsc", "reused", "c.h5"),
        ("other", "ok", "d.h5"),
    ]
    csv_path = tmp_path / "summary.csv"
    csv_path.write_text(
        "run_id,scenario,status,file\n"
        + "".join(f"r{i},{sc},{st},{f}\n" for i, (sc, st, f) in enumerate(rows))
    )
    by_arm = tool.collect(csv_path)
    assert by_arm == {
        "baseline": [{"file": "a.h5"}, {"file": "b.h5"}],
        "ko_mdsc": [{"file": "c.h5"}],
        "ko_treg": [],
    }
