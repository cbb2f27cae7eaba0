"""Tests for the HDF5 run file: tme_abm.io.writer and tme_abm.io.reader."""

from __future__ import annotations

import ast
import math
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tme_abm.io import (
    FORMAT_NAME,
    RunExistsError,
    RunFileError,
    RunLayout,
    RunWriter,
    cell_type_labels,
    format_summary,
    read_checkpoint,
    read_snapshot,
    read_timeseries,
    run_summary,
)
from tme_abm.io.writer import CHUNK_SITES, checkpoint_chunks, tile_shape

REPO = Path(__file__).resolve().parents[1]
CELL_TYPES = ("tumour", "cd8", "macrophage")
FIELD_NAMES = ("il6", "ccl5")
FIELD_UNITS = ("ng/mL", "ng/mL")
FIELD_LONG = ("IL-6", "CCL5")
CELL_COLUMNS = (
    ("id", "int64", "1"),
    ("type", "int8", "1"),
    ("site", "int32", "1"),
    ("stat3", "float32", "1"),
)
SERIES = (("n_tumour", "1", "tumour cells"), ("mean_stat3", "1", "mean STAT3 activation"))
SHAPES = {"2d": (6, 8), "3d": (3, 5, 7)}
KILL_SHAPE = (64, 64)
TICKS_PER_SNAPSHOT = 5


def make_layout(shape: tuple[int, ...], **attrs: object) -> RunLayout:
    """A layout with two fields, three cell types, four columns, two series."""
    provenance = {"seed": 42, "scenario": 'name = "baseline"\n', "scenario_name": "baseline"}
    provenance.update({"dt_min": 2.0, **attrs})
    return RunLayout(
        shape=shape,
        site_um=10.0,
        field_names=FIELD_NAMES,
        field_units=FIELD_UNITS,
        field_long_names=FIELD_LONG,
        cell_type_names=CELL_TYPES,
        cell_columns=CELL_COLUMNS,
        timeseries=SERIES,
        attrs=provenance,
    )


def synth_snapshot(shape: tuple[int, ...], k: int) -> tuple[float, np.ndarray, dict, dict]:
    """Deterministic snapshot k (time, cell_type, fields, cells); snapshot 1 has no cells."""
    rng = np.random.default_rng([7, k])
    cell_type = rng.integers(-1, len(CELL_TYPES), size=shape).astype(np.int8)
    fields = {
        name: (rng.random(shape, dtype=np.float32) * (i + 1)).astype(np.float32)
        for i, name in enumerate(FIELD_NAMES)
    }
    m = 0 if k == 1 else int(rng.integers(1, 40)) + k
    cells = {
        "id": np.arange(m, dtype=np.int64) + 1000 * k,
        "type": rng.integers(0, len(CELL_TYPES), m).astype(np.int8),
        "site": rng.integers(0, int(np.prod(shape)), m).astype(np.int32),
        "stat3": rng.random(m, dtype=np.float32),
    }
    return 10.0 * (k + 1), cell_type, fields, cells


def synth_ticks(k: int) -> list[tuple[float, dict[str, float]]]:
    """The ticks recorded between snapshot k-1 and snapshot k (times 10k+2 .. 10k+10)."""
    return [
        (
            10.0 * k + 2.0 * (j + 1),
            {"n_tumour": float(k * TICKS_PER_SNAPSHOT + j), "mean_stat3": float(np.sin(k + j))},
        )
        for j in range(TICKS_PER_SNAPSHOT)
    ]


def synth_checkpoint(k: int) -> dict[str, np.ndarray]:
    """Deterministic checkpoint arrays whose sizes change with k."""
    rng = np.random.default_rng([11, k])
    return {"state": rng.random((k + 1, 300)), "ids": np.arange(50 * k, dtype=np.int64)}


def write_snapshots(writer: RunWriter, shape: tuple[int, ...], ks: range) -> None:
    for k in ks:
        for t, values in synth_ticks(k):
            writer.append_timeseries(t, values)
        writer.write_snapshot(*synth_snapshot(shape, k))


def write_run(path: Path, shape: tuple[int, ...], n: int, **kwargs: object) -> Path:
    with RunWriter(path, make_layout(shape), **kwargs) as w:
        write_snapshots(w, shape, range(n))
    return w.final_path


def assert_snapshot_equal(got: dict, shape: tuple[int, ...], k: int) -> None:
    t, cell_type, fields, cells = synth_snapshot(shape, k)
    assert got["time_min"] == t
    assert got["cell_type"].dtype == np.int8
    np.testing.assert_array_equal(got["cell_type"], cell_type)
    assert list(got["fields"]) == list(FIELD_NAMES)
    for name in FIELD_NAMES:
        assert got["fields"][name].dtype == np.float32
        np.testing.assert_array_equal(got["fields"][name], fields[name])
    assert list(got["cells"]) == [c[0] for c in CELL_COLUMNS]
    for name, dtype, _units in CELL_COLUMNS:
        assert got["cells"][name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got["cells"][name], cells[name])


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest) -> tuple[int, ...]:
    return SHAPES[request.param]


