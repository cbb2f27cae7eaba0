"""Sweeps: plans and seeds, resume after a kill, failures recorded, executors agree."""

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tme_abm.batch.plan import design_points, load_sweep, parse_sweep_file
from tme_abm.batch.sweep import run_sweep
from tme_abm.scenario import ScenarioError

TINY = Path(__file__).parent / "data" / "tiny.toml"
SHORT = {"domain.duration_days": 0.1, "output.snapshot_every_min": 30,
         "output.fields": [], "output.cells": False}


def write_sweep(tmp_path, design="", params="", replicates=2, name="s", extra=""):
    overrides = "\n".join(f'"{k}" = {_v(v)}' for k, v in SHORT.items())
    text = (f'name = "{name}"\nscenarios = ["{TINY.as_posix()}"]\nreplicates = {replicates}\n'
            f"entropy = 42\n{extra}\n[design]\n{design}\n{params}\n[overrides]\n{overrides}\n")
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _v(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return "[]" if v == [] else repr(v)


GRID = ('kind = "grid"', '[[parameters]]\nkey = "cell_types.cd8.kill_rate_per_min"\n'
        'values = [0.01, 0.03]\n')


def read_summary(folder):
    with (Path(folder) / "summary.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_grid_plan_and_spawned_seeds(tmp_path):
    sweep, runs = parse_sweep_file(write_sweep(tmp_path, *GRID, replicates=3))
    assert len(runs) == 1 * 2 * 3
    assert [r.params["cell_types.cd8.kill_rate_per_min"] for r in runs] == [0.01] * 3 + [0.03] * 3
    expected = [int(c.generate_state(1, dtype=np.uint32)[0])
                for c in np.random.SeedSequence(42).spawn(6)]
    assert [r.seed for r in runs] == expected
    assert len({r.seed for r in runs}) == 6
    _, again = parse_sweep_file(write_sweep(tmp_path, *GRID, replicates=3))
    assert [r.seed for r in again] == expected


def test_latin_hypercube_and_sobol_designs(tmp_path):
    params = ('[[parameters]]\nkey = "a"\nlow = 1.0\nhigh = 3.0\n'
              '[[parameters]]\nkey = "b"\nlow = 0.001\nhigh = 10.0\nscale = "log"\n')
    lhs = load_sweep(write_sweep(tmp_path, 'kind = "lhs"\nsamples = 20', params))
    points = design_points(lhs)
    a = np.array([p["a"] for p in points])
    b = np.array([p["b"] for p in points])
    assert len(points) == 20 and a.min() >= 1 and a.max() <= 3
    # Latin hypercube: exactly one point in each of 20 equal strata, per dimension
    assert sorted(np.floor((a - 1) / 2 * 20).astype(int)) == list(range(20))
    assert sorted(np.floor(np.log(b / 0.001) / np.log(1e4) * 20).astype(int)) == list(range(20))
    sobol = load_sweep(write_sweep(tmp_path, 'kind = "sobol"\nsamples = 16', params, name="q"))
    assert len(design_points(sobol)) == 16
    with pytest.raises(ScenarioError, match="power of two"):
        load_sweep(write_sweep(tmp_path, 'kind = "sobol"\nsamples = 12', params, name="r"))
    with pytest.raises(ScenarioError, match="needs values"):
        load_sweep(write_sweep(tmp_path, 'kind = "grid"', params, name="t"))


def test_sweep_runs_resumes_and_retries(tmp_path):
    path = write_sweep(tmp_path, *GRID)
    rows, out = run_sweep(path, tmp_path / "out", progress=False)
    assert out == tmp_path / "out"
    assert sorted(r["status"] for r in rows.values()) == ["ok"] * 4
    summary = read_summary(out)
    assert [r["status"] for r in summary] == ["ok"] * 4
    assert all(float(r["final_tumour"]) >= 0 for r in summary)
    assert (out / "sweep.toml").read_text() == path.read_text()
    # again: everything is reused; remove one run: only that one runs
    rows, _ = run_sweep(path, out, progress=False)
    assert {r["status"] for r in rows.values()} == {"reused"}
    victim = summary[2]["run_id"]
    Path(summary[2]["file"]).unlink()
    rows, _ = run_sweep(path, out, progress=False)
    assert rows[victim]["status"] == "ok"
    assert sorted(r["status"] for k, r in rows.items() if k != victim) == ["reused"] * 3
    again = read_summary(out)
    assert [r["final_tumour"] for r in again] == [r["final_tumour"] for r in summary]


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    params = '[[parameters]]\nkey = "cell_types.cd8.kill_rate_per_min"\nvalues = [0.01, -5.0]\n'
    rows, out = run_sweep(write_sweep(tmp_path, 'kind = "grid"', params, replicates=1),
                          tmp_path / "out", progress=False)
    statuses = {r["run_id"]: r["status"] for r in rows.values()}
    assert sorted(statuses.values()) == ["failed", "ok"]
    failed = next(r for r in rows.values() if r["status"] == "failed")
    assert "cell_types.cd8.kill_rate_per_min" in failed["error"]
    assert "failed" in (out / "sweep.log").read_text()


def test_process_pool_gives_the_same_summary_as_one_process(tmp_path):
    path = write_sweep(tmp_path, *GRID)
    one, _ = run_sweep(path, tmp_path / "one", workers=1, progress=False)
    two, _ = run_sweep(path, tmp_path / "two", workers=2, progress=False)
    keys = ("final_tumour", "final_cd8", "final_treg", "tumour_stat3_mean")
    for run_id in one:
        a = np.array([one[run_id][k] for k in keys], dtype=float)
        b = np.array([two[run_id][k] for k in keys], dtype=float)
        assert np.array_equal(a, b, equal_nan=True), run_id  # tiny has no Tregs: NaN
    # pool workers run their kernels on one thread each (no oversubscription)
    assert {row["threads"] for row in two.values()} == {1}
    import numba

    assert {row["threads"] for row in one.values()} == {numba.get_num_threads()}


def kill_after_runs(cmd, out, n_ok, before_kill=None, timeout_s=240):
    """Start the sweep command ``cmd``, SIGKILL it once ``out/sweep.log`` has
    ``n_ok`` finished runs; return ``before_kill(pid)`` (called just before)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    try:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            log = out / "sweep.log"
            if log.exists() and log.read_text().count(": ok") >= n_ok:
                break
            time.sleep(0.2)
        if before_kill is not None:
            seen = before_kill(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return seen


def test_killed_sweep_finishes_only_what_was_missing(tmp_path):
    path = write_sweep(tmp_path, *GRID, replicates=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tme_abm", "sweep", str(path), "--out", str(out),
           "--workers", "1", "--quiet"]
    kill_after_runs(cmd, out, 2)
    done_before = sum(r["status"] == "ok" for r in read_summary(out))
    assert 2 <= done_before < 8
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    summary = read_summary(out)
    assert sum(r["status"] == "reused" for r in summary) >= done_before
    # the run the kill interrupted continues from its checkpoint
    assert {r["status"] for r in summary} <= {"ok", "reused", "resumed"} and len(summary) == 8


def test_sweep_command_bad_input(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nscenarios = ["missing.toml"]\n')
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "sweep", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no such file: missing.toml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dask_local_cluster_gives_the_same_summary(tmp_path):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    from tme_abm.batch.dask import dask_executor

    path = write_sweep(tmp_path, *GRID)
    pool, _ = run_sweep(path, tmp_path / "pool", workers=2, progress=False)
    with dask_executor("local", workers=2) as executor:
        dask, _ = run_sweep(path, tmp_path / "dask", executor=executor, progress=False)
    keys = ("final_tumour", "final_cd8", "final_treg", "tumour_stat3_mean")
    assert set(dask) == set(pool)
    for run_id in pool:
        a = np.array([pool[run_id][k] for k in keys], dtype=float)
        b = np.array([dask[run_id][k] for k in keys], dtype=float)
        assert np.array_equal(a, b, equal_nan=True), run_id
    assert {row["threads"] for row in dask.values()} == {1}


# --- run ids, folder conflicts, locks and orphans (hardening) -------------------------


def _two_tiny_copies(tmp_path):
    """Two different scenario files that share the stem 'tiny'."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        text = TINY.read_text().replace('name = "tiny"', f'name = "tiny_{sub}"')
        (tmp_path / sub / "tiny.toml").write_text(text)



def test_scenarios_with_the_same_file_name_get_distinct_runs(tmp_path):
    _two_tiny_copies(tmp_path)
    overrides = "\n".join(f'"{k}" = {_v(v)}' for k, v in SHORT.items())
    sweep = tmp_path / "two.toml"
    sweep.write_text('name = "two"\nscenarios = ["a/tiny.toml", "b/tiny.toml"]\n'
                     f'replicates = 1\nentropy = 1\n[overrides]\n{overrides}\n')
    _, specs = parse_sweep_file(sweep)
    assert [s.run_id for s in specs] == ["a_tiny-p0000-r000", "b_tiny-p0000-r000"]
    rows, out = run_sweep(sweep, tmp_path / "out", progress=False)
    summary = read_summary(out)
    assert [r["run_id"] for r in summary] == ["a_tiny-p0000-r000", "b_tiny-p0000-r000"]
    assert [r["scenario"] for r in summary] == ["a_tiny", "b_tiny"]
    import h5py

    names = set()
    for r in summary:
        with h5py.File(r["file"]) as f:
            names.add(f.attrs["scenario_name"])
    assert names == {"tiny_a", "tiny_b"}  # both runs kept, neither overwrote the other


def test_scenario_labels_are_unique_and_independent_of_location():
    from tme_abm.batch.plan import scenario_labels

    assert scenario_labels(["../baseline.toml", "ko.toml"]) == ["baseline", "ko"]
    assert scenario_labels(["a/tiny.toml", "b/tiny.toml"]) == ["a_tiny", "b_tiny"]
    assert scenario_labels(["x/a/t.toml", "y/a/t.toml", "t.toml"]) == ["x_a_t", "y_a_t", "t"]
    # folder names alone cannot separate these: their position does
    labels = scenario_labels(["a b/t.toml", "a_b/t.toml"])
    assert len(set(labels)) == 2 and all(" " not in x for x in labels)


def test_same_scenario_listed_twice_is_refused(tmp_path):
    sweep = tmp_path / "twice.toml"
    sweep.write_text(f'name = "t"\nscenarios = ["{TINY.as_posix()}", "{TINY.as_posix()}"]\n')
    with pytest.raises(ScenarioError, match="listed more than once"):
        parse_sweep_file(sweep)


@pytest.mark.parametrize("name", ["..", ".", "..."])
def test_sweep_name_that_escapes_its_folder_is_refused(tmp_path, name):
    path = write_sweep(tmp_path, *GRID, name="n")
    path.write_text(path.read_text().replace('name = "n"', f'name = "{name}"'))
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "sweep", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "name" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "output").exists()


def test_a_different_sweep_into_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    first = write_sweep(tmp_path, *GRID, replicates=1, name="s")
    run_sweep(first, out, progress=False)
    before = {p.name: p.read_bytes() for p in (out / "runs").iterdir()}
    # same name and run ids, other entropy: every run would get another seed
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    second = write_sweep(other_dir, *GRID, replicates=1, name="s")
    second.write_text(second.read_text().replace("entropy = 42", "entropy = 43"))
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "sweep", str(second),
                           "--out", str(out), "--workers", "1", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "holds results of another sweep" in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in (out / "runs").iterdir()} == before
    assert (out / "sweep.toml").read_text() == first.read_text()


