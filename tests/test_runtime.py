"""Process set-up before numba starts (tme_abm._runtime) and the notice shown
while kernels compile (tme_abm.jit_notice)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

from tme_abm import _runtime
from tme_abm.jit_notice import MESSAGE, CompileNotice

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ wait policy
def test_wait_policy_is_passive_unless_the_user_chose():
    assert _runtime.wait_policy_settings({}) == {"OMP_WAIT_POLICY": "passive"}
    for name in _runtime.WAIT_VARIABLES:
        assert _runtime.wait_policy_settings({name: "1"}) == {}, name


def test_importing_tme_abm_sets_the_wait_policy_but_keeps_the_users():
    code = "import os, tme_abm; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in _runtime.WAIT_VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "passive"
    for name, value in (("OMP_WAIT_POLICY", "active"), ("GOMP_SPINCOUNT", "300000")):
        out = subprocess.run([sys.executable, "-c", code], env={**env, name: value},
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == ("active" if name == "OMP_WAIT_POLICY" else "None")


# ------------------------------------------------------------ cache folder
def test_cache_dir_left_to_numba_when_the_package_is_writable(tmp_path):
    assert _runtime.choose_cache_dir({}, tmp_path, is_writable=lambda p: True) is None


def test_cache_dir_falls_back_when_the_package_is_read_only(tmp_path):
    first, second = tmp_path / "user" / "tme_abm" / "numba", tmp_path / "tmp"
    got = _runtime.choose_cache_dir({}, tmp_path, is_writable=lambda p: False,
                                    candidates=lambda: [first, second])
    assert got == first and first.is_dir()
    # one kernel folder read-only is enough to move the cache
    got = _runtime.choose_cache_dir({}, tmp_path, is_writable=lambda p: p.name == "core",
                                    candidates=lambda: [first])
    assert got == first


def test_cache_dir_skips_a_fallback_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    second = tmp_path / "second"
    got = _runtime.choose_cache_dir({}, tmp_path, is_writable=lambda p: False,
                                    candidates=lambda: [blocker / "numba", second])
    assert got == second


def test_cache_dir_respects_the_users_numba_cache_dir(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}
    got = _runtime.choose_cache_dir(env, tmp_path, is_writable=lambda p: False,
                                    candidates=lambda: [tmp_path / "other"])
    assert got is None
    assert _runtime.configure(env) == {"OMP_WAIT_POLICY": "passive"}
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_user_cache_dir_follows_xdg(monkeypatch, tmp_path):
    if sys.platform != "linux":
        pytest.skip("XDG_CACHE_HOME is the Linux convention")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _runtime.user_cache_dir() == tmp_path / "tme_abm" / "numba"


def test_writable_reads_the_pycache_folder(tmp_path, monkeypatch):
    (tmp_path / "__pycache__").mkdir()
    seen = []
    monkeypatch.setattr(_runtime.os, "access", lambda p, mode: seen.append(Path(p)) or False)
    assert not _runtime.writable(tmp_path)
    assert seen == [tmp_path / "__pycache__"]


def test_configure_points_numba_at_the_fallback(tmp_path):
    # a read-only package (simulated) in a subprocess: the cache moves, and
    # numba (imported after tme_abm) uses it
    code = (
        "import tme_abm._runtime as r\n"
        "r.writable = lambda p: False\n"
        f"r.user_cache_dir = lambda: __import__('pathlib').Path({str(tmp_path)!r}) / 'c'\n"
        "print(r.configure())\n"
        "import numba\n"
        "print(numba.config.CACHE_DIR)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    # import the submodule without running tme_abm/__init__'s configure first
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == str(tmp_path / "c")


# ------------------------------------------------------------ compile notice
def _fresh_kernel():
    @numba.njit(cache=False)
    def add_one(x):
        return x + 1

    return add_one


def test_notice_single_line_when_not_a_terminal(monkeypatch):
    import tme_abm.jit_notice as jn

    monkeypatch.setattr(jn, "_LINE_SHOWN", False)
    buf = io.StringIO()
    with CompileNotice(stream=buf, interactive=False) as notice:
        _fresh_kernel()(1)
        _fresh_kernel()(2.0)
    text = buf.getvalue()
    assert notice.kernels == 2
    assert text.count("\n") == 1 and MESSAGE in text and "cached in" in text
    # a later burst in the same process adds nothing
    buf2 = io.StringIO()
    with CompileNotice(stream=buf2, interactive=False):
        _fresh_kernel()(3)
    assert buf2.getvalue() == ""


def test_notice_spinner_ends_with_a_summary_line():
    buf = io.StringIO()
    with CompileNotice(stream=buf, interactive=True, interval=0.01, settle=0.05) as notice:
        _fresh_kernel()(1)
    text = buf.getvalue()
    assert notice.kernels == 1
    assert MESSAGE in text and "\r" in text
    assert text.rstrip(" ").endswith("later runs skip this)\n")
    assert "compiled 1 kernel in" in text


def test_notice_silent_when_quiet_or_nothing_compiles():
    kernel = _fresh_kernel()
    kernel(1)  # compiled before the notice
    for enabled in (True, False):
        buf = io.StringIO()
        with CompileNotice(stream=buf, enabled=enabled, interactive=True, interval=0.01):
            kernel(2)
            if not enabled:
                _fresh_kernel()(1)
        assert buf.getvalue() == ""


@pytest.mark.slow
def test_first_run_says_it_is_compiling(tmp_path):
    """A cold kernel cache (NUMBA_CACHE_DIR at an empty folder): ``tme-abm
    run`` says it is compiling, on stderr, in one line (stderr is a pipe).
    Slow: compiles every kernel (1-4 minutes)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "tme_abm", "run", "baseline", "--set", "domain.shape=[12,12]",
           "--set", "domain.duration_days=0.125", "--set", "output.snapshot_every_min=60",
           "--out", str(tmp_path / "run.h5")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = [ln for ln in first.stderr.splitlines() if MESSAGE in ln]
    assert len(lines) == 1 and str(tmp_path / "cache") in lines[0]
    assert any((tmp_path / "cache").rglob("*.nbi")), "nothing was cached"
    # now cached: silent
    second = subprocess.run([*cmd, "--force"], env=env, capture_output=True, text=True,
                            cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert MESSAGE not in second.stderr