# --------------------------------------------------------------- round trip
def test_snapshots_round_trip_exactly(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = write_run(tmp_path / "out" / "run.h5", shape, 4)
    assert path.is_file()
    assert not (tmp_path / "out" / "run.h5.partial").exists()
    for k in range(4):
        snap = read_snapshot(path, k)
        assert snap["index"] == k
        assert_snapshot_equal(snap, shape, k)
    assert read_snapshot(path)["index"] == 3
    assert read_snapshot(path, -4)["index"] == 0
    with pytest.raises(IndexError, match="out of range"):
        read_snapshot(path, 4)

    series = read_timeseries(path)
    expected = [tick for k in range(4) for tick in synth_ticks(k)]
    np.testing.assert_array_equal(series["time"], [t for t, _ in expected])
    for name, _units, _desc in SERIES:
        np.testing.assert_array_equal(series[name], [v[name] for _, v in expected])


def test_row_size_and_attributes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = write_run(tmp_path / "run.h5", shape, 3)
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == FORMAT_NAME
        assert a["format_version"] == "1.2"
        assert a["Conventions"] == "CF-1.8"
        assert a["complete"] == 1
        assert a["n_snapshots"] == 3
        assert a["seed"] == 42
        assert a["scenario"] == 'name = "baseline"\n'
        assert a["created"].endswith("Z") and a["created"][4] == "-"
        assert isinstance(a["tme_abm_version"], str) and a["tme_abm_version"]

        row_size = f["cells/row_size"][:]
        assert list(row_size) == [len(synth_snapshot(shape, k)[3]["id"]) for k in range(3)]
        for name, _dtype, units in CELL_COLUMNS:
            assert f["cells"][name].shape == (row_size.sum(),)
            assert f["cells"][name].attrs["units"] == units
        assert f["cells/row_size"].attrs["sample_dimension"] == "cell"

        ct = f["lattice/cell_type"]
        assert ct.dtype == np.int8 and ct.shape == (3, *shape)
        np.testing.assert_array_equal(ct.attrs["flag_values"], [0, 1, 2, -1])
        assert ct.attrs["flag_values"].dtype == np.int8
        assert ct.attrs["flag_meanings"] == "tumour cd8 macrophage empty"
        for name, units, long_name in zip(FIELD_NAMES, FIELD_UNITS, FIELD_LONG, strict=True):
            ds = f["fields"][name]
            assert ds.attrs["units"] == units and ds.attrs["long_name"] == long_name
            assert ds.dtype == np.float32
        for ds in (ct, f["fields/il6"]):
            assert ds.chunks == (1, *shape)
            assert ds.compression == "gzip" and ds.compression_opts == 1 and ds.shuffle
        # appended datasets are chunked but uncompressed (kill safety, see writer.py)
        assert f["cells/stat3"].chunks is not None and f["cells/stat3"].compression is None
        assert f["time"].compression is None
        assert f["time"].attrs["units"] == "minutes"
        assert f["time"].maxshape == (None,)
        dims = "zyx"[-len(shape) :]
        for dim, n in zip(dims, shape, strict=True):
            np.testing.assert_allclose(f[dim][:], (np.arange(n) + 0.5) * 10.0)
            assert f[dim].attrs["units"] == "um"
        assert f["timeseries/n_tumour"].attrs["units"] == "1"
        assert f["timeseries/n_tumour"].attrs["description"] == "tumour cells"
        assert f["timeseries/tick_time"].attrs["units"] == "minutes"
        # dimension scales attached to every axis
        assert [d[0].name for d in f["fields/il6"].dims] == [
            "/fields/time",
            *(f"/fields/{d}" for d in dims),
        ]
        assert f["cells/id"].dims[0][0].name == "/cells/cell"
        assert f["timeseries/mean_stat3"].dims[0][0].name == "/timeseries/tick_time"


def test_compression_level_is_used(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run.h5", SHAPES["2d"], 1, compression_level=6)
    with h5py.File(path, "r") as f:
        assert f["fields/il6"].compression_opts == 6
        assert f["lattice/cell_type"].compression_opts == 6


# ------------------------------------------------------------ write order
def test_time_is_written_last_then_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shape = SHAPES["2d"]
    events: list[tuple[str, str]] = []
    real_set, real_resize, real_flush = (
        h5py.Dataset.__setitem__,
        h5py.Dataset.resize,
        h5py.File.flush,
    )

    def set_item(self, key, value):
        events.append(("set", self.name))
        return real_set(self, key, value)

    def resize(self, size, axis=None):
        events.append(("resize", self.name))
        return real_resize(self, size, axis)

    def flush(self):
        events.append(("flush", ""))
        return real_flush(self)

    with RunWriter(tmp_path / "run.h5", make_layout(shape)) as w:
        write_snapshots(w, shape, range(1))
        for t, values in synth_ticks(1):
            w.append_timeseries(t, values)
        monkeypatch.setattr(h5py.Dataset, "__setitem__", set_item)
        monkeypatch.setattr(h5py.Dataset, "resize", resize)
        monkeypatch.setattr(h5py.File, "flush", flush)
        w.write_snapshot(*synth_snapshot(shape, 2))
        monkeypatch.undo()
    names = [name for _, name in events]
    # everything else is flushed before /time grows, and /time is flushed at once
    assert events[-4:] == [("flush", ""), ("resize", "/time"), ("set", "/time"), ("flush", "")]
    assert names.count("/time") == 2
    assert names.count("") == 2
    order = ["/lattice/cell_type", "/fields/il6", "/cells/stat3", "/cells/row_size"]
    order += ["/timeseries/tick_time", "/fields/time"]
    positions = [names.index(n) for n in order]
    assert positions == sorted(positions)
    assert max(i for i, n in enumerate(names) if n.startswith("/timeseries")) < names.index(
        "/fields/time"
    )


def test_failure_mid_snapshot_keeps_completed_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = SHAPES["2d"]
    path = tmp_path / "run.h5"
    real_set = h5py.Dataset.__setitem__

    def failing_set(self, key, value):
        if self.name == "/timeseries/tick_time":
            raise RuntimeError("disk on fire")
        return real_set(self, key, value)

    with pytest.raises(RuntimeError, match="disk on fire"):
        with RunWriter(path, make_layout(shape)) as w:
            write_snapshots(w, shape, range(2))
            monkeypatch.setattr(h5py.Dataset, "__setitem__", failing_set)
            write_snapshots(w, shape, range(2, 3))
    monkeypatch.undo()
    assert not path.exists()
    partial = tmp_path / "run.h5.partial"
    with h5py.File(partial, "r") as f:
        assert len(f["time"]) == 2
        assert f["lattice/cell_type"].shape[0] == 3  # the half-written snapshot's row
        assert f.attrs["complete"] == 0
    last = read_snapshot(partial)
    assert last["index"] == 1
    assert_snapshot_equal(last, shape, 1)
    summary = run_summary(partial)
    assert summary["n_snapshots"] == 2 and not summary["complete"]


# ------------------------------------------------------- overwrite / partial
def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious old result")
    with pytest.raises(RunExistsError, match="--force") as info:
        RunWriter(path, make_layout(SHAPES["2d"]))
    assert str(path) in str(info.value)
    assert isinstance(info.value, FileExistsError)
    assert path.read_bytes() == b"precious old result"
    assert not (tmp_path / "run.h5.partial").exists()


def test_refuses_leftover_partial_without_force(tmp_path: Path) -> None:
    partial = tmp_path / "run.h5.partial"
    partial.write_bytes(b"interrupted run")
    with pytest.raises(RunExistsError, match="interrupted"):
        RunWriter(tmp_path / "run.h5", make_layout(SHAPES["2d"]))
    assert partial.read_bytes() == b"interrupted run"
    write_run(tmp_path / "run.h5", SHAPES["2d"], 1, force=True)
    assert not partial.exists()


def test_force_replaces_only_at_close(tmp_path: Path) -> None:
    shape = SHAPES["2d"]
    path = write_run(tmp_path / "run.h5", shape, 1)
    old_bytes = path.read_bytes()
    w = RunWriter(path, make_layout(shape), force=True)
    write_snapshots(w, shape, range(3))
    assert w.partial_path.exists()
    assert path.read_bytes() == old_bytes  # old run untouched while the new one runs
    assert run_summary(path)["n_snapshots"] == 1
    assert w.close() == path
    assert not w.partial_path.exists()
    assert run_summary(path)["n_snapshots"] == 3
    assert w.close() == path  # idempotent


def test_crashed_forced_run_keeps_old_result(tmp_path: Path) -> None:
    shape = SHAPES["2d"]
    path = write_run(tmp_path / "run.h5", shape, 1)
    old_bytes = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(path, make_layout(shape), force=True) as w:
            write_snapshots(w, shape, range(2))
            raise KeyboardInterrupt
    assert path.read_bytes() == old_bytes
    assert run_summary(tmp_path / "run.h5.partial")["n_snapshots"] == 2


def test_exception_in_with_leaves_partial(tmp_path: Path) -> None:
    shape = SHAPES["3d"]
    path = tmp_path / "sub" / "run.h5"
    with pytest.raises(ValueError, match="model blew up"):
        with RunWriter(path, make_layout(shape)) as w:
            write_snapshots(w, shape, range(2))
            for t, values in synth_ticks(2):  # buffered, not yet written
                w.append_timeseries(t, values)
            raise ValueError("model blew up")
    assert w.closed
    assert not path.exists()
    partial = tmp_path / "sub" / "run.h5.partial"
    assert partial.exists()
    with h5py.File(partial, "r") as f:
        assert f.attrs["complete"] == 0
        assert len(f["time"]) == 2
    assert_snapshot_equal(read_snapshot(partial, 0), shape, 0)
    # buffered ticks are saved on the way out
    assert len(read_timeseries(partial)["time"]) == 3 * TICKS_PER_SNAPSHOT
    with pytest.raises(ValueError, match="closed"):
        w.write_snapshot(*synth_snapshot(shape, 3))


# -------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t, ct, f, c: (t, ct[:-1], f, c), "cell_type has shape"),
        (lambda t, ct, f, c: (t, ct + 5, f, c), "cell_type codes"),
        (lambda t, ct, f, c: (t, ct.astype(float), f, c), "integer"),
        (lambda t, ct, f, c: (t, ct, {"il6": f["il6"]}, c), "missing fields \\['ccl5'\\]"),
        (lambda t, ct, f, c: (t, ct, {**f, "tnf": f["il6"]}, c), "unexpected fields \\['tnf'\\]"),
        (lambda t, ct, f, c: (t, ct, {**f, "il6": f["il6"].T}, c), "field 'il6' has shape"),
        (lambda t, ct, f, c: (t, ct, f, {k: c[k] for k in ("id", "type", "site")}), "stat3"),
        (lambda t, ct, f, c: (t, ct, f, {**c, "id": c["id"][:-1]}), "rows"),
        (lambda t, ct, f, c: (t, ct, f, {**c, "type": c["type"].astype(np.int16) + 300}), "'type'"),
        (lambda t, ct, f, c: (t, ct, f, {**c, "type": c["type"] * 0 + 3}), "'type'.*0..2, got 3"),
        (lambda t, ct, f, c: (t, ct, f, {**c, "type": c["type"] * 0 - 1}), "'type'.*0..2, got -1"),
        (lambda t, ct, f, c: (t, ct, f, {**c, "id": c["id"].astype(float)}), "'id'"),
        (lambda t, ct, f, c: (5.0, ct, f, c), "after the previous"),
    ],
)
def test_write_snapshot_validates(tmp_path: Path, mutate, message: str) -> None:
    shape = SHAPES["2d"]
    with RunWriter(tmp_path / "run.h5", make_layout(shape)) as w:
        write_snapshots(w, shape, range(1))
        with pytest.raises(ValueError, match=message):
            w.write_snapshot(*mutate(*synth_snapshot(shape, 2)))
        assert w.n_snapshots == 1
        write_snapshots(w, shape, range(2, 3))  # still usable after a rejected snapshot
    assert run_summary(tmp_path / "run.h5")["n_snapshots"] == 2


