"""Exporting snapshots for the scverse tools: AnnData and SpatialData, and squidpy on them.

The exported table is checked against the run file it came from (every live
cell once, at its site's centre in µm, with its type, STAT3 and the fields at
its site), and squidpy's neighbourhood enrichment, co-occurrence and Ripley's
statistics are run on it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad  # the scverse extra, in dev: a missing one must fail, not skip
import numpy as np
import pytest

from tme_abm import cli
from tme_abm.io import read_snapshot

TINY = Path(__file__).parent / "data" / "tiny.toml"


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    out = folder / "tiny.h5"
    assert cli.main(["run", str(TINY), "--out", str(out), "--quiet"]) == 0
    return out


def test_anndata_holds_every_cell_of_the_snapshot_where_it_is(run_file):
    from tme_abm.tissue import to_anndata

    a = to_anndata(run_file, day=0.25)
    snap = read_snapshot(run_file, a.uns["tme_abm"]["snapshot_index"])
    assert a.uns["tme_abm"]["time_min"] == snap["time_min"] == 360.0
    lattice = snap["cell_type"]
    assert a.n_obs == np.count_nonzero(lattice >= 0) == len(snap["cells"]["id"])
    site_um = 20.0
    xy = a.obsm["spatial"]
    col = (xy[:, 0] / site_um - 0.5).round().astype(int)
    row = (xy[:, 1] / site_um - 0.5).round().astype(int)
    assert np.allclose(xy[:, 0], (col + 0.5) * site_um)
    names = list(a.obs["cell_type"].cat.categories)
    from tme_abm.io import read_run_info

    type_names = read_run_info(run_file)["cell_types"]
    assert [type_names[c] for c in lattice[row, col]] == list(a.obs["cell_type"].astype(str))
    assert set(names) <= set(type_names)
    by_id = dict(zip(snap["cells"]["id"].tolist(), snap["cells"]["stat3"].tolist(),
                     strict=True))
    assert np.allclose(a.obs["stat3"], [by_id[i] for i in a.obs["cell_id"]])
    for j, field in enumerate(a.var_names):
        assert np.allclose(a.X[:, j], snap["fields"][field][row, col])
    assert list(a.var["units"]) == ["ng/mL"] * a.n_vars
    assert a.uns["tme_abm"]["seed"] == 7 and "scenario" in a.uns["tme_abm"]
    assert len(a.uns["cell_type_colors"]) == len(names)
    assert (a.obs.loc[a.obs.cell_type == "tumour", "tumour_edge_distance_um"] > 0).all()


def test_squidpy_runs_its_spatial_statistics_unchanged(run_file):
    import squidpy as sq

    from tme_abm.tissue import to_anndata

    a = to_anndata(run_file, day=0)  # the tiny tumour is cleared by day 0.5
    if hasattr(sq.gr, "spatial_neighbors_radius"):  # squidpy >= 1.8
        sq.gr.spatial_neighbors_radius(a, radius=30.0)
    else:
        sq.gr.spatial_neighbors(a, coord_type="generic", radius=30.0)
    # 8 Moore neighbours at 20 and 28.3 um
    degree = np.asarray(a.obsp["spatial_connectivities"].sum(axis=1)).ravel()
    assert degree.max() <= 8
    sq.gr.nhood_enrichment(a, cluster_key="cell_type", seed=0, n_perms=100)
    cats = list(a.obs["cell_type"].cat.categories)
    z = a.uns["cell_type_nhood_enrichment"]["zscore"]
    t = cats.index("tumour")
    assert z[t, t] > 3  # a solid tumour: tumour cells neighbour tumour cells
    sq.gr.co_occurrence(a, cluster_key="cell_type", interval=np.linspace(20, 200, 10))
    occ = a.uns["cell_type_co_occurrence"]["occ"]
    assert occ.shape[:2] == (len(cats), len(cats)) and np.isfinite(occ).any()
    sq.gr.ripley(a, cluster_key="cell_type", mode="L", n_simulations=10, seed=0)
    assert "cell_type_ripley_L" in a.uns


def test_spatialdata_round_trip_links_labels_table_and_fields(run_file, tmp_path):
    import spatialdata as sd
    from spatialdata.transformations import get_transformation

    from tme_abm.tissue import write_export

    out = write_export(run_file, tmp_path / "s.zarr", "spatialdata")
    s = sd.read_zarr(out)
    table = s.tables["table"]
    labels = np.asarray(s.labels["cell_labels"])
    xy = table.obsm["spatial"]
    col = (xy[:, 0] / 20.0 - 0.5).round().astype(int)
    row = (xy[:, 1] / 20.0 - 0.5).round().astype(int)
    assert np.array_equal(labels[row, col], table.obs["instance_id"].to_numpy())
    assert np.count_nonzero(labels) == table.n_obs
    fields = s.images["fields"]
    assert list(fields.coords["c"].values) == list(table.var_names)
    snap = read_snapshot(run_file)
    assert np.allclose(np.asarray(fields.sel(c="il6")), snap["fields"]["il6"])
    scale = get_transformation(fields, to_coordinate_system="global")
    assert np.allclose(scale.to_affine_matrix(("c", "y", "x"), ("c", "y", "x"))
                       .diagonal()[:3], [1.0, 20.0, 20.0])
    assert len(s.shapes["cell_circles"]) == table.n_obs
    assert s.attrs["units"]["global"] == "um"
    assert s.attrs["units"]["fields/il6"] == "ng/mL"
    assert s.attrs["tme_abm"]["seed"] == 7


def test_a_run_without_cell_rows_exports_from_the_lattice(tmp_path, capsys):
    from tme_abm.tissue import to_anndata

    out = tmp_path / "nocells.h5"
    assert run_cli(["run", TINY, "--out", out, "--quiet", "--set", "output.cells=false"],
                   capsys)[0] == 0
    a = to_anndata(out)
    assert a.uns["tme_abm"]["cells_from_lattice"]
    assert "stat3" not in a.obs and a.n_obs == np.count_nonzero(read_snapshot(out)["cell_type"]
                                                                >= 0)


def test_a_3d_run_exports_with_three_coordinates(tmp_path, capsys):
    from tme_abm.tissue import to_anndata, to_spatialdata

    out = tmp_path / "3d.h5"
    code, _, err = run_cli(["run", TINY, "--out", out, "--quiet", "--set",
                            "domain.shape=[6,20,20]", "--set", "domain.duration_days=0.1"],
                           capsys)
    assert code == 0, err
    a = to_anndata(out)
    assert a.obsm["spatial"].shape[1] == 3 and "z_um" in a.obs
    s = to_spatialdata(out)
    assert np.asarray(s.labels["cell_labels"]).shape == (6, 20, 20)
    assert len(s.points["cell_points"]) == a.n_obs


def test_export_command_never_overwrites_unasked_and_leaves_no_debris(run_file, tmp_path,
                                                                     capsys):
    target = tmp_path / "a.h5ad"
    stale = tmp_path / ".a.h5ad.999999999.tmp.h5ad"  # as a killed export leaves it
    stale.write_bytes(b"half")
    code, out, err = run_cli(["export", run_file, "--out", target], capsys)
    assert not stale.exists()
    assert code == 0 and target.is_file(), err
    before = target.read_bytes()
    code, _, err = run_cli(["export", run_file, "--out", target, "--day", "0"], capsys)
    assert code == 2 and "already exists" in err
    assert target.read_bytes() == before
    code, _, err = run_cli(["export", run_file, "--out", target, "--day", "0", "--force"],
                           capsys)
    assert code == 0, err
    assert ad.read_h5ad(target).uns["tme_abm"]["time_min"] == 0.0
    for argv, words in [
        (["export", tmp_path / "none.h5"], "no such run file"),
        (["export", run_file, "--day", "3", "--out", tmp_path / "b.h5ad"], "outside the run"),
        (["export", TINY, "--out", tmp_path / "c.h5ad"], "not an HDF5 file"),
    ]:
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and words in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5ad"]


def test_default_export_name_sits_beside_the_run(run_file, capsys):
    code, out, _ = run_cli(["export", run_file, "--day", "0.5", "--format", "spatialdata"],
                           capsys)
    assert code == 0
    assert (run_file.parent / "tiny_day0.5.zarr").is_dir()


def test_the_shipped_section_runs_exports_and_passes_through_squidpy(tmp_path, capsys):
    """The README's example, shortened to half a day: run from the shipped table,
    export with the command, analyse the file with squidpy."""
    import squidpy as sq
    run = tmp_path / "section.h5"
    code, _, err = run_cli(["run", "tissue_section", "--out", run, "--set",
                            "domain.duration_days=0.5"], capsys)
    assert code == 0, err
    from tme_abm.scenario import load_scenario
    from tme_abm.scenario.library import list_scenarios
    from tme_abm.scenario.tissue import placed_tissue

    shipped = load_scenario(list_scenarios()["tissue_section"])
    r = placed_tissue(shipped.scenario).report
    assert f"3029 rows: {r.n_placed} cells placed" in err
    # every row accounted for: placed, left out (one agent per site) or ignored
    assert r.n_placed + r.n_dropped_crowded + sum(r.ignored.values()) == 3029
    code, out, err = run_cli(["export", run, "--day", "0.5"], capsys)
    assert code == 0, err
    a = ad.read_h5ad(tmp_path / "section_day0.5.h5ad")
    assert a.uns["tme_abm"]["tissue_file"].endswith("cycif_cd30.csv")
    sq.gr.spatial_neighbors_radius(a, radius=30.0)
    sq.gr.nhood_enrichment(a, cluster_key="cell_type", seed=0, n_perms=50,
                           show_progress_bar=False)
    cats = list(a.obs["cell_type"].cat.categories)
    z = a.uns["cell_type_nhood_enrichment"]["zscore"]
    assert z[cats.index("tumour"), cats.index("tumour")] > 3
    # the real section, through the same calls
    from tme_abm.tissue import table_to_anndata

    real = table_to_anndata("tissue_section")
    assert real.n_obs == 3029 - 885  # the 885 rows of ignore_labels are left out
    assert real.obs["stat3"].between(0, 1).all()
    sq.gr.spatial_neighbors_radius(real, radius=30.0)
    sq.gr.nhood_enrichment(real, cluster_key="cell_type", seed=0, n_perms=50,
                           show_progress_bar=False)
    assert np.isfinite(real.uns["cell_type_nhood_enrichment"]["zscore"]).any()


def test_an_exported_snapshot_restarts_as_the_same_tissue(run_file, tmp_path, capsys):
    """Export -> [tissue] with keep_coordinates -> the new run's first snapshot
    is the exported one: same lattice, same STAT3 (to float32 rounding)."""
    from tme_abm.tissue import to_anndata

    code, _, err = run_cli(["export", run_file, "--day", "0.25", "--out",
                            tmp_path / "snap.h5ad"], capsys)
    assert code == 0, err
    (tmp_path / "tiny.toml").write_text(TINY.read_text())
    (tmp_path / "again.toml").write_text(
        'extends = "tiny.toml"\nname = "again"\n[tissue]\nfile = "snap.h5ad"\n'
        'x_column = "x_um"\ny_column = "y_um"\nkeep_coordinates = true\n'
        'max_shift_um = 0.0\nstat3_column = "stat3"\nstat3_range = [0.0, 1.0]\n'
        '[tissue.labels]\ntumour = "tumour"\ncd8 = "cd8"\ncd8_exhausted = "cd8_exhausted"\n'
    )
    code, _, err = run_cli(["run", tmp_path / "again.toml", "--out", tmp_path / "again.h5",
                            "--quiet"], capsys)
    assert code == 0, err
    before = read_snapshot(run_file, to_anndata(run_file, 0.25).uns["tme_abm"]["snapshot_index"])
    after = read_snapshot(tmp_path / "again.h5", 0)
    assert np.array_equal(before["cell_type"], after["cell_type"])
    s_before = dict(zip(before["cells"]["site"].tolist(), before["cells"]["stat3"].tolist(),
                        strict=True))
    s_after = dict(zip(after["cells"]["site"].tolist(), after["cells"]["stat3"].tolist(),
                       strict=True))
    assert s_before.keys() == s_after.keys()
    assert np.allclose([s_before[k] for k in s_before], [s_after[k] for k in s_before],
                       atol=1e-6)
