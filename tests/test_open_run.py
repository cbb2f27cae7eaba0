"""open_run / open_sweep: run files and sweep folders as xarray and pandas."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from factory import partial_run_file

from tme_abm import open_run, open_sweep
from tme_abm.io import RunFileError, read_snapshot
from tme_abm.runner import run_scenario
from tme_abm.scenario import load_scenario

TINY = Path(__file__).parent / "data" / "tiny.toml"


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "tiny.h5"
    run_scenario(load_scenario(TINY, ["domain.duration_days=0.2"]), path, progress=False)
    return path


def test_dataset_holds_lattice_fields_and_series(run_file):
    ds, cells = open_run(run_file)
    with h5py.File(run_file) as f:
        n = f["time"].shape[0]
        assert ds.sizes["time"] == n and ds.sizes["y"] == 40 and ds.sizes["x"] == 40
        assert np.array_equal(ds.cell_type.values, f["lattice/cell_type"][:])
        assert np.array_equal(ds.il6.values, f["fields/il6"][:])
        assert np.array_equal(ds.count_tumour.values, f["timeseries/count_tumour"][:])
    assert ds.il6.dims == ("time", "y", "x") and ds.il6.attrs["units"] == "ng/mL"
    assert ds.count_tumour.dims == ("tick_time",)
    assert ds.attrs["format"] == "tme-abm-run"


def test_cell_table_matches_every_snapshot(run_file):
    ds, cells = open_run(run_file)
    assert list(cells.columns[:2]) == ["snapshot", "time"]
    for k in range(ds.sizes["time"]):
        snap = read_snapshot(run_file, k)
        rows = cells[cells.snapshot == k]
        assert np.array_equal(rows["id"].to_numpy(), snap["cells"]["id"])
        assert (rows["time"] == ds.time.values[k]).all()
        # the table agrees with the lattice: counts per type
        counts = np.bincount(rows["type"], minlength=3)
        lattice = ds.cell_type.values[k]
        assert [int((lattice == t).sum()) for t in range(3)] == list(counts[:3])


def test_an_interrupted_partial_file_opens_with_its_complete_snapshots(tmp_path):
    path = partial_run_file(tmp_path, snapshots=2, steps_between=1)
    assert path.name.endswith(".partial")
    ds, cells = open_run(path)
    assert ds.sizes["time"] == 2 and cells.snapshot.max() == 1


def test_not_a_run_file(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(RunFileError, match="x.h5"):
        open_run(bad)
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(RunFileError, match="not a tme-abm run file"):
        open_run(tmp_path / "y.h5")


def test_open_sweep_reads_the_summary_with_parameters(tmp_path):
    from tme_abm.batch.sweep import run_sweep

    sweep = tmp_path / "s.toml"
    sweep.write_text(
        f'name = "s"\nscenarios = ["{TINY.as_posix()}"]\nreplicates = 2\n'
        '[[parameters]]\nkey = "cell_types.cd8.kill_rate_per_min"\nvalues = [0.01, 0.02]\n'
        '[overrides]\n"domain.duration_days" = 0.05\n"output.snapshot_every_min" = 30\n'
    )
    rows, out = run_sweep(sweep, tmp_path / "out", progress=False)
    table = open_sweep(out)
    assert len(table) == 4 and set(table.status) == {"ok"}
    assert sorted(table["cell_types.cd8.kill_rate_per_min"].unique()) == [0.01, 0.02]
    assert table.set_index("run_id").final_tumour.to_dict() == {
        k: r["final_tumour"] for k, r in rows.items()
    }
    with pytest.raises(FileNotFoundError, match="sweep folder"):
        open_sweep(tmp_path)
