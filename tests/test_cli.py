"""The ``tme-abm`` command as users see it, run in subprocesses.

Every run uses tests/data/tiny.toml (40 x 40 sites, 144 ticks, ~2 s with
numba's cache warm), shrunk further with ``--set`` where the full run is not
needed.  Runs shared by several tests are module fixtures.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from tme_abm.io import read_snapshot
from tme_abm.scenario.library import examples_dir

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.toml"
TINY_TEXT = TINY.read_text(encoding="utf-8")
TINY_TICKS = 144  # 0.5 days of 5 min
TINY_EVERY = 24  # 120 min snapshots / 5 min ticks
TINY_SHAPE = (40, 40)
TYPES = ("tumour", "cd8", "cd8_exhausted")
FIELDS = ("il6", "chemokine")
SHORT = "domain.duration_days=0.1"  # 28.8 -> 29 ticks: not a multiple of 24
# attributes that record wall-clock time and so differ between identical runs
TIMESTAMP_ATTRS = frozenset({"created", "finished", "written"})
# HDF5 object references between dimension scales; compared through the datasets themselves
REFERENCE_ATTRS = frozenset({"DIMENSION_LIST", "REFERENCE_LIST"})

Run = tuple[Path, subprocess.CompletedProcess]  # a run file and the process that wrote it


def tme(
    *args: object,
    cwd: Path,
    threads: int | None = 2,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tme_abm ARGS`` in ``cwd`` and return the finished process."""
    env = dict(os.environ)
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    return subprocess.run(
        [sys.executable, "-m", "tme_abm", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its contents."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def snapshot_times(n_ticks: int, every: int, dt: float) -> list[float]:
    """Snapshot times: tick 0, every ``every`` ticks, and the last tick if not a multiple."""
    ticks = list(range(0, n_ticks + 1, every))
    if ticks[-1] != n_ticks:
        ticks.append(n_ticks)
    return [t * dt for t in ticks]


def assert_same_run(a: Path, b: Path) -> None:
    """Two run files hold the same objects, data and attributes (timestamps aside)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a: list[str] = []
        names_b: list[str] = []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert names_a == names_b
        n_datasets = 0
        for name in ["/", *names_a]:
            oa, ob = fa[name], fb[name]
            assert type(oa) is type(ob), name
            keys_a = set(oa.attrs) - TIMESTAMP_ATTRS - REFERENCE_ATTRS
            keys_b = set(ob.attrs) - TIMESTAMP_ATTRS - REFERENCE_ATTRS
            assert keys_a == keys_b, name
            for key in keys_a:
                va, vb = oa.attrs[key], ob.attrs[key]
                assert np.array_equal(np.asarray(va), np.asarray(vb)), f"{name} attr {key}"
            if isinstance(oa, h5py.Dataset):
                n_datasets += 1
                assert oa.shape == ob.shape and oa.dtype == ob.dtype, name
                da, db = oa[()], ob[()]
                if da.dtype.kind == "f":
                    assert np.array_equal(da, db, equal_nan=True), name
                else:
                    assert np.array_equal(da, db), name
        assert n_datasets > 50


def cell_rows_match_lattice(f: h5py.File, n: int) -> None:
    """For snapshots 0..n-1 the cell rows (per row_size) sit where the lattice says."""
    row_size = f["cells/row_size"][:n]
    assert (row_size >= 0).all()
    assert int(row_size.sum()) <= f["cells/id"].shape[0]
    start = 0
    for i in range(n):
        stop = start + int(row_size[i])
        lattice = f["lattice/cell_type"][i]
        site = f["cells/site"][start:stop]
        ctype = f["cells/type"][start:stop]
        ids = f["cells/id"][start:stop]
        assert len(site) == len(ctype) == len(ids) == row_size[i]
        assert len(np.unique(ids)) == len(ids), f"snapshot {i}: duplicate cell ids"
        assert len(np.unique(site)) == len(site), f"snapshot {i}: two cells on one site"
        assert np.array_equal(lattice.ravel()[site], ctype), f"snapshot {i}"
        assert int((lattice >= 0).sum()) == row_size[i], f"snapshot {i}"
        start = stop


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The whole tiny scenario at the default output path (cwd/output/tiny.h5)."""
    cwd = tmp_path_factory.mktemp("full")
    proc = tme("run", TINY, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd / "output" / "tiny.h5", proc


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A shortened, reshaped, reseeded tiny run written to --out."""
    cwd = tmp_path_factory.mktemp("small")
    proc = tme(
        "run", TINY, "--out", "runs/small.h5", "--seed", 11,
        "--set", "domain.shape=[30,20]", "--set", SHORT, "--quiet",
        cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return cwd / "runs" / "small.h5", proc


# ------------------------------------------------------------ run, end to end


def test_run_writes_file_and_summary(full_run: Run) -> None:
    path, proc = full_run
    assert path.is_file()
    assert not path.with_name("tiny.h5.partial").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.h5"]
    out = proc.stdout
    assert "wrote output/tiny.h5" in out
    assert f"{1 + TINY_TICKS // TINY_EVERY} snapshots" in out
    assert f"0.5 days in {TINY_TICKS} ticks" in out
    assert re.search(r"cells at the end: tumour \d+, cd8 \d+, cd8_exhausted \d+", out)
    assert "mean STAT3:" in out
    assert "Traceback" not in proc.stderr


def test_run_file_layout(full_run: Run) -> None:
    path, _ = full_run
    n = 1 + TINY_TICKS // TINY_EVERY
    with h5py.File(path, "r") as f:
        for name in ("time", "x", "y", "lattice/cell_type", "cells/id", "cells/row_size",
                     "timeseries/tick_time", "timeseries/count_tumour"):  # fmt: skip
            assert isinstance(f[name], h5py.Dataset), name
        assert isinstance(f["checkpoint"], h5py.Group)
        for field in FIELDS:
            assert f[f"fields/{field}"].shape == (n, *TINY_SHAPE)
            assert f[f"fields/{field}"].dtype == np.float32
        a = f.attrs
        assert a["format"] == "tme-abm-run"
        assert a["seed"] == 7
        assert a["scenario"] == TINY_TEXT
        assert a["scenario_name"] == "tiny"
        assert a["overrides"] == ""
        assert a["complete"] == 1
        assert a["n_snapshots"] == n
        assert f["lattice/cell_type"].shape == (n, *TINY_SHAPE)
        assert f["lattice/cell_type"].dtype == np.int8
        assert f["lattice/cell_type"].attrs["flag_meanings"] == " ".join((*TYPES, "empty"))
        assert f["time"][:].tolist() == snapshot_times(TINY_TICKS, TINY_EVERY, 5.0)
        assert f["cells/row_size"].shape == (n,)
        assert f["cells/id"].shape[0] == int(f["cells/row_size"][:].sum()) > 0
        assert f["timeseries/tick_time"][:].tolist() == [5.0 * k for k in range(TINY_TICKS + 1)]
        assert f["timeseries/count_tumour"].shape == (TINY_TICKS + 1,)
        assert f["checkpoint"].attrs["tick"] == TINY_TICKS
        assert f["checkpoint"].attrs["time_min"] == TINY_TICKS * 5.0
        assert f["x"][:].tolist() == [(i + 0.5) * 20.0 for i in range(TINY_SHAPE[1])]
        cell_rows_match_lattice(f, n)
        # the series agree with the last snapshot
        last = f["lattice/cell_type"][n - 1]
        assert f["timeseries/count_tumour"][-1] == int((last == 0).sum())


def test_run_final_snapshot_when_not_a_multiple(
    small_run: Run,
) -> None:
    path, proc = small_run
    ticks = round(0.1 * 1440 / 5)  # 29
    expected = snapshot_times(ticks, TINY_EVERY, 5.0)
    assert expected == [0.0, 120.0, 145.0]
    with h5py.File(path, "r") as f:
        assert f["time"][:].tolist() == expected
        assert f.attrs["n_snapshots"] == len(expected)
        assert f["timeseries/tick_time"].shape == (ticks + 1,)
        assert f["checkpoint"].attrs["tick"] == ticks
    assert f"{len(expected)} snapshots" in proc.stdout
    assert "wrote runs/small.h5" in proc.stdout
    assert not path.with_name("small.h5.partial").exists()


def test_run_seed_and_overrides_recorded(
    small_run: Run,
) -> None:
    path, _ = small_run
    with h5py.File(path, "r") as f:
        assert f.attrs["seed"] == 11
        assert f["checkpoint"].attrs["seed"] == 11
        assert f.attrs["overrides"].splitlines() == ["domain.shape=[30,20]", SHORT]
        assert f.attrs["scenario"] == TINY_TEXT  # the file as written, overrides apart


def test_run_set_shape(small_run: Run) -> None:
    path, _ = small_run
    with h5py.File(path, "r") as f:
        n = f["time"].shape[0]
        assert f["lattice/cell_type"].shape == (n, 30, 20)
        assert f["fields/il6"].shape == (n, 30, 20)
        assert f["y"].shape == (30,) and f["x"].shape == (20,)
        assert f.attrs["lattice_shape"].tolist() == [30, 20]
        cell_rows_match_lattice(f, n)


def test_quiet_run_prints_no_progress(small_run: Run) -> None:
    _, proc = small_run
    assert proc.stderr == ""


# ------------------------------------------------------------------ xarray


def test_xarray_opens_groups(full_run: Run) -> None:
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    path, _ = full_run
    n = 1 + TINY_TICKS // TINY_EVERY
    with xr.open_dataset(path, engine="h5netcdf", group="fields") as ds:
        assert set(ds.data_vars) == set(FIELDS)
        assert ds["il6"].dims == ("time", "y", "x")
        assert dict(ds.sizes) == {"time": n, "y": TINY_SHAPE[0], "x": TINY_SHAPE[1]}
        assert ds["time"].values.tolist() == snapshot_times(TINY_TICKS, TINY_EVERY, 5.0)
        assert ds["x"].values.tolist() == [(i + 0.5) * 20.0 for i in range(TINY_SHAPE[1])]
        assert ds["il6"].attrs["units"] == "ng/mL"
        assert ds["il6"].attrs["long_name"] == "IL-6"
        with h5py.File(path, "r") as f:
            assert np.array_equal(ds["il6"].values, f["fields/il6"][()])
    with xr.open_dataset(path, engine="h5netcdf", group="lattice") as ds:
        assert ds["cell_type"].dims == ("time", "y", "x")
        assert ds["cell_type"].shape == (n, *TINY_SHAPE)
    with xr.open_dataset(path, engine="h5netcdf", group="timeseries") as ds:
        assert dict(ds.sizes) == {"tick_time": TINY_TICKS + 1}
        assert ds["count_tumour"].dims == ("tick_time",)
        for t in TYPES:
            assert f"count_{t}" in ds.data_vars and f"stat3_mean_{t}" in ds.data_vars
    with xr.open_dataset(path, engine="h5netcdf", group="cells") as ds:
        assert ds["id"].dims == ("cell",)
        assert ds["row_size"].dims == ("time",)
        assert int(ds["row_size"].sum()) == ds.sizes["cell"]


# ------------------------------------------------------------------ inspect


def test_inspect_complete_run(full_run: Run) -> None:
    path, _ = full_run
    proc = tme("inspect", path, cwd=path.parent)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"status\s+complete", out)
    assert re.search(r"scenario\s+tiny, seed 7", out)
    assert re.search(r"snapshots\s+7, t = 0 \.\. 720 min", out)
    for field in FIELDS:
        assert re.search(rf"^\s+{field}\s", out, re.M), field
    with h5py.File(path, "r") as f:
        first, last = f["lattice/cell_type"][0], f["lattice/cell_type"][-1]
    for code, name in enumerate(TYPES):
        m = re.search(rf"^\s+{name}\s+(\d+)\s+(\d+)\s*$", out, re.M)
        assert m, name
        assert int(m.group(1)) == int((first == code).sum())
        assert int(m.group(2)) == int((last == code).sum())
    assert "partial" not in out.lower()


# ------------------------------------------------------------ bad input


def _scenario_with(tmp_path: Path, old: str, new: str) -> Path:
    assert old in TINY_TEXT
    f = tmp_path / "bad.toml"
    f.write_text(TINY_TEXT.replace(old, new, 1), encoding="utf-8")
    return f


BAD_RUNS: dict[str, tuple[list[str], dict[str, str] | None, list[str]]] = {
    # name: (arguments after "run SCENARIO", replacement in tiny.toml, expected stderr bits)
    "negative dt via --set": (
        ["--set", "domain.dt_min=-1"], None, ["domain.dt_min", "greater than 0"]
    ),
    "unknown key in file": (
        [], {"site_um = 20.0": "site_size = 20.0"},
        ["domain.site_size", "shape, site_um, dt_min, duration_days"],
    ),
    "unknown signal in file": (
        [], {'signal = "stat3"': 'signal = "ifng"'}, ["rules.0.signal", "il6, chemokine"]
    ),
    "wrong type in file": (
        [], {"diffusion_um2_per_min = 1140.0": 'diffusion_um2_per_min = "fast"'},
        ["fields.il6.diffusion_um2_per_min", "valid number"],
    ),
    "set without equals": (["--set", "foo"], None, ["--set foo", "KEY=VALUE"]),
    "negative seed": (["--seed", "-1"], None, ["--seed", "non-negative"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_run_bad_input_exits_2_and_writes_nothing(case: str, tmp_path: Path) -> None:
    extra, replace, needles = BAD_RUNS[case]
    scenario = TINY
    if replace:
        ((old, new),) = replace.items()
        scenario = _scenario_with(tmp_path, old, new)
    before = tree(tmp_path)
    proc = tme("run", scenario, *extra, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    for line in proc.stderr.splitlines():
        assert line.startswith("tme-abm: error: ")
    assert tree(tmp_path) == before  # no output/, no .h5, no .partial


def test_several_problems_one_line_each(tmp_path: Path) -> None:
    proc = tme(
        "run", TINY, "--set", "domain.site_um=0", "--set", "domain.dt_min=0",
        "--set", "domain.bogus=1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"tme-abm: error: {TINY}: domain.") for line in lines)
    for key in ("domain.site_um:", "domain.dt_min:", "domain.bogus:"):
        assert sum(key in line for line in lines) == 1, key
    assert not (tmp_path / "output").exists()


def test_run_missing_scenario(tmp_path: Path) -> None:
    proc = tme("run", "nope.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "tme-abm: error: nope.toml: no such file"
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_bad_toml_names_file(tmp_path: Path) -> None:
    bad = _scenario_with(tmp_path, "[domain]", "[domain")
    proc = tme("run", bad, "--out", "x.h5", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{bad}: not valid TOML" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


@pytest.mark.parametrize("where", ["--out", "default"])
def test_existing_output_needs_force(where: str, tmp_path: Path, full_run: Run) -> None:
    target = tmp_path / ("old.h5" if where == "--out" else "output/tiny.h5")
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(full_run[0], target)
    before = tree(tmp_path)
    args = ["--out", "old.h5"] if where == "--out" else []
    proc = tme("run", TINY, *args, "--set", SHORT, cwd=tmp_path)
    assert proc.returncode == 2
    assert "already exists" in proc.stderr and "--force" in proc.stderr
    assert str(target.relative_to(tmp_path)) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(tmp_path) == before  # old file byte-identical, no .partial


def test_leftover_partial_needs_force(tmp_path: Path) -> None:
    partial = tmp_path / "run.h5.partial"
    partial.write_bytes(b"left by a killed run")
    proc = tme("run", TINY, "--out", "run.h5", "--set", SHORT, cwd=tmp_path)
    assert proc.returncode == 2
    assert "run.h5.partial" in proc.stderr and "--force" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert partial.read_bytes() == b"left by a killed run"
    assert not (tmp_path / "run.h5").exists()


def test_out_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    before = tree(tmp_path)
    proc = tme("run", TINY, "--out", "afile/run.h5", "--set", SHORT, cwd=tmp_path)
    assert proc.returncode == 2
    assert "afile/run.h5" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(tmp_path) == before


def test_out_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    proc = tme("run", TINY, "--out", "d", "--force", "--set", SHORT, cwd=tmp_path)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr and "Traceback" not in proc.stderr
    assert list((tmp_path / "d").iterdir()) == []


def test_force_replaces_existing_run(tmp_path: Path) -> None:
    out = tmp_path / "run.h5"
    out.write_bytes(b"an old result")
    proc = tme("run", TINY, "--out", "run.h5", "--force", "--set", SHORT, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert h5py.is_hdf5(out)
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] == 1
        assert f["time"].shape == (3,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "no such run file"), (b"just some text\n", "not an HDF5 file")],
    ids=["missing", "not-hdf5"],
)
def test_inspect_bad_file(content: bytes | None, needle: str, tmp_path: Path) -> None:
    f = tmp_path / "run.h5"
    if content is not None:
        f.write_bytes(content)
    before = tree(tmp_path)
    proc = tme("inspect", f, cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr and str(f) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert tree(tmp_path) == before


def test_inspect_hdf5_that_is_not_a_run(tmp_path: Path) -> None:
    f = tmp_path / "other.h5"
    with h5py.File(f, "w") as h:
        h["data"] = np.arange(3)
    proc = tme("inspect", f, cwd=tmp_path)
    assert proc.returncode == 2
    assert "not a tme-abm run file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_good_file(tmp_path: Path) -> None:
    proc = tme("validate", TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout and "'tiny'" in proc.stdout
    assert "40 x 40" in proc.stdout and "144 ticks" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_validate_baseline(tmp_path: Path) -> None:
    proc = tme("validate", examples_dir() / "baseline.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "valid scenario 'baseline'" in proc.stdout


def test_validate_invalid_file(tmp_path: Path) -> None:
    bad = _scenario_with(tmp_path, 'cell_type = "tumour"\nregion', 'cell_type = "nk"\nregion')
    proc = tme("validate", bad, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert f"{bad}: placement.0.cell_type: unknown cell type 'nk'" in proc.stderr
    assert "tumour, cd8, cd8_exhausted" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_validate_with_set(tmp_path: Path) -> None:
    good = tme("validate", TINY, "--set", "domain.shape=[30,20]", cwd=tmp_path)
    assert good.returncode == 0 and "30 x 20" in good.stdout
    bad = tme("validate", TINY, "--set", "domain.dt_min=-1", cwd=tmp_path)
    assert bad.returncode == 2 and "domain.dt_min" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tme_abm", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"tme-abm {importlib.metadata.version('tme_abm')}"
    assert re.fullmatch(r"tme-abm \d+\.\d+\S*", proc.stdout.strip())


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = tme(cwd=tmp_path, threads=None)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------ reproducibility


def test_same_seed_same_run(tmp_path: Path, full_run: Run) -> None:
    proc = tme("run", TINY, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same_run(full_run[0], tmp_path / "output" / "tiny.h5")


def test_thread_count_does_not_change_run(tmp_path: Path, full_run: Run) -> None:
    # full_run used NUMBA_NUM_THREADS=2
    proc = tme("run", TINY, "--quiet", cwd=tmp_path, threads=1)
    assert proc.returncode == 0, proc.stderr
    assert_same_run(full_run[0], tmp_path / "output" / "tiny.h5")


def test_other_seed_other_run(tmp_path: Path, full_run: Run) -> None:
    proc = tme("run", TINY, "--seed", 8, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(full_run[0], "r") as fa, h5py.File(tmp_path / "output/tiny.h5", "r") as fb:
        assert fb.attrs["seed"] == 8
        a, b = fa["lattice/cell_type"][()], fb["lattice/cell_type"][()]
        assert a.shape == b.shape
        assert not np.array_equal(a[-1], b[-1])
        assert not np.array_equal(fa["fields/il6"][-1], fb["fields/il6"][-1])


# ------------------------------------------------------------ interrupted run


def _complete_snapshots(partial: Path) -> int:
    """len(/time) of a file that may be mid-write; 0 if it cannot be read yet."""
    try:
        with h5py.File(partial, "r", locking=False) as f:
            return int(f["time"].shape[0])
    except Exception:  # being written: any HDF5 error just means "not yet"
        return 0


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A longer run SIGKILLed once its .partial holds at least 3 snapshots."""
    cwd = tmp_path_factory.mktemp("killed")
    out = cwd / "long.h5"
    partial = cwd / "long.h5.partial"
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    args = [
        sys.executable, "-m", "tme_abm", "run", str(TINY), "--out", str(out),
        "--set", "domain.duration_days=3", "--set", "domain.shape=[120,120]",
        "--set", "output.snapshot_every_min=30", "--quiet",
    ]  # fmt: skip
    log = (cwd / "stderr.txt").open("wb")
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    seen = 0
    try:
        deadline = time.monotonic() + 150  # first run may compile numba kernels
        while seen < 3:
            if proc.poll() is not None:
                pytest.fail(f"run ended (rc {proc.returncode}) before it could be killed")
            if time.monotonic() > deadline:
                pytest.fail(f"no 3 snapshots in {partial} after 150 s")
            time.sleep(0.05)
            if partial.exists():
                seen = _complete_snapshots(partial)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    return {"out": out, "partial": partial, "seen": seen, "rc": proc.returncode, "cwd": cwd}


def test_sigkill_leaves_readable_partial(killed_run: dict[str, Any]) -> None:
    out, partial = killed_run["out"], killed_run["partial"]
    assert killed_run["rc"] == -signal.SIGKILL
    assert not out.exists()
    assert partial.is_file()
    with h5py.File(partial, "r") as f:
        n = f["time"].shape[0]
        assert n >= killed_run["seen"] >= 3
        assert f.attrs["complete"] == 0
        assert f["time"][:n].tolist() == [30.0 * i for i in range(n)]
        # a kill mid-snapshot may leave one extra row elsewhere, never a missing one
        assert f["lattice/cell_type"].shape[0] in (n, n + 1)
        assert f["cells/row_size"].shape[0] in (n, n + 1)
        for i in range(n):
            lattice = f["lattice/cell_type"][i]
            assert lattice.shape == (120, 120)
            assert lattice.min() >= -1 and lattice.max() < len(TYPES)
            for field in FIELDS:
                data = f[f"fields/{field}"][i]
                assert data.shape == (120, 120)
                assert np.isfinite(data).all() and (data >= 0).all()
        cell_rows_match_lattice(f, n)
        assert f["timeseries/tick_time"].shape[0] >= 6 * (n - 1) + 1
        # the checkpoint follows each snapshot: the last one's, or the one before if killed between
        assert f["checkpoint"].attrs["tick"] in (6 * (n - 1), 6 * (n - 2))
    for i in range(n):  # and the package's own reader agrees
        snap = read_snapshot(partial, i)
        assert snap["time_min"] == 30.0 * i
        assert len(snap["cells"]["id"]) == int((snap["cell_type"] >= 0).sum())


def test_inspect_partial(killed_run: dict[str, Any]) -> None:
    partial = killed_run["partial"]
    proc = tme("inspect", partial, cwd=killed_run["cwd"])
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"status\s+PARTIAL", proc.stdout)
    assert "partial file" in proc.stdout
    assert re.search(r"scenario\s+tiny", proc.stdout)
    status = re.search(r"^\s+status\s+(\S+)", proc.stdout, re.M)
    assert status and status.group(1) == "PARTIAL"


def test_rerun_after_kill_needs_force(killed_run: dict[str, Any]) -> None:
    cwd = killed_run["cwd"]
    before = killed_run["partial"].read_bytes()
    proc = tme("run", TINY, "--out", "long.h5", "--set", SHORT, cwd=cwd)
    assert proc.returncode == 2
    assert "interrupted run" in proc.stderr and "Traceback" not in proc.stderr
    assert killed_run["partial"].read_bytes() == before
