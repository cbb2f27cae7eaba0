"""Starting a run from a cell table: reading, placing, the run file, bad input, comparison.

Placement is tested against hand-worked geometry (which site each cell must
get, who keeps a contested site, where the loser goes), and the run against
the table it started from: its first snapshot holds exactly the placed cells,
and ``tme-abm compare`` of that snapshot with the table finds no difference.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tme_abm import cli
from tme_abm.io import read_snapshot
from tme_abm.scenario import ScenarioError, load_scenario
from tme_abm.tissue import TissueError, place_cell_table, read_cell_table
from tme_abm.tissue.placement import shift_offsets
from tme_abm.tissue.table import CellTable

TINY = Path(__file__).parent / "data" / "tiny.toml"
CODES = {"tumour": 0, "cd8": 1, "cd8_exhausted": 2}


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def table(x, y, labels, values=None, z=None) -> CellTable:
    return CellTable(Path("t.csv"), np.asarray(x, float), np.asarray(y, float),
                     None if z is None else np.asarray(z, float), np.asarray(labels, object),
                     None if values is None else np.asarray(values, float))


def place(t: CellTable, shape=(10, 10), **kw):
    kw.setdefault("labels", {"T": "tumour", "C": "cd8"})
    kw.setdefault("centre_um", None)
    return place_cell_table(t, dims=(1, *shape), ndim=2, site_um=10.0, type_codes=CODES, **kw)


# ------------------------------------------------------------------ placement


def test_cells_land_on_the_site_under_them():
    # table centred on (50, 50) um of a 100 x 100 um lattice: offsets are kept
    t = table([15, 85, 45, 15], [15, 15, 55, 85], ["T", "C", "T", "C"])
    p = place(t)
    # x = 15 -> 50 - 35 = 15 um -> column 1; y = 15 -> row 1
    want = [1 * 10 + 1, 1 * 10 + 8, 5 * 10 + 4, 8 * 10 + 1]
    assert list(p.sites) == want
    assert list(p.types) == [0, 1, 0, 1]
    assert p.report.moved == 0 and p.report.n_dropped_crowded == 0
    assert p.report.placed == {"tumour": 2, "cd8": 2}


def test_a_contested_site_goes_to_the_cell_nearest_its_centre_and_the_other_moves_nearest():
    # both cells in site (row 5, col 5) [50..60 um]; the second is nearer its centre
    t = table([10, 40, 51, 56, 90], [10, 40, 51, 55, 90], ["T", "T", "T", "C", "T"])
    # bounding box 10..90 -> centre 50: positions unchanged
    p = place(t)
    by_row = dict(zip(p.rows.tolist(), p.sites.tolist(), strict=True))
    assert by_row[3] == 55  # (56, 55): 1.0 um from the centre (55, 55); keeps the site
    # row 2 (51, 51) moves to the nearest free site; first in the fixed offset order:
    # distance 1 offsets sorted (dz, dy, dx): (0,-1,0) -> site 45
    assert by_row[2] == 45
    assert p.report.moved == 1
    assert p.report.mean_shift_um == pytest.approx(math.hypot(55 - 51, 45 - 51))


def test_every_row_is_accounted_for_and_no_site_is_used_twice():
    rng = np.random.default_rng(3)
    n = 2000
    x, y = rng.uniform(0, 300, n), rng.uniform(0, 300, n)
    labels = rng.choice(["T", "C", "V", "S"], n)
    t = table(x, y, labels)
    p = place(t, shape=(32, 32), vessel_labels=["V"], ignore_labels=["S"], max_shift_um=20.0)
    r = p.report
    assert len(np.unique(p.sites)) == p.sites.size
    assert r.n_placed + r.n_dropped_crowded + r.vessels + sum(r.ignored.values()) == n
    assert r.n_dropped_crowded > 0 and r.moved > 0  # 2000 cells on 1024 sites
    assert r.vessel_sites == len(np.unique(p.vessel_sites))
    # nobody moved further than allowed
    assert r.max_shift_um <= 20.0 + math.hypot(5, 5) + 1e-9


def test_placement_is_deterministic_and_independent_of_nothing_but_the_table():
    rng = np.random.default_rng(5)
    t = table(rng.uniform(0, 200, 900), rng.uniform(0, 200, 900), rng.choice(["T", "C"], 900))
    a, b = place(t, shape=(25, 25)), place(t, shape=(25, 25))
    assert np.array_equal(a.sites, b.sites) and np.array_equal(a.types, b.types)


def test_no_reach_means_contested_cells_are_dropped_and_counted():
    # (52, 52) is nearer the centre (55, 55) of their shared site than (51, 51)
    t = table([51, 52, 10, 90], [51, 52, 10, 90], ["T", "C", "T", "T"])
    p = place(t, max_shift_um=0.0)
    assert p.report.dropped_crowded == {"tumour": 1}
    assert p.report.n_placed == 3


def test_shift_offsets_are_sorted_by_distance_and_exclude_the_origin():
    off = shift_offsets(2.0, 2)
    d = (off**2).sum(axis=1)
    assert (d > 0).all() and (np.diff(d) >= 0).all()
    assert len(off) == 12  # 4 at 1, 4 at sqrt 2, 4 at 2
    assert len(shift_offsets(1.0, 3)) == 6


def test_scale_rotation_flip_and_centre_move_cells_where_they_should():
    t = table([0, 10], [0, 0], ["T", "C"])  # centre (5, 0)
    # 2 um per unit: cells at -10 and +10 um from the centre along x; rotate 90
    # degrees anticlockwise -> along y; centre placed at y = 40, x = 70 um
    p = place(t, scale_um=2.0, rotate_deg=90.0, centre_um=[40.0, 70.0])
    pos = p.position_um
    assert pos[0, 2] == pytest.approx(70.0) and pos[0, 1] == pytest.approx(30.0)
    assert pos[1, 2] == pytest.approx(70.0) and pos[1, 1] == pytest.approx(50.0)
    flipped = place(t, scale_um=2.0, rotate_deg=90.0, flip_y=True, centre_um=[40.0, 70.0])
    assert np.allclose(flipped.position_um, pos)  # y was 0 for both: flipping changes nothing
    t2 = table([0, 0], [0, 10], ["T", "C"])
    f2 = place(t2, flip_y=True)
    assert f2.position_um[0, 1] > f2.position_um[1, 1]  # the first row is now further down


def test_a_vessel_column_marks_vessel_rows_whatever_their_label():
    t = table([10, 50, 90, 30], [10, 50, 90, 70], ["T", "C", "Endo", "T"])
    t = CellTable(t.path, t.x, t.y, None, t.labels, None,
                  vessel=np.array([False, False, True, True]))
    p = place(t)
    # 'Endo' needs no mapping: its only row is a vessel
    assert p.report.vessels == 2 and p.report.vessel_sites == 2
    assert p.report.placed == {"tumour": 1, "cd8": 1}


def test_a_vessel_column_must_be_zero_or_one(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("x,y,cell_type,is_vessel\n1,2,T,0\n3,4,T,true\n5,6,T,maybe\n")
    with pytest.raises(TissueError, match="0/1 or true/false") as exc:
        read_cell_table(path, vessel_column="is_vessel")
    assert exc.value.key == "vessel_column" and "data row 3" in exc.value.message
    path.write_text("x,y,cell_type,is_vessel\n1,2,T,0\n3,4,T,true\n5,6,T,1\n")
    assert list(read_cell_table(path, vessel_column="is_vessel").vessel) == [False, True, True]


def test_window_crops_in_table_units_and_counts_what_it_left_out():
    t = table([1, 2, 50, 60], [1, 2, 50, 60], ["T", "C", "T", "C"])
    p = place(t, window=[0, 10, 0, 10])
    assert p.report.n_placed == 2 and p.report.outside_window == 2


def test_stat3_is_rescaled_from_the_column():
    t = table([10, 50, 90], [10, 50, 90], ["T", "T", "C"], values=[100.0, 300.0, 500.0])
    p = place(t, stat3_range=[100.0, 500.0])
    assert np.allclose(p.stat3, [0.0, 0.5, 1.0])
    clipped = place(t, stat3_range=[200.0, 400.0])
    assert np.allclose(clipped.stat3, [0.0, 0.5, 1.0])


@pytest.mark.parametrize(("kw", "labels", "key", "words"), [
    ({}, ["T", "C", "X"], "labels", ["'X'", "ignore_labels"]),
    ({"labels": {"T": "tumor"}}, ["T"], "labels.T", ["tumor", "tumour, cd8"]),
    ({"outside": "error"}, ["T", "C"], "outside", ["outside the lattice", "window"]),
])
def test_bad_mappings_and_geometry_are_errors_naming_the_key(kw, labels, key, words):
    x = [0, 5000][: len(labels)] + [10] * max(0, len(labels) - 2)
    t = table(x, [0] * len(labels), labels)
    with pytest.raises(TissueError) as exc:
        place(t, **kw)
    assert exc.value.key == key
    for w in words:
        assert w in exc.value.message


def test_a_3d_table_on_a_2d_lattice_needs_a_slab():
    t = table([10, 50], [10, 50], ["T", "C"], z=[0, 30])
    with pytest.raises(TissueError, match="z_slab") as exc:
        place(t)
    assert exc.value.key == "z_column"
    p = place(t, z_slab=[0, 10])
    assert p.report.n_placed == 1 and p.report.outside_window == 1


# ------------------------------------------------------------------ reading


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "X_centroid": rng.uniform(0, 400, n), "Y_centroid": rng.uniform(0, 400, n),
        "phenotype": rng.choice(["Tumor", "CD8"], n), "pSTAT3": rng.uniform(0, 10, n),
    })


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz", ".parquet", ".h5ad"])
def test_every_format_reads_the_same_columns(tmp_path, suffix):
    df = _frame()
    path = tmp_path / f"cells{suffix}"
    if suffix == ".parquet":
        df.to_parquet(path)  # pyarrow: the scverse extra, in dev
    elif suffix == ".h5ad":
        import anndata as ad
        a = ad.AnnData(obs=df[["phenotype", "pSTAT3"]].set_axis(
            [str(i) for i in range(len(df))]))
        a.obs["phenotype"] = a.obs["phenotype"].astype("category")
        a.obsm["spatial"] = df[["X_centroid", "Y_centroid"]].to_numpy()
        a.write_h5ad(path)
    else:
        df.to_csv(path, index=False, sep="\t" if "tsv" in suffix else ",")
    t = read_cell_table(path, x_column="X_centroid", y_column="Y_centroid",
                        type_column="phenotype", value_column="pSTAT3")
    assert np.allclose(t.x, df["X_centroid"]) and np.allclose(t.y, df["Y_centroid"])
    assert list(t.labels) == list(df["phenotype"])
    assert np.allclose(t.values, df["pSTAT3"])


@pytest.mark.parametrize(("edit", "kw", "key", "words"), [
    (lambda df: df.drop(columns="Y_centroid"), {}, "y_column", ["'Y_centroid'", "columns:"]),
    (lambda df: df.assign(X_centroid=df.X_centroid.where(df.index != 3)), {}, "x_column",
     ["1 row(s)", "data row 4"]),
    (lambda df: df.assign(X_centroid=["a"] + list(df.X_centroid[1:])), {}, "x_column",
     ["'a'"]),
    (lambda df: df.assign(phenotype=df.phenotype.where(df.index != 0)), {}, "type_column",
     ["without a label"]),
    (lambda df: df.assign(pSTAT3=np.inf), {"value_column": "pSTAT3"}, "stat3_column",
     ["not finite"]),
    (lambda df: df.iloc[:0], {}, "file", ["no cells"]),
])
def test_bad_tables_are_errors_naming_the_column(tmp_path, edit, kw, key, words):
    path = tmp_path / "cells.csv"
    edit(_frame()).to_csv(path, index=False)
    with pytest.raises(TissueError) as exc:
        read_cell_table(path, x_column="X_centroid", y_column="Y_centroid",
                        type_column="phenotype", **kw)
    assert exc.value.key == key
    for w in words:
        assert w in exc.value.message


def test_a_table_that_is_not_a_table_is_an_error(tmp_path):
    for name, content in [("a.csv", b"\x00\x01\xff\xfe" * 100), ("a.h5ad", b"nothing"),
                          ("a.xlsx", b"")]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(TissueError) as exc:
            read_cell_table(path)
        assert exc.value.key in ("file", "x_column")


def test_an_unnamed_z_column_is_noticed(tmp_path):
    df = _frame().assign(z=np.arange(40.0))
    path = tmp_path / "cells.csv"
    df.to_csv(path, index=False)
    t = read_cell_table(path, x_column="X_centroid", y_column="Y_centroid",
                        type_column="phenotype")
    assert t.z is None and t.z_unnamed[0] == "z"
    with pytest.raises(TissueError, match="looks 3D"):
        place(t, labels={"Tumor": "tumour", "CD8": "cd8"}, shape=(50, 50))


# ------------------------------------------------------------------ scenarios and runs


def _tissue_scenario(folder: Path, extra: str = "", n: int = 300) -> Path:
    rng = np.random.default_rng(11)
    r = np.sqrt(rng.uniform(0, 1, n)) * 250
    th = rng.uniform(0, 2 * np.pi, n)
    labels = np.where(r < 150, "Tumour cell", rng.choice(["CD8 T", "Vessel", "Stroma"], n))
    pd.DataFrame({"x": 1000 + r * np.cos(th), "y": 500 + r * np.sin(th), "cell_type": labels,
                  "pSTAT3": rng.uniform(0, 1000, n)}).to_csv(folder / "section.csv", index=False)
    (folder / "tiny.toml").write_text(TINY.read_text())
    path = folder / "from_tissue.toml"
    path.write_text(
        'extends = "tiny.toml"\nname = "from_tissue"\n'
        "[tissue]\n"
        'file = "section.csv"\n'
        'labels = { "Tumour cell" = "tumour", "CD8 T" = "cd8" }\n'
        'vessel_labels = ["Vessel"]\nignore_labels = ["Stroma"]\n'
        'stat3_column = "pSTAT3"\nstat3_range = [0, 1000]\n' + extra
    )
    return path


def test_a_run_starts_from_exactly_the_placed_cells(tmp_path, capsys):
    scenario = _tissue_scenario(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(other)  # the table is found beside the scenario, not in the working folder
        code, _, err = run_cli(["run", scenario, "--out", "run.h5", "--quiet"], capsys)
    finally:
        os.chdir(cwd)
    assert code == 0, err
    code, out, err = run_cli(["validate", scenario], capsys)
    assert code == 0 and "tissue: 300 rows:" in err and "cells placed" in err, err
    assert "ignored by ignore_labels" in err
    loaded = load_scenario(scenario)
    from tme_abm.scenario.tissue import placed_tissue

    placed = placed_tissue(loaded.scenario)
    snap = read_snapshot(other / "run.h5", 0)
    lattice = snap["cell_type"].ravel()
    assert np.count_nonzero(lattice >= 0) == placed.sites.size  # no tiny.toml placements
    assert np.array_equal(lattice[placed.sites], placed.types)
    cells = snap["cells"]
    order = np.argsort(cells["site"])
    s_order = np.argsort(placed.sites)
    assert np.allclose(cells["stat3"][order], placed.stat3[s_order], atol=1e-6)
    with h5py.File(other / "run.h5") as f:
        assert f.attrs["tissue_file"] == str((tmp_path / "section.csv").resolve())
        from tme_abm.tissue.table import file_sha256

        assert f.attrs["tissue_sha256"] == file_sha256(tmp_path / "section.csv")
        assert '"placed"' in f.attrs["tissue_report"]
    from tme_abm.model import TMEModel

    assert placed.vessel_sites.size > 10
    assert np.array_equal(TMEModel(loaded).engine.vessel_sites, placed.vessel_sites)


def test_add_placements_keeps_the_scenarios_own_cells_on_free_sites(tmp_path):
    from tme_abm.model import TMEModel

    plain = TMEModel(load_scenario(_tissue_scenario(tmp_path)))
    both = TMEModel(load_scenario(_tissue_scenario(tmp_path, "add_placements = true\n")))
    assert both.engine.cells.n > plain.engine.cells.n
    assert np.array_equal(plain.engine.vessel_sites, both.engine.vessel_sites)


def test_runs_from_a_table_are_deterministic(tmp_path, capsys):
    scenario = _tissue_scenario(tmp_path)
    for name in ("a.h5", "b.h5"):
        assert run_cli(["run", scenario, "--out", tmp_path / name, "--quiet"], capsys)[0] == 0
    a, b = read_snapshot(tmp_path / "a.h5"), read_snapshot(tmp_path / "b.h5")
    assert np.array_equal(a["cell_type"], b["cell_type"])
    assert np.array_equal(a["cells"]["stat3"], b["cells"]["stat3"])


@pytest.mark.parametrize(("extra", "edit", "key", "words"), [
    ('sha256 = "' + "0" * 64 + '"\n', None, "tissue.sha256", ["changed"]),
    ('x_column = "X"\n', None, "tissue.x_column", ["no column 'X'"]),
    ("", lambda p: p.unlink(), "tissue.file", ["no such file", "scenario's folder"]),
    ('centre_um = [1.0]\n', None, "tissue.centre_um", ["2 coordinates"]),
    ('labels = { "CD8 T" = "cd9" }\n', None, "tissue.labels", ["cd9"]),
    ("", lambda p: p.write_text("x,y,cell_type,pSTAT3\n1,2,Tumour cell,1\nnan,3,CD8 T,2\n"),
     "tissue.x_column", ["data row 2"]),
    ("", lambda p: p.write_text("x,y,cell_type,pSTAT3\n1,2,Tumour cell,1\n9,3,Macrophage,2\n"),
     "tissue.labels", ["'Macrophage'"]),
    ("", lambda p: p.write_text("x,y,cell_type,pSTAT3\n0,0,Tumour cell,1\n90000,3,CD8 T,2\n"),
     "tissue.outside", ["outside the lattice"]),
    ("", lambda p: p.write_text("x,y,z,cell_type,pSTAT3\n0,0,1,Tumour cell,1\n9,3,20,CD8 T,2\n"),
     "tissue.z_column", ["3D"]),
])
def test_bad_tissue_input_is_exit_2_naming_the_key_and_writes_nothing(
        tmp_path, capsys, extra, edit, key, words):
    scenario = _tissue_scenario(tmp_path)
    text = scenario.read_text()
    if extra.startswith("labels"):
        text = text.replace('labels = { "Tumour cell" = "tumour", "CD8 T" = "cd8" }\n', extra)
    else:
        text += extra
    scenario.write_text(text)
    if edit is not None:
        edit(tmp_path / "section.csv")
    for command in ("validate", "run"):
        code, _, err = run_cli([command, scenario, "--out", tmp_path / "x.h5"]
                               if command == "run" else [command, scenario], capsys)
        assert code == 2, err
        assert "Traceback" not in err
        assert key in err, err
        for w in words:
            assert w in err, err
    assert not list(tmp_path.glob("x.h5*"))
    with pytest.raises(ScenarioError):
        load_scenario(scenario)


# ------------------------------------------------------------------ comparison


def test_a_run_compared_with_its_own_table_at_day_0_differs_in_nothing(tmp_path, capsys):
    scenario = _tissue_scenario(tmp_path)
    assert run_cli(["run", scenario, "--out", tmp_path / "r.h5", "--quiet"], capsys)[0] == 0
    code, out, err = run_cli(["compare", tmp_path / "r.h5", scenario, "--day", "0",
                              "--csv", tmp_path / "c.csv", "--plot", tmp_path / "c.png"], capsys)
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "c.csv")
    both = frame.dropna(subset=["tissue", "run"])
    assert len(both) >= 8
    assert np.allclose(both["tissue"], both["run"])
    assert (tmp_path / "c.png").stat().st_size > 10_000
    assert "immune_fraction" in out
    # a later day differs, and the counts say so
    code, out, _ = run_cli(["compare", tmp_path / "r.h5", scenario], capsys)
    assert code == 0


def test_compare_refuses_bad_input_without_writing(tmp_path, capsys):
    scenario = _tissue_scenario(tmp_path)
    assert run_cli(["run", scenario, "--out", tmp_path / "r.h5", "--quiet"], capsys)[0] == 0
    (tmp_path / "c.csv").write_text("keep me")
    cases = [
        ([tmp_path / "r.h5", scenario, "--csv", tmp_path / "c.csv"], "already exists"),
        ([tmp_path / "r.h5", tmp_path / "tiny.toml"], "no [tissue] table"),
        ([tmp_path / "r.h5", scenario, "--day", "30"], "outside the run"),
        ([tmp_path / "nope.h5", scenario], "no such run file"),
        ([tmp_path / "r.h5", scenario, "--margin-um", "-1"], "--margin-um"),
    ]
    for argv, words in cases:
        code, _, err = run_cli(["compare", *argv], capsys)
        assert code == 2 and words in err and "Traceback" not in err, err
    assert (tmp_path / "c.csv").read_text() == "keep me"


def test_compare_refuses_a_3d_run(tmp_path, capsys):
    scenario = _tissue_scenario(tmp_path)
    code, _, err = run_cli(["run", TINY, "--out", tmp_path / "r3.h5", "--quiet", "--set",
                            "domain.shape=[4,20,20]", "--set", "domain.duration_days=0.1"],
                           capsys)
    assert code == 0, err
    code, _, err = run_cli(["compare", tmp_path / "r3.h5", scenario], capsys)
    assert code == 2 and "3D run" in err and "Traceback" not in err


def test_tissue_metrics_of_a_table_alone_match_the_comparison(tmp_path, capsys):
    import tme_abm

    scenario = _tissue_scenario(tmp_path)
    metrics, report = tme_abm.tissue_metrics(scenario, site_um=20.0)
    assert report.n_placed > 0
    assert run_cli(["run", scenario, "--out", tmp_path / "r.h5", "--quiet"], capsys)[0] == 0
    frame, _ = tme_abm.compare_tissue(tmp_path / "r.h5", scenario, day=0)
    by_metric = dict(zip(frame["metric"], frame["tissue"], strict=True))
    # the table alone (its own lattice) and beside the run (the run's lattice):
    # fractions and ratios agree to within the placement's rounding
    for key in ("immune_fraction", "stat3_high_fraction_tumour"):
        assert metrics[key] == pytest.approx(by_metric[key], rel=0.1)


def test_a_table_changed_after_loading_is_refused_not_used(tmp_path):
    from tme_abm.model import TMEModel
    from tme_abm.scenario.tissue import _CACHE

    loaded = load_scenario(_tissue_scenario(tmp_path))
    table = tmp_path / "section.csv"
    table.write_text(table.read_text().replace("Tumour cell", "CD8 T", 5))
    _CACHE.clear()  # as in another process (a sweep's worker)
    with pytest.raises(TissueError, match="changed since"):
        TMEModel(loaded)
