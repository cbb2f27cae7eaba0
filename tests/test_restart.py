"""Resume and fork, tested from outside: killed processes, the CLI, the files.

A resumed run must equal the uninterrupted run in every dataset and every
attribute but the wall-clock ones, wherever the first process died; a fork
with no changes must continue exactly as its parent; a fork with a therapy
from day D must equal a run treated from day D; bad requests change nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numba
import numpy as np
import pytest

from tests.factory import TINY
from tests.run_files import broken_scales, differences
from tme_abm.cli import main
from tme_abm.io import read_checkpoint, run_summary
from tme_abm.model import TMEModel
from tme_abm.restart import ForkError, RestartError, fork_run, forkable_days, resume_run
from tme_abm.runner import run_scenario
from tme_abm.scenario import load_scenario

KEEP = "output.checkpoint_days=[0.2]"  # the tiny run snapshots every 2 h: keeps 4 h
FORK_DAY = 240 / 1440
DRIVER = Path(__file__).with_name("kill_driver.py")
ROOT = Path(__file__).resolve().parents[1]
#: a therapy that starts exactly at the fork (CD8 cells stop killing)
THERAPY = ('therapy=[{kind="scale_behaviour", cell_types=["cd8"], behaviour="kill", '
           f'factor=0.0, start_day={FORK_DAY!r}}}]')


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_tiny(out: Path, *overrides: str) -> Path:
    run_scenario(load_scenario(TINY, [KEEP, *overrides]), out, progress=False)
    return out


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted tiny run, with a kept checkpoint at 4 h."""
    return run_tiny(tmp_path_factory.mktemp("straight") / "run.h5")


