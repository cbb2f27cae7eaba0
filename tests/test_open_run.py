"""open_run / open_sweep: run files and sweep folders as xarray and pandas."""

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from factory import as_format_1_0, partial_run_file

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
        assert np.array_equal(rows["type"].cat.codes.to_numpy(), snap["cells"]["type"])
        # the table agrees with the lattice: counts per type
        counts = np.bincount(rows["type"].cat.codes, minlength=3)
        lattice = ds.cell_type.values[k]
        assert [int((lattice == t).sum()) for t in range(3)] == list(counts[:3])


def _h5py_names(path):
    """code -> name decoded the plain way: pair flag_values with flag_meanings."""
    with h5py.File(path) as f:
        a = f["lattice/cell_type"].attrs
        return dict(zip(a["flag_values"].tolist(), a["flag_meanings"].split(), strict=True))


def _check_named(path):
    """open_run names the types exactly as the file's own labels do."""
    ds, cells = open_run(path)
    names = _h5py_names(path)
    assert isinstance(cells["type"].dtype, pd.CategoricalDtype)
    assert list(cells["type"].cat.categories) == ["tumour", "cd8", "cd8_exhausted"]
    with h5py.File(path) as f:
        codes = f["cells/type"][: len(cells)]
        lattice = f["lattice/cell_type"][-1]
    assert cells["type"].tolist() == [names[c] for c in codes]
    # groupby gives names, with the same counts as the codes give
    last = cells[cells.snapshot == cells.snapshot.max()]
    by_name = last.groupby("type", observed=True).size().to_dict()
    assert by_name == {names[c]: int((lattice == c).sum()) for c in np.unique(lattice) if c >= 0}
    assert set(by_name) >= {"tumour", "cd8"}
    # the lattice is named by the cell_type_name coordinate
    named = ds.cell_type_name.sel(cell_type_code=ds.cell_type.isel(time=-1))
    assert named.dims == ("y", "x")
    assert named.values.tolist() == [[names[c] for c in row] for row in lattice]
    assert ds.cell_type.attrs["flag_meanings"] == "tumour cd8 cd8_exhausted empty"
    assert ds.cell_type.attrs["flag_values"].tolist() == [0, 1, 2, -1]
    return by_name


def test_cell_types_come_out_named(run_file):
    by_name = _check_named(run_file)
    with h5py.File(run_file) as f:
        # the file labels every type column alike, empty (-1) last
        for where in ("lattice/cell_type", "cells/type", "checkpoint/type"):
            assert f[where].attrs["flag_meanings"] == "tumour cd8 cd8_exhausted empty", where
            assert f[where].attrs["flag_values"].tolist() == [0, 1, 2, -1], where
    assert by_name["tumour"] > 0


def test_a_format_1_0_file_is_named_the_same(run_file, tmp_path):
    old = tmp_path / "old.h5"
    old.write_bytes(run_file.read_bytes())
    as_format_1_0(old)
    assert _h5py_names(old)[-1] == "empty" and _h5py_names(old)[0] == "tumour"
    assert _check_named(old) == _check_named(run_file)
    ds_old, cells_old = open_run(old)
    ds_new, cells_new = open_run(run_file)
    assert cells_old.equals(cells_new)
    assert ds_old.cell_type_name.values.tolist() == ds_new.cell_type_name.values.tolist()


def test_a_file_killed_before_its_first_flush_is_a_clear_error(tmp_path):
    """A run killed while the writer was creating the file leaves an HDF5 file
    whose root object header was never written (bytes after the superblock are
    zero); open_run raised a bare KeyError there."""
    path = partial_run_file(tmp_path, snapshots=0)
    data = bytearray(path.read_bytes())
    data[96:] = bytes(len(data) - 96)  # the superblock survives, nothing else
    path.write_bytes(bytes(data))
    with pytest.raises(RunFileError, match=r"cut\.h5\.partial is damaged or incomplete.*killed"):
        open_run(path)


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


def test_analysis_takes_open_run_cells_as_read_snapshot_cells(run_file):
    """The named (Categorical) type column still works where codes are expected."""
    from tme_abm.analysis.spatial import stat3_high_fraction_by_distance

    ds, cells = open_run(run_file)
    snap = read_snapshot(run_file, -1)
    rows = cells[cells.snapshot == ds.sizes["time"] - 1]
    args = ([0], 20.0, [-np.inf, 0.0, np.inf])
    got = stat3_high_fraction_by_distance(snap["cell_type"], rows, *args)
    want = stat3_high_fraction_by_distance(snap["cell_type"], snap["cells"], *args)
    pd.testing.assert_frame_equal(got, want)
    assert got.n_cells.sum() == len(rows)