def test_a_changed_scenario_file_does_not_overwrite_its_old_runs(tmp_path):
    from tme_abm.batch.sweep import SweepConflictError

    scenario = tmp_path / "tiny.toml"
    scenario.write_text(TINY.read_text())
    overrides = "\n".join(f'"{k}" = {_v(v)}' for k, v in SHORT.items())
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'name = "s"\nscenarios = ["tiny.toml"]\n[overrides]\n{overrides}\n')
    run_sweep(sweep, tmp_path / "out", progress=False)
    run_file = tmp_path / "out" / "runs" / "tiny-p0000-r000.h5"
    old = run_file.read_bytes()
    scenario.write_text(TINY.read_text().replace("seed = 7", "seed = 8"))
    with pytest.raises(SweepConflictError, match="another scenario text"):
        run_sweep(sweep, tmp_path / "out", progress=False)
    assert run_file.read_bytes() == old


def test_a_live_sweep_folder_is_locked(tmp_path):
    from tme_abm.batch.guard import FolderBusyError, FolderLock

    with FolderLock(tmp_path / "out"):
        with pytest.raises(FolderBusyError, match="in use by another sweep"):
            FolderLock(tmp_path / "out").__enter__()
        path = write_sweep(tmp_path, *GRID, replicates=1)
        proc = subprocess.run([sys.executable, "-m", "tme_abm", "sweep", str(path),
                               "--out", str(tmp_path / "out"), "--quiet"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "in use by another sweep" in proc.stderr
        assert f"pid {__import__('os').getpid()}" in proc.stderr
    with FolderLock(tmp_path / "out"):  # released on exit
        pass


def _children(pid):
    """PIDs whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killing_a_sweep_kills_its_workers_and_a_rerun_finishes(tmp_path):
    path = write_sweep(tmp_path, *GRID, replicates=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tme_abm", "sweep", str(path), "--out", str(out),
           "--workers", "2", "--quiet"]
    workers = kill_after_runs(cmd, out, 1,
                              before_kill=lambda pid: [p for p in _children(pid) if _alive(p)])
    assert workers, "the pool had no live workers to check"
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "workers outlived their sweep"
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    summary = read_summary(out)
    assert {r["status"] for r in summary} <= {"ok", "reused", "resumed"} and len(summary) == 8