def driver(args: list[str], kill_at: int, cwd: Path, threads: int | None = None):
    env = {**os.environ, "KILL_AT": str(kill_at), "PYTHONPATH": str(ROOT)}
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    return subprocess.run([sys.executable, str(DRIVER), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


RUN_ARGS = ["run", str(TINY), "--out", "k.h5", "--quiet", "--set", KEEP]


@pytest.fixture(scope="module")
def n_ops(tmp_path_factory) -> int:
    """How many write operations the tiny run makes (the kill driver counts)."""
    folder = tmp_path_factory.mktemp("count")
    res = driver(RUN_ARGS, 0, folder)
    assert res.returncode == 0, res.stderr
    return int(res.stderr.strip().splitlines()[-1].split()[1])


def kill_points(n: int) -> list[int]:
    """Where to kill: through file creation and the first snapshot (every few
    operations), spread over the run, and each of the last three (the final
    snapshot's clean-up, the completion flush, the rename)."""
    rng = np.random.default_rng(18)
    early = list(range(60, 130, 14))
    spread = sorted(int(k) for k in rng.integers(130, n - 5, size=5))
    return early + spread + list(range(n - 2, n + 1))


def test_resume_after_sigkill_anywhere_equals_the_uninterrupted_run(
    straight, n_ops, tmp_path
):
    points = kill_points(n_ops)
    resumed_anything = 0
    for k in points:
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        res = driver(RUN_ARGS, k, folder)
        assert res.returncode == -9, (k, res.returncode, res.stderr[-2000:])
        partial = folder / "k.h5.partial"
        assert partial.exists() and not (folder / "k.h5").exists()
        if k == points[0]:  # the original command says the run can be resumed, and how
            again = driver(RUN_ARGS, 0, folder)
            assert again.returncode == 2 and "tme-abm resume k.h5.partial" in again.stderr
        # half the trials resume on one thread, half on two: the result is the same
        numba.set_num_threads(1 + k % 2)
        try:
            resume_run(partial, progress=False)
        except RestartError as exc:  # killed before the first flush: nothing to resume
            assert "killed before its first flush" in str(exc), (k, exc)
            assert k < 130, k
            continue
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        assert not partial.exists()
        assert differences(straight, folder / "k.h5") == [], k
        assert broken_scales(folder / "k.h5") == [], k
        with h5py.File(folder / "k.h5") as f:
            assert int(f.attrs["complete"]) == 1
        resumed_anything += 1
    assert resumed_anything >= len(points) - 6


def test_a_killed_resume_resumes(straight, n_ops, tmp_path):
    folder = tmp_path
    assert driver(RUN_ARGS, n_ops // 3, folder).returncode == -9
    with h5py.File(folder / "k.h5.partial") as f:
        cut = int(f["time"].shape[0])
    res = driver(["resume", "k.h5.partial", "--quiet"], 200, folder)  # dies again
    assert res.returncode == -9
    with h5py.File(folder / "k.h5.partial") as f:
        assert f["time"].shape[0] >= cut - 1  # nothing completed was lost
        assert f.attrs["resumed"]
    res = driver(["resume", "k.h5.partial", "--quiet"], 0, folder)
    assert res.returncode == 0, res.stderr
    assert differences(straight, folder / "k.h5") == []


def test_resume_reads_a_format_1_1_checkpoint(straight, tmp_path):
    """Files written before 1.2 have no checksums and no vessel sites in
    their checkpoint: they resume all the same."""
    assert driver(RUN_ARGS, 400, tmp_path).returncode == -9
    partial = tmp_path / "k.h5.partial"
    with h5py.File(partial, "r+") as f:
        grp = f["checkpoint"]
        for ds in grp.values():
            if "crc32" in ds.attrs:
                del ds.attrs["crc32"]
        del grp["vessel_sites"], grp["vessel_sites_dim0"]
        if "checkpoints" in f:
            del f["checkpoints"]
    resume_run(partial, progress=False)
    assert differences(straight, tmp_path / "k.h5", only="lattice") == []
    assert differences(straight, tmp_path / "k.h5", only="cells") == []


@pytest.fixture
def interrupted(tmp_path) -> Path:
    assert driver(RUN_ARGS, 500, tmp_path).returncode == -9
    return tmp_path / "k.h5.partial"


def test_resume_refuses_another_scenario_and_changes_nothing(interrupted, capsys):
    before = sha(interrupted)
    rc = main(["resume", str(interrupted), str(TINY), "--set", KEEP,
               "--set", "cell_types.tumour.division_rate_per_min=0.003", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "another scenario" in err and "division_rate_per_min" in err
    assert "Traceback" not in err
    rc = main(["resume", str(interrupted), "--seed", "8", "--quiet"])
    assert rc == 2 and "seed 7, not 8" in capsys.readouterr().err
    assert sha(interrupted) == before


def test_resume_refuses_a_corrupt_checkpoint_and_changes_nothing(interrupted, capsys):
    with h5py.File(interrupted, "r+") as f:
        conc = f["checkpoint/conc"]
        conc[0, 0, 0, 0] = conc[0, 0, 0, 0] + 1.0  # the checksum no longer matches
        if "checkpoints" in f:
            del f["checkpoints"]  # no older checkpoint to fall back on
    before = sha(interrupted)
    rc = main(["resume", str(interrupted), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match its checksum" in err and "Traceback" not in err
    assert sha(interrupted) == before


def test_resume_refuses_a_newer_format_and_changes_nothing(interrupted, capsys):
    with h5py.File(interrupted, "r+") as f:
        f.attrs["format_version"] = "1.9"
    before = sha(interrupted)
    assert main(["resume", str(interrupted), "--quiet"]) == 2
    assert "newer than this tme_abm" in capsys.readouterr().err
    assert sha(interrupted) == before


def test_resume_of_a_complete_or_missing_run(straight, tmp_path, capsys):
    assert main(["resume", str(straight), "--quiet"]) == 2
    assert "already complete" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "none.h5.partial"), "--quiet"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_checkpoint_is_committed_with_its_snapshot(straight):
    with h5py.File(straight) as f:
        assert float(f["checkpoint"].attrs["time_min"]) == float(f["time"][-1])
        assert list(f["checkpoints"]) == ["s000002"]  # 4 h: the third snapshot
        assert float(f["checkpoints/s000002"].attrs["time_min"]) == 240.0
        assert "_checkpoint_tmp" not in f and "_checkpoint_old" not in f
    assert forkable_days(straight) == [FORK_DAY, 0.5]
    assert run_summary(straight)["kept_checkpoint_days"] == [FORK_DAY]
    # every dataset's dimension scales resolve, the kept copy's included
    assert broken_scales(straight) == []


def test_fork_without_changes_continues_as_the_parent(straight, tmp_path):
    out = tmp_path / "fork.h5"
    fork_run(straight, FORK_DAY, out, progress=False)
    assert differences(straight, out, skip_root=frozenset({"parent_run", "lineage"})) == []
    assert broken_scales(out) == []
    with h5py.File(out) as f:
        parent = json.loads(f.attrs["parent_run"])
    assert parent["file"] == str(straight.resolve())
    assert parent["sha256"] == sha(straight)
    assert parent["time_min"] == 240.0 and parent["seed"] == 7 and parent["snapshot"] == 2


def test_fork_with_a_therapy_equals_a_run_treated_from_that_day(straight, tmp_path):
    treated = run_tiny(tmp_path / "treated.h5", THERAPY)
    out = tmp_path / "fork.h5"
    rc = main(["fork", str(straight), "--day", "0.2", "--set", THERAPY, "--out", str(out),
               "--quiet"])
    assert rc == 0
    assert differences(treated, out, skip_root=frozenset({"parent_run", "lineage"})) == []
    with h5py.File(straight) as a, h5py.File(out) as b:
        n = 3  # snapshots up to and including the fork's
        assert np.array_equal(a["lattice/cell_type"][:n], b["lattice/cell_type"][:n])
        assert np.array_equal(a["fields/il6"][:n], b["fields/il6"][:n])
        k = 49  # ticks up to and including the fork's
        assert np.array_equal(a["timeseries/count_tumour"][:k], b["timeseries/count_tumour"][:k])
        # after the fork the untreated and treated runs part
        assert not np.array_equal(a["timeseries/kills_cd8"][k:], b["timeseries/kills_cd8"][k:])
        assert b["timeseries/kills_cd8"][k:].sum() == 0
        assert a["timeseries/kills_cd8"][k:].sum() > 0
    # the same therapy written "from day 0", moved to start at the fork
    moved = tmp_path / "moved.h5"
    rc = main(["fork", str(straight), "--day", "0.2", "--set",
               THERAPY.replace(repr(FORK_DAY), "0.0"), "--treat-from-fork",
               "--out", str(moved), "--quiet"])
    assert rc == 0
    skip = frozenset({"parent_run", "lineage", "overrides", "scenario_resolved_json"})
    assert differences(treated, moved, skip_root=skip) == []
    with h5py.File(moved) as f:
        assert json.loads(f.attrs["parent_run"])["therapy_shift_days"] == FORK_DAY
        assert json.loads(f.attrs["scenario_resolved_json"])["therapy"][0]["start_day"] == (
            FORK_DAY)


def test_a_fork_of_a_fork_keeps_the_chain(straight, tmp_path):
    first = tmp_path / "a.h5"
    fork_run(straight, FORK_DAY, first, seed=11, progress=False)
    second = tmp_path / "b.h5"
    fork_run(first, FORK_DAY, second, seed=12, progress=False)
    with h5py.File(second) as f:
        chain = json.loads(f.attrs["lineage"])
        assert int(f.attrs["seed"]) == 12
    assert [c["file"] for c in chain] == [str(straight.resolve()), str(first.resolve())]
    assert [c["seed"] for c in chain] == [7, 11]
    # a new seed from day D on: the same history, another future
    assert differences(straight, first, only="lattice") != []
    with h5py.File(straight) as a, h5py.File(first) as b:
        assert np.array_equal(a["lattice/cell_type"][:3], b["lattice/cell_type"][:3])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "0.3"], "has no checkpoint"),
        (["--day", "0.2", "--set", "domain.shape=[30, 30]"], "domain.shape"),
        (["--day", "0.2", "--set", "domain.dt_min=2.5"], "domain.dt_min"),
        (["--day", "0.2", "--set", THERAPY.replace(repr(FORK_DAY), "0.1")], "therapy.0"),
        (["--day", "0.2", "--set", "output.cells=false"], "output.cells"),
        (["--day", "0.5", "--set", "domain.duration_days=0.4"], "domain.duration_days"),
        (["--day", "0.2", "--set", "cell_types.tumour.bogus=1"], "bogus"),
    ],
)
def test_fork_refuses_what_it_cannot_do(straight, tmp_path, capsys, args, message):
    out = tmp_path / "fork.h5"
    rc = main(["fork", str(straight), *args, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_fork_never_writes_over_its_parent_or_an_existing_file(straight, tmp_path, capsys):
    before = sha(straight)
    assert main(["fork", str(straight), "--out", str(straight), "--quiet", "--force"]) == 2
    assert "parent run itself" in capsys.readouterr().err
    taken = tmp_path / "taken.h5"
    taken.write_bytes(b"keep me")
    assert main(["fork", str(straight), "--out", str(taken), "--quiet"]) == 2
    assert taken.read_bytes() == b"keep me" and sha(straight) == before


def test_fork_with_a_longer_duration_and_a_scenario_file(straight, tmp_path):
    """A fork may run longer than its parent, with another scenario file."""
    scenario = tmp_path / "longer.toml"
    scenario.write_text(TINY.read_text().replace("duration_days = 0.5", "duration_days = 0.75"))
    out = tmp_path / "longer.h5"
    # SCENARIO after the options, as the README writes it
    rc = main(["fork", str(straight), "--set", KEEP, str(scenario), "--out", str(out),
               "--quiet"])
    assert rc == 0
    with h5py.File(out) as f, h5py.File(straight) as p:
        assert f["time"][-1] == 0.75 * 1440
        n = p["time"].shape[0]
        assert np.array_equal(f["lattice/cell_type"][:n], p["lattice/cell_type"][:])
        assert f.attrs["scenario"] == scenario.read_text()


def test_fork_of_an_interrupted_run(interrupted, tmp_path):
    with h5py.File(interrupted) as f:
        last = float(f["time"][-1])
    out = tmp_path / "from_partial.h5"
    fork_run(interrupted, None, out, progress=False)
    with h5py.File(out) as f:
        assert json.loads(f.attrs["parent_run"])["time_min"] == last
        assert json.loads(f.attrs["parent_run"])["complete"] is False
        assert f["time"][-1] == 720.0


def test_model_from_run_continues_like_the_run(straight):
    model = TMEModel.from_run(straight, day=0.2)
    assert model.engine.tick == 48 and model.steps == 48
    while model.running:
        model.step()
    arrays, _ = read_checkpoint(straight)
    for name in ("id", "type", "site", "stat3"):
        assert np.array_equal(model.engine.cells.columns()[name], arrays[name]), name
    frame = model.datacollector.get_model_vars_dataframe()
    assert len(frame) == 144 - 48 + 1  # the series restart at the fork, indexed by tick
    assert frame.index[0] == 48 and frame.index[-1] == 144


def test_model_from_run_refuses_a_day_without_checkpoint(straight):
    with pytest.raises(ForkError, match="can be forked at day"):
        TMEModel.from_run(straight, day=0.3)


def test_resume_error_for_a_partial_killed_before_its_first_flush(tmp_path, capsys):
    partial = tmp_path / "x.h5.partial"
    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert main(["resume", str(partial), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "killed before its first flush" in err
    with pytest.raises(RestartError):
        resume_run(partial, progress=False)
    shutil.rmtree(tmp_path)


def sweep_file(folder: Path, parent: Path, day: float = 0.2) -> Path:
    path = folder / "arms.toml"
    path.write_text(
        f'name = "arms"\nscenarios = ["{TINY}"]\nreplicates = 2\nentropy = 5\n\n'
        f'[parent]\nrun = "{parent}"\nday = {day}\n\n'
        '[[parameters]]\nkey = "cell_types.tumour.division_rate_per_min"\n'
        "values = [0.002, 0.004]\n"
    )
    return path


@pytest.fixture(scope="module")
def arms(straight, tmp_path_factory) -> Path:
    """A sweep whose four runs all branch from the straight run at 4 h."""
    folder = tmp_path_factory.mktemp("arms")
    assert main(["sweep", str(sweep_file(folder, straight)), "--out", str(folder / "out"),
                 "--workers", "1", "--quiet"]) == 0
    return folder / "out"


def test_a_sweep_branches_every_run_from_the_parent(straight, arms):
    runs = sorted((arms / "runs").glob("*.h5"))
    assert len(runs) == 4
    with h5py.File(straight) as p:
        history = p["lattice/cell_type"][:3]
    finals = []
    for run in runs:
        with h5py.File(run) as f:
            assert json.loads(f.attrs["parent_run"])["file"] == str(straight.resolve())
            assert np.array_equal(f["lattice/cell_type"][:3], history)
            finals.append(f["lattice/cell_type"][-1])
    # replicates part from day D on, by their seeds
    assert not np.array_equal(finals[0], finals[1])


def test_a_killed_sweep_resumes_its_interrupted_run(straight, arms, tmp_path):
    sweep = sweep_file(tmp_path, straight)
    args = ["sweep", str(sweep), "--out", "out", "--workers", "1", "--quiet"]
    assert driver(args, 1500, tmp_path).returncode == -9
    assert list((tmp_path / "out" / "runs").glob("*.partial"))
    res = driver(args, 0, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "1 resumed" in res.stdout
    for run in (arms / "runs").glob("*.h5"):
        assert differences(run, tmp_path / "out" / "runs" / run.name) == [], run.name


def test_a_sweep_whose_parent_cannot_be_forked_there_runs_nothing(straight, tmp_path, capsys):
    sweep = sweep_file(tmp_path, straight, day=0.3)
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "has no checkpoint" in err and err.count("has no checkpoint") == 1
    assert not (tmp_path / "out").exists()


def test_the_page_opens_at_a_checkpoint_of_a_run(straight, monkeypatch):
    from tme_abm.viz.interactive import InteractiveModel, first_model
    from tme_abm.viz.server import FROM_DAY_ENV, FROM_RUN_ENV, server_environment

    env = server_environment({}, None, 2, straight, 0.2)
    assert env[FROM_RUN_ENV] == str(straight.resolve()) and float(env[FROM_DAY_ENV]) == 0.2
    monkeypatch.setenv(FROM_RUN_ENV, env[FROM_RUN_ENV])
    monkeypatch.setenv(FROM_DAY_ENV, env[FROM_DAY_ENV])
    model = first_model()
    assert isinstance(model, InteractiveModel) and model.engine.tick == 48
    assert "opened at day 0.166667" in model.notes[0]
    model.step()
    assert model.engine.tick == 49 and model.steps == 49
    # the page's time series start at the checkpoint's day, not at 0
    from tme_abm.viz.frames import LiveSource
    from tme_abm.viz.series import LiveSeries, chart_payload

    catalogue = LiveSource(model).catalogue
    days = chart_payload(LiveSeries(model, catalogue).update(), catalogue)[0]["x"]
    assert days[0] == pytest.approx(FORK_DAY, rel=1e-3)
    assert days[-1] == pytest.approx(49 * 5 / 1440, rel=1e-3)


def test_viz_refuses_a_run_it_cannot_open(straight, tmp_path, capsys):
    assert main(["viz", "--from-run", str(tmp_path / "none.h5")]) == 2
    assert "no such run file" in capsys.readouterr().err
    assert main(["viz", "--from-run", str(straight), "--day", "0.3"]) == 2
    assert "has no checkpoint" in capsys.readouterr().err
    assert main(["viz", "--day", "1"]) == 2
    assert "only with --from-run" in capsys.readouterr().err


def test_plot_of_a_forked_sweep_marks_the_fork(arms, tmp_path):
    from tme_abm.viz import plots

    written = plots.plot_sweep(arms, tmp_path / "plots")
    assert "timecourses_by_scenario.png" in [p.name for p in written]
    plan = plots._sweep_plan(arms, log=lambda _: None)
    fig = plots._timecourse_figure(plan)
    ax = fig.axes[0]
    assert ax.get_title() == "tumour cells"
    vertical = [line for line in ax.lines if len(set(line.get_xdata())) == 1]
    assert vertical and vertical[0].get_xdata()[0] == FORK_DAY
    # the point-0 line is the mean of its two replicates' tumour counts
    line = next(line for line in ax.lines if line.get_label() == "tiny p0")
    runs = sorted((arms / "runs").glob("tiny-p0000-r*.h5"))
    counts = [h5py.File(r)["timeseries/count_tumour"][:] for r in runs]
    assert np.allclose(line.get_ydata(), np.mean(counts, axis=0))


def test_ctrl_c_stops_a_run_between_ticks_and_the_run_resumes(tmp_path):
    """SIGINT is acted on at the end of a tick, whatever Python was doing when
    it came (a KeyboardInterrupt raised inside a weakref callback is lost)."""
    import signal
    import time

    out = tmp_path / "long.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tme_abm", "run", str(TINY), "--out", str(out), "--quiet",
         "--set", "domain.duration_days=4"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    partial = Path(str(out) + ".partial")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with h5py.File(partial, "r", locking=False) as f:
                if f["time"].shape[0] >= 2:
                    break
        except (OSError, KeyError):
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with: tme-abm resume" in err and "Traceback" not in err
    assert partial.exists() and not out.exists()
    resume_run(partial, progress=False)
    with h5py.File(out) as f:
        assert f["time"][-1] == 4 * 1440 and int(f.attrs["complete"]) == 1


def test_a_finished_file_keeps_no_second_checkpoint(tmp_path, monkeypatch):
    """Replacing the checkpoint at each snapshot leaves a checkpoint's worth of
    freed space that HDF5 cannot give back at close; a file where that is
    more than a tenth is rewritten without it, readable as before."""
    import xarray as xr

    from tme_abm.io import repack as repack_module
    from tme_abm.io.repack import repack, unused_bytes

    short = load_scenario(TINY, ["domain.duration_days=0.25"])
    kept = tmp_path / "kept.h5"
    monkeypatch.setattr(repack_module, "REPACK_MIN_FRACTION", 10.0)  # never repack
    run_scenario(short, kept, progress=False)
    with h5py.File(kept) as f:
        checkpoint = sum(ds.id.get_storage_size() for ds in f["checkpoint"].values())
    assert unused_bytes(kept) > checkpoint  # HDF5 metadata, and the freed checkpoint
    monkeypatch.setattr(repack_module, "REPACK_MIN_FRACTION", 0.1)
    monkeypatch.setattr(repack_module, "_REPACK_MIN_BYTES", 0)  # the tiny run's MB count
    out = tmp_path / "packed.h5"
    run_scenario(short, out, progress=False)
    assert not Path(str(out) + ".partial").exists()
    assert not Path(str(out) + ".partial.repack").exists()
    # what is left unused is HDF5's metadata, less than a checkpoint's worth
    assert unused_bytes(out) < unused_bytes(kept) - 0.8 * checkpoint
    assert out.stat().st_size < kept.stat().st_size - 0.8 * checkpoint
    assert differences(kept, out) == []
    assert broken_scales(out) == []
    for group in ("fields", "lattice", "cells", "timeseries", "checkpoint"):
        with xr.open_dataset(out, engine="h5netcdf", group=group) as ds:
            assert len(ds.dims) > 0
    # the repacked copy holds what the file held
    copy = tmp_path / "copy.h5"
    repack(out, copy)
    assert differences(out, copy) == [] and broken_scales(copy) == []


def test_a_leftover_partial_next_to_its_finished_file_is_cleaned_up(straight, tmp_path):
    final = Path(shutil.copy(straight, tmp_path / "run.h5"))
    partial = Path(shutil.copy(straight, tmp_path / "run.h5.partial"))  # complete = 1
    with pytest.raises(RestartError, match="already complete"):
        resume_run(partial, progress=False)
    assert final.exists() and not partial.exists()