def test_append_timeseries_validates(tmp_path: Path) -> None:
    with RunWriter(tmp_path / "run.h5", make_layout(SHAPES["2d"])) as w:
        with pytest.raises(ValueError, match="missing time seriess \\['mean_stat3'\\]"):
            w.append_timeseries(1.0, {"n_tumour": 1.0})
        w.append_timeseries(1.0, {"n_tumour": 1.0, "mean_stat3": 0.5})
        with pytest.raises(ValueError, match="after the previous tick"):
            w.append_timeseries(1.0, {"n_tumour": 1.0, "mean_stat3": 0.5})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shape": (4,)}, "shape"),
        ({"field_units": ("ng/mL",)}, "equal lengths"),
        ({"field_names": ("il6", "time")}, "reserved"),
        ({"cell_type_names": ("tumour cell",)}, "whitespace"),
        ({"cell_columns": (("row_size", "int64", "1"),)}, "reserved"),
        ({"cell_columns": (("id", "complex64", "1"),)}, "not bool, integer or float"),
        ({"cell_columns": (("type", "uint8", "1"),)}, "'type' holds cell-type codes"),
        ({"cell_columns": (("type", "float32", "1"),)}, "'type' holds cell-type codes"),
        ({"timeseries": (("tick_time", "1", "x"),)}, "reserved"),
        ({"attrs": {"bad": object()}}, "'bad'"),
    ],
)
def test_layout_validates(change: dict, message: str) -> None:
    base = make_layout(SHAPES["2d"])
    kwargs = {name: getattr(base, name) for name in base.__dataclass_fields__}
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        RunLayout(**kwargs)


