"""The model's scientific claims: every published effect in
tools/validate.py must be reproduced (95% CI of the difference excludes 0 on
the expected side) over 24 seeds per arm.  24, not the tool's default 8: the
smallest effect (inhibitor + anti-PD-1 vs inhibitor alone, Cohen's d ~ 0.9)
needs ~22 seeds per arm for 80% power; 8 seeds give ~40%.

Slow (about 5 minutes on 2 cores with the first six arms; the four
suppressive-arm scenarios add to that): ``python -m pytest -m slow tests/validation``.
It runs the default arms, i.e. the shipped scenario files (``tme_abm/examples/``); the
report it writes lies in pytest's tmp_path (its path is printed on failure).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SEEDS = 24
TOOL = REPO / "tools" / "validate.py"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    cmd = [
        sys.executable,
        str(TOOL),
        "--seeds",
        str(SEEDS),
        "--workers",
        "2",
        "--out",
        str(out / "report"),
        "--runs-dir",
        str(out / "runs"),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    results = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    return out / "report", results


def test_report_is_complete(suite):
    report, results = suite
    for name in ("report.md", "growth.png", "comparisons.png", "results.json"):
        assert (report / name).stat().st_size > 0, name
    assert len(results["comparisons"]) == 10
    for arm in results["arms"]:
        assert arm["seeds"] == list(range(1, SEEDS + 1)), arm["name"]


def _describe(c) -> str:
    def g(x):
        return "n/a" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)

    return (
        f"{c['label']} (expected {c['expected']}; {c['source']}): {c['verdict']}; "
        f"mean A {g(c.get('mean_a'))}, mean B {g(c.get('mean_b'))}, "
        f"A - B {g(c.get('diff'))} [{g(c.get('diff_lo'))}, {g(c.get('diff_hi'))}]"
    )


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(0, id="1-ko_haematopoietic-slows-tumour"),
        pytest.param(1, id="2-ko_tumour-raises-dc-maturation"),
        pytest.param(2, id="3-ko_tumour-raises-cd8-infiltration"),
        pytest.param(3, id="4-combination-beats-inhibitor"),
        pytest.param(4, id="5-combination-beats-anti_pd1"),
        pytest.param(5, id="6-deplete_treg-slows-tumour"),
        pytest.param(6, id="7-late-treg-depletion-helps-less"),
        pytest.param(7, id="8-deplete_mdsc-slows-tumour"),
        pytest.param(8, id="9-arginase_inhibitor-raises-tumour-cd8"),
        pytest.param(9, id="10-deplete_mdsc-raises-tumour-cd8"),
    ],
)
def test_published_effect_is_reproduced(suite, index):
    report, results = suite
    c = results["comparisons"][index]
    assert c["verdict"] == "reproduced", f"see {report / 'report.md'}\n" + _describe(c)
