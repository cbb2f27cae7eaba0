"""The bench's loaded case (tme_abm.benchmark.loaded): its competitor
processes start and always stop, and its figures say what they measured.
No test asserts a time."""

from __future__ import annotations

import math
import os
import time
from types import SimpleNamespace

import numba
import pytest

from tme_abm.benchmark import loaded


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie no longer runs
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_competitors_spin_and_stop():
    with loaded.Competitors(2, ramp_s=0.05) as comp:
        pids = [p.pid for p in comp.procs]
        assert comp.running() == 2
        time.sleep(0.3)
        assert all(_alive(p) for p in pids)
    assert not any(_alive(p) for p in pids)


def test_competitors_stop_on_an_error_and_by_themselves():
    with pytest.raises(RuntimeError), loaded.Competitors(1, ramp_s=0.0) as comp:
        pid = comp.procs[0].pid
        raise RuntimeError("bench failed")
    assert not _alive(pid)
    # a competitor whose bench forgets it exits after max_s
    comp = loaded.Competitors(1, max_s=0.2, ramp_s=0.0).__enter__()
    comp.procs[0].wait(timeout=10)
    assert comp.running() == 0


def test_default_competitors_leave_one_cpu():
    n = loaded.default_competitors()
    assert n >= 1
    assert n == max(1, len(os.sched_getaffinity(0)) - 1)


def test_loaded_case_figures(monkeypatch):
    monkeypatch.setattr(loaded, "QUICK_WALK_AGENTS", 200)
    monkeypatch.setattr(loaded, "QUICK_TICK_CELLS", 200)
    threads = [1, 2] if numba.config.NUMBA_NUM_THREADS >= 2 else [1]
    config = SimpleNamespace(quick=True, repeats=1, min_block_s=0.01, loaded_competitors=1)
    raw: dict = {}
    figures = {f.id: f for f in loaded.loaded_case(config, threads, raw, lambda m: None)}
    for key, unit in (("walk", "agent-steps/s"), ("tick", "cell-steps/s")):
        for kind in ("idle", "busy"):
            f = figures[f"loaded_{key}_{kind}"]
            assert f.unit == unit and set(f.by_threads) == set(threads)
            assert all(v > 0 and math.isfinite(v) for v in f.by_threads.values())
        ratio = figures[f"loaded_{key}_ratio"]
        assert ratio.by_threads[1] == 1.0
        assert ratio.value == min(ratio.by_threads.values())  # the worst setting
        assert ratio.target is not None and ratio.target.value == loaded.MIN_RATIO
        assert not ratio.target.applies  # quick sizes
        assert raw["loaded"][key]["competitors_running"] == [1]
    assert "1 busy process" in figures["loaded_walk_busy"].measurement
    policy = raw["loaded"]["wait_policy"]
    assert set(policy["environment"]) == {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"}
    assert policy["threading_layer"] in ("omp", "tbb", "workqueue")


def test_no_competitors_skips_the_case():
    config = SimpleNamespace(quick=True, repeats=1, min_block_s=0.01, loaded_competitors=0)
    raw: dict = {}
    assert loaded.loaded_case(config, [1], raw, lambda m: None) == []
    assert "loaded" not in raw