# ------------------------------------------------------------------ xarray
def test_xarray_sees_named_dims_and_coords(tmp_path: Path, shape: tuple[int, ...]) -> None:
    xr = pytest.importorskip("xarray", reason="xarray not installed")
    pytest.importorskip("h5netcdf", reason="h5netcdf not installed")
    path = write_run(tmp_path / "run.h5", shape, 3)
    spatial = ("z", "y", "x")[-len(shape) :]
    sizes = {"time": 3, **dict(zip(spatial, shape, strict=True))}
    n_rows = sum(len(synth_snapshot(shape, k)[3]["id"]) for k in range(3))

    with xr.open_dataset(path, engine="h5netcdf", group="fields") as ds:
        assert ds["il6"].dims == ("time", *spatial)
        assert dict(ds.sizes) == sizes
        np.testing.assert_array_equal(ds["time"].values, [10.0, 20.0, 30.0])
        np.testing.assert_allclose(ds["x"].values, (np.arange(shape[-1]) + 0.5) * 10.0)
        np.testing.assert_array_equal(ds["ccl5"].values[2], synth_snapshot(shape, 2)[2]["ccl5"])
        assert ds["il6"].attrs["units"] == "ng/mL"
    with xr.open_dataset(path, engine="h5netcdf", group="lattice") as ds:
        ct = ds["cell_type"]
        assert ct.dims == ("time", *spatial)
        assert ct.dtype == np.int8  # no fill-value masking of code -1
        np.testing.assert_array_equal(ct.values[0], synth_snapshot(shape, 0)[1])
        assert set(ds.coords) == {"time", *spatial}
    with xr.open_dataset(path, engine="h5netcdf", group="cells") as ds:
        assert ds["stat3"].dims == ("cell",)
        assert ds.sizes["cell"] == n_rows
        assert ds["row_size"].dims == ("time",)
        assert int(ds["row_size"].sum()) == n_rows
    with xr.open_dataset(path, engine="h5netcdf", group="timeseries") as ds:
        assert ds["n_tumour"].dims == ("tick_time",)
        assert ds.sizes["tick_time"] == 3 * TICKS_PER_SNAPSHOT
        assert "tick_time" in ds.coords
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.attrs["format"] == FORMAT_NAME
        assert dict(ds.sizes) == sizes

    if hasattr(xr, "open_datatree"):
        tree = xr.open_datatree(path, engine="h5netcdf")
        try:
            assert tree["fields"]["il6"].dims == ("time", *spatial)
            assert tree["cells"].dataset.sizes["cell"] == n_rows
        finally:
            tree.close()


# --------------------------------------------------------------- cell types
def test_every_type_coded_dataset_carries_the_same_labels(tmp_path: Path) -> None:
    """/lattice/cell_type, /cells/type and /checkpoint/type: flag_values and
    flag_meanings pair up, and the i-th meaning names code i (-1: the last)."""
    shape = SHAPES["2d"]
    path = tmp_path / "run.h5"
    with RunWriter(path, make_layout(shape)) as w:
        write_snapshots(w, shape, range(1))
        w.write_checkpoint({"type": np.array([2, 0, 1], dtype=np.int8)}, {"tick": 0})
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == "1.2"
        for where in ("lattice/cell_type", "cells/type", "checkpoint/type"):
            ds = f[where]
            values, meanings = ds.attrs["flag_values"], ds.attrs["flag_meanings"].split()
            assert values.dtype == ds.dtype, where  # CF: flag_values in the variable's type
            assert values.tolist() == [0, 1, 2, -1], where
            assert meanings == [*CELL_TYPES, "empty"], where
            assert cell_type_labels(ds) == {0: "tumour", 1: "cd8", 2: "macrophage", -1: "empty"}
            # the naive decoding is right for every code, empty included
            codes = ds[0].ravel() if ds.ndim > 1 else ds[:]
            paired = dict(zip(values.tolist(), meanings, strict=True))
            assert [meanings[c] for c in codes] == [paired[c] for c in codes]
        lattice = f["lattice/cell_type"][0]
    expected = synth_snapshot(shape, 0)[1]
    assert np.array_equal(lattice, expected) and (expected == -1).any()


def test_format_1_0_files_read_with_the_same_names(tmp_path: Path) -> None:
    from factory import as_format_1_0

    shape = SHAPES["2d"]
    new = run_summary(write_run(tmp_path / "new.h5", shape, 2))
    old_path = as_format_1_0(write_run(tmp_path / "old.h5", shape, 2))
    with h5py.File(old_path) as f:
        assert f["lattice/cell_type"].attrs["flag_meanings"].split()[0] == "empty"
        assert cell_type_labels(f["lattice/cell_type"]) == cell_type_labels(
            h5py.File(tmp_path / "new.h5")["lattice/cell_type"]
        )
    old = run_summary(old_path)
    assert old["format_version"] == "1.0" and new["format_version"] == "1.2"
    assert old["cell_types"] == new["cell_types"] == list(CELL_TYPES)
    assert old["cell_counts_last"] == new["cell_counts_last"]
    for summary in (old, new):  # inspect names every code
        assert re.search(
            r"^  type codes +0 tumour, 1 cd8, 2 macrophage, -1 empty$",
            format_summary(summary),
            re.M,
        )
    lattice = synth_snapshot(shape, 1)[1]
    assert new["cell_counts_last"] == {
        name: int((lattice == code).sum())
        for name, code in (("empty", -1), ("tumour", 0), ("cd8", 1), ("macrophage", 2))
    }


@pytest.mark.parametrize(
    ("values", "meanings", "message"),
    [
        ([0, 1, -1], "tumour cd8 macrophage empty", "do not pair up"),
        ([0, 2, 3, -1], "tumour cd8 macrophage empty", "not the codes"),
        ([0, 1, 2, -1], "tumour cd8 macrophage dead", "not the codes"),
    ],
)
def test_inconsistent_labels_are_a_clear_error(
    tmp_path: Path, values: list[int], meanings: str, message: str
) -> None:
    path = write_run(tmp_path / "run.h5", SHAPES["2d"], 1)
    with h5py.File(path, "r+") as f:
        f["lattice/cell_type"].attrs["flag_values"] = np.array(values, dtype="i1")
        f["lattice/cell_type"].attrs["flag_meanings"] = meanings
    with pytest.raises(RunFileError, match=f"lattice/cell_type.*{message}"):
        run_summary(path)


# --------------------------------------------------------------- checkpoint
def test_checkpoint_is_replaced(tmp_path: Path) -> None:
    shape = SHAPES["2d"]
    path = tmp_path / "run.h5"
    with RunWriter(path, make_layout(shape)) as w:
        write_snapshots(w, shape, range(1))
        w.write_checkpoint({"old": np.zeros(3), "state": np.ones((2, 2))}, {"tick": 5})
        w.write_checkpoint(
            {
                "state": np.arange(6.0).reshape(2, 3),
                "alive": np.array([True, False, True]),
                "names": np.array(["a", "bc"]),
                "next_id": np.int64(17),
            },
            {"tick": 10, "time_min": 20.0},
        )
    arrays, attrs = read_checkpoint(path)
    assert set(arrays) == {"state", "alive", "names", "next_id"}
    np.testing.assert_array_equal(arrays["state"], np.arange(6.0).reshape(2, 3))
    assert arrays["alive"].dtype == bool and list(arrays["alive"]) == [True, False, True]
    assert list(arrays["names"]) == ["a", "bc"]
    assert int(arrays["next_id"]) == 17
    assert attrs["tick"] == 10 and attrs["time_min"] == 20.0
    with h5py.File(path, "r") as f:
        assert "old" not in f["checkpoint"]
        assert "_checkpoint_tmp" not in f and "_checkpoint_old" not in f
    assert run_summary(path)["checkpoint"]["tick"] == 10
    with pytest.raises(RunFileError, match="no checkpoint"):
        read_checkpoint(write_run(tmp_path / "none.h5", shape, 1))


# ---------------------------------------------------------------- SIGKILL
CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_io import KILL_SHAPE, make_layout, synth_checkpoint, synth_snapshot, synth_ticks
from tme_abm.io import RunWriter

w = RunWriter(sys.argv[1], make_layout(KILL_SHAPE), chunk_sites=int(sys.argv[2]))
for k in range(100000):
    for t, values in synth_ticks(k):
        w.append_timeseries(t, values)
    w.write_snapshot(*synth_snapshot(KILL_SHAPE, k))
    if k % 3 == 2:
        w.write_checkpoint(synth_checkpoint(k), {{"tick": k}})
    print("snapshot", k, flush=True)
    time.sleep(0.002)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL and select on pipes")
@pytest.mark.parametrize("chunk_sites", [CHUNK_SITES, 256], ids=["whole", "tiles"])
def test_sigkill_keeps_every_completed_snapshot(tmp_path: Path, chunk_sites: int) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)))
    path = tmp_path / "killed.h5"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(chunk_sites)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=env,
    )
    k_reported = 4
    deadline = time.monotonic() + 60
    seen = 0
    try:
        while seen < k_reported:
            ready, _, _ = select.select(
                [proc.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            assert ready, "child wrote no snapshot in time"
            line = proc.stdout.readline()
            assert line, f"child exited early: {proc.stderr.read().decode()}"
            assert line.split() == [b"snapshot", str(seen).encode()]
            seen += 1
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    assert not path.exists()
    partial = tmp_path / "killed.h5.partial"
    with h5py.File(partial, "r") as f:
        assert f["fields/il6"].chunks == (1, *tile_shape(KILL_SHAPE, chunk_sites))
        n = len(f["time"])
        assert n >= k_reported
        row_size = f["cells/row_size"][:n]
        assert f["cells/id"].shape[0] >= row_size.sum()
        assert f["lattice/cell_type"].shape[0] in (n, n + 1)
        assert f.attrs["complete"] == 0
    for k in range(n):
        assert_snapshot_equal(read_snapshot(partial, k), KILL_SHAPE, k)
    series = read_timeseries(partial)
    assert len(series["time"]) >= n * TICKS_PER_SNAPSHOT
    expected = [tick for k in range(n) for tick in synth_ticks(k)]
    np.testing.assert_array_equal(series["time"][: len(expected)], [t for t, _ in expected])
    summary = run_summary(partial)
    assert summary["n_snapshots"] == n and summary["complete"] is False
    # the checkpoint swap never leaves a torn /checkpoint behind
    arrays, attrs = read_checkpoint(partial)
    assert attrs["tick"] >= 2
    expected_ck = synth_checkpoint(attrs["tick"])
    for name, value in expected_ck.items():
        np.testing.assert_array_equal(arrays[name], value)


# ----------------------------------------------------------------- chunking
@pytest.mark.parametrize(
    "shape", [(1200, 1200), (1024, 1024), (200, 200, 200), (128, 128, 128), (10, 1000, 1000)]
)
def test_large_layouts_get_tiles_below_the_byte_bound(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    with RunWriter(tmp_path / "big.h5", make_layout(shape)) as w:
        pass  # creating the datasets stores no data
    with h5py.File(w.final_path, "r") as f:
        for ds in (f["lattice/cell_type"], f["fields/il6"], f["fields/ccl5"]):
            chunks = ds.chunks
            assert chunks[0] == 1 and len(chunks) == 1 + len(shape)
            tile = chunks[1:]
            assert tile != shape
            assert all(1 <= c <= n for c, n in zip(tile, shape, strict=True))
            # at most 256 KiB of float32 per chunk, and not needlessly small
            assert math.prod(tile) * 4 <= 256 * 1024
            assert math.prod(tile) > CHUNK_SITES // 2
            # these sides are divisible by the tiles: no partly filled edge tile
            for c, n in zip(tile, shape, strict=True):
                assert n % c == 0 or (n, c) == (1000, 63)
            assert ds.compression == "gzip" and ds.compression_opts == 1 and ds.shuffle
        assert f["lattice/cell_type"].chunks == f["fields/il6"].chunks


def test_chunk_rule_examples() -> None:
    # small lattices keep one chunk per snapshot
    for shape in [(6, 8), (3, 5, 7), (200, 200), (256, 256), (40, 40, 40)]:
        assert tile_shape(shape) == shape
    assert tile_shape((1200, 1200)) == (150, 300)
    assert tile_shape((1024, 1024)) == (256, 256)
    assert tile_shape((200, 200, 200)) == (25, 50, 50)
    assert tile_shape((128, 128, 128)) == (32, 32, 64)
    assert tile_shape((257, 256)) == (129, 256)
    assert tile_shape((6, 8), 8) == (3, 2)
    assert tile_shape((5,), 1) == (1,)
    # checkpoint arrays: one field / behaviour per chunk, the rest tiled
    assert checkpoint_chunks((1, 1200, 1200, 12)) == (1, 150, 300, 1)
    assert checkpoint_chunks((200, 200, 200, 12)) == (25, 50, 50, 1)
    assert checkpoint_chunks((950_000, 40)) == (59_375, 1)
    assert checkpoint_chunks((30_000,)) == (30_000,)
    assert checkpoint_chunks((3, 300)) == (3, 300)  # long last axis: tiled as a whole
    with pytest.raises(ValueError, match="positive"):
        tile_shape((0, 4))
    with pytest.raises(ValueError, match="chunk_sites"):
        RunWriter(Path("unused.h5"), make_layout((4, 4)), chunk_sites=0)


def test_tiled_file_reads_back_identically(tmp_path: Path, shape: tuple[int, ...]) -> None:
    n = 4
    path = write_run(tmp_path / "tiled.h5", shape, n, chunk_sites=8)
    tile = tile_shape(shape, 8)
    assert tile != shape
    for k in range(n):
        assert_snapshot_equal(read_snapshot(path, k), shape, k)
    stacked = np.stack([synth_snapshot(shape, k)[2]["il6"] for k in range(n)])
    lattice = np.stack([synth_snapshot(shape, k)[1] for k in range(n)])
    mid = tuple(s // 2 for s in shape)
    window = (slice(None), *(slice(m - 1, m + 2) for m in mid))
    with h5py.File(path, "r") as f:
        ds = f["fields/il6"]
        assert ds.chunks == (1, *tile)
        assert f["lattice/cell_type"].chunks == (1, *tile)
        np.testing.assert_array_equal(ds[...], stacked)
        np.testing.assert_array_equal(f["lattice/cell_type"][...], lattice)
        np.testing.assert_array_equal(ds[(slice(None), *mid)], stacked[(slice(None), *mid)])
        np.testing.assert_array_equal(ds[window], stacked[window])
        np.testing.assert_array_equal(ds[2, mid[0]], stacked[2, mid[0]])
    xr = pytest.importorskip("xarray", reason="xarray not installed")
    pytest.importorskip("h5netcdf", reason="h5netcdf not installed")
    with xr.open_dataset(path, engine="h5netcdf", group="fields") as xds:
        np.testing.assert_array_equal(xds["il6"].values, stacked)
        assert xds["il6"].dims == ("time", *("z", "y", "x")[-len(shape) :])


def test_checkpoint_arrays_are_chunked_by_field(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    arrays = {
        "conc": rng.random((1, 20, 30, 12), dtype=np.float32),
        "behaviours": rng.random((500, 40), dtype=np.float32),
        "id": np.arange(500, dtype=np.int64),
        "alive": rng.random(500) < 0.5,
        "priming": rng.random(9),
        "empty": np.zeros((0, 40), dtype=np.float32),
        "next_id": np.int64(501),
    }
    path = tmp_path / "run.h5"
    with RunWriter(path, make_layout(SHAPES["2d"]), chunk_sites=64) as w:
        write_snapshots(w, SHAPES["2d"], range(1))
        w.write_checkpoint(arrays, {"tick": 3})
    with h5py.File(path, "r") as f:
        ck = f["checkpoint"]
        assert ck["conc"].chunks == (*tile_shape((1, 20, 30), 64), 1)
        assert ck["behaviours"].chunks == (63, 1)
        assert ck["id"].chunks == (63,)
        for name in ("conc", "behaviours", "id", "alive", "priming"):
            assert ck[name].compression == "gzip" and ck[name].shuffle
            assert math.prod(ck[name].chunks) <= 64
        assert ck["empty"].chunks is None and ck["next_id"].shape == ()
    got, attrs = read_checkpoint(path)
    assert set(got) == set(arrays) and attrs["tick"] == 3
    for name, value in arrays.items():
        assert got[name].dtype == np.asarray(value).dtype
        np.testing.assert_array_equal(got[name], value)


def test_checkpoint_swap_does_not_grow_the_file_per_snapshot(tmp_path: Path) -> None:
    """Each snapshot replaces the checkpoint; HDF5 must reuse the old one's space."""
    shape, n = (64, 64), 12
    rng = np.random.default_rng(3)
    path = tmp_path / "run.h5"
    sizes = []
    with RunWriter(path, make_layout(shape)) as w:
        for k in range(n):
            w.write_snapshot(*synth_snapshot(shape, k))
            # ~1.4 MB that gzip cannot shrink much, a little larger each time
            state = rng.random(200_000 + 500 * k)
            w.write_checkpoint({"state": state, "ids": np.arange(1000 + k)}, {"tick": k})
            sizes.append(w.partial_path.stat().st_size)
    with h5py.File(path, "r") as f:
        checkpoint = sum(ds.id.get_storage_size() for ds in f["checkpoint"].values())
        snapshots = f["lattice/cell_type"].id.get_storage_size()
        snapshots += sum(f["fields"][name].id.get_storage_size() for name in FIELD_NAMES)
        snapshots += sum(f["cells"][c[0]].id.get_storage_size() for c in CELL_COLUMNS)
    assert checkpoint > 1_000_000 and checkpoint > 10 * snapshots / n
    # from the third snapshot on (two checkpoints coexist during the second) the
    # file grows by about a snapshot on average; a leaked checkpoint per snapshot
    # would add > 1 MB each time
    assert (sizes[-1] - sizes[1]) / (n - 2) < snapshots / n + 0.2 * checkpoint
    # the closed file: the snapshots, the live checkpoint, and unused space of
    # one to two replaced checkpoints at most, however many snapshots were written
    # (measured: 1.3; leaking would give 12)
    assert path.stat().st_size < snapshots + 3 * checkpoint


# ------------------------------------------------------------------ summary
def test_format_summary_complete_and_partial(tmp_path: Path) -> None:
    shape = SHAPES["2d"]
    path = write_run(tmp_path / "baseline.h5", shape, 3)
    summary = run_summary(path)
    assert summary["complete"] is True and summary["note"] is None
    assert summary["shape"] == shape and summary["site_um"] == 10.0
    assert summary["physical_size_mm"] == pytest.approx((0.06, 0.08))
    assert summary["time_min"] == (10.0, 30.0)
    assert summary["time_days"] == pytest.approx((10 / 1440, 30 / 1440))
    last = synth_snapshot(shape, 2)
    il6 = summary["fields"][0]
    assert il6["name"] == "il6" and il6["units"] == "ng/mL"
    assert il6["max"] == pytest.approx(float(last[2]["il6"].max()))
    assert il6["mean"] == pytest.approx(float(last[2]["il6"].astype(float).mean()))
    first_ct = synth_snapshot(shape, 0)[1]
    assert summary["cell_counts_first"]["cd8"] == int((first_ct == 1).sum())
    assert summary["cell_counts_last"]["empty"] == int((last[1] == -1).sum())
    assert summary["timeseries"] == ["n_tumour", "mean_stat3"]
    assert summary["attrs"]["dt_min"] == 2.0 and "scenario" not in summary["attrs"]

    text = format_summary(summary)
    for fact in (
        "baseline.h5",
        "complete",
        "baseline",
        "seed 42",
        "6 x 8",
        "10 um",
        "0.06 x 0.08 mm",
    ):
        assert fact in text
    for fact in ("il6", "IL-6", "ng/mL", "macrophage", "n_tumour", "mean_stat3", "10 .. 30 min"):
        assert fact in text
    assert "PARTIAL" not in text

    partial = tmp_path / "interrupted.h5"
    with pytest.raises(RuntimeError):
        with RunWriter(partial, make_layout(shape)) as w:
            write_snapshots(w, shape, range(2))
            raise RuntimeError("stop")
    text = format_summary(run_summary(w.partial_path))
    assert "PARTIAL" in text and "interrupted.h5.partial" in text
    assert "2 completed snapshots are all readable" in text


def test_summary_of_run_without_snapshots(tmp_path: Path) -> None:
    with RunWriter(tmp_path / "empty.h5", make_layout(SHAPES["3d"])) as w:
        pass
    summary = run_summary(w.final_path)
    assert summary["n_snapshots"] == 0 and summary["time_min"] is None
    assert re.search(r"^\s+snapshots\s+0$", format_summary(summary), re.MULTILINE)
    with pytest.raises(IndexError, match="no complete snapshot"):
        read_snapshot(w.final_path)


def test_run_file_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5 at all")
    with pytest.raises(RunFileError, match="not an HDF5 file") as info:
        run_summary(text)
    assert str(text) in str(info.value)

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    for reader in (run_summary, read_snapshot, read_timeseries):
        with pytest.raises(RunFileError, match="not a tme-abm run") as info:
            reader(other)
        assert str(other) in str(info.value)

    with pytest.raises(RunFileError, match="no such run file"):
        read_snapshot(tmp_path / "missing.h5")


def test_io_does_not_import_engine_or_mesa() -> None:
    forbidden = {"mesa", "numba", "tme_abm.model", "solara"}
    for module in (REPO / "tme_abm" / "io").glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{module.name} imports {name}"
                assert not name.startswith("tme_abm.model"), f"{module.name} imports {name}"
