"""tme_abm.analysis.spatial: spatial metrics on hand-made lattices with hand-computed answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tme_abm.analysis import (
    SNAPSHOT_METRICS,
    cd8_core_margin_density,
    cd8_treg_ratio,
    codes_for_role,
    distance_from_tumour_edge_um,
    infiltrating_cd8,
    neighbour_any,
    run_metrics,
    snapshot_metrics,
    stat3_high_fraction_by_distance,
    tumour_cd8_contact_fraction,
    tumour_region,
)

TINY = Path(__file__).parent / "data" / "tiny.toml"
E, T, C, R = -1, 0, 1, 2  # empty, tumour, CD8, Treg codes
CODES = {"tumour": T, "cd8": C, "treg": R}


def block_lattice() -> np.ndarray:
    """10 x 10: a 4 x 4 tumour block (rows/cols 3..6) with CD8 cells at known places.

    CD8 at (4, 4) inside the block, (2, 4) face-touching it, (7, 7) touching
    its corner (6, 6) diagonally, and (0, 0) far away. 15 tumour cells.
    """
    lat = np.full((10, 10), E, dtype=np.int8)
    lat[3:7, 3:7] = T
    for y, x in ((4, 4), (2, 4), (7, 7), (0, 0)):
        lat[y, x] = C
    return lat


def cube_lattice() -> np.ndarray:
    """5 x 5 x 5: a 3 x 3 x 3 tumour cube (1..3) and CD8 at (0,0,0) and (4,2,2)."""
    lat = np.full((5, 5, 5), E, dtype=np.int8)
    lat[1:4, 1:4, 1:4] = T
    lat[0, 0, 0] = C
    lat[4, 2, 2] = C
    return lat


# ------------------------------------------------------------------ neighbours


def test_neighbour_any_is_bounded_at_corners_and_edges():
    corner = np.zeros((3, 3), dtype=bool)
    corner[0, 0] = True
    out = neighbour_any(corner)
    expected = np.zeros((3, 3), dtype=bool)
    expected[0, 1] = expected[1, 0] = expected[1, 1] = True  # a corner has 3 neighbours
    assert np.array_equal(out, expected)  # no wrap-around, not the site itself

    edge = np.zeros((3, 4), dtype=bool)
    edge[0, 1] = True  # an edge site has 5 neighbours
    assert np.argwhere(neighbour_any(edge)).tolist() == [[0, 0], [0, 2], [1, 0], [1, 1], [1, 2]]

    centre = np.zeros((3, 3), dtype=bool)
    centre[1, 1] = True
    assert np.array_equal(neighbour_any(centre), ~centre)  # 8 neighbours

    cube = np.zeros((3, 3, 3), dtype=bool)
    cube[0, 0, 0] = True
    assert np.argwhere(neighbour_any(cube, spatial_ndim=3)).tolist() == [
        [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]
    ]  # 7 neighbours of a 3D corner
    cube[1, 1, 1], cube[0, 0, 0] = True, False
    assert int(neighbour_any(cube, spatial_ndim=3).sum()) == 26


def test_neighbour_any_keeps_leading_axes_apart():
    stack = np.zeros((2, 3, 3), dtype=bool)
    stack[0, 1, 1] = True
    out = neighbour_any(stack, spatial_ndim=2)
    assert int(out[0].sum()) == 8 and not out[1].any()


def test_infiltrating_cd8_counts_cd8_touching_tumour():
    lat = block_lattice()
    assert int(infiltrating_cd8(lat, [C], [T])) == 3  # all but the one at (0, 0)
    stack = np.stack([lat, np.full_like(lat, E)])
    assert infiltrating_cd8(stack, [C], [T]).tolist() == [3, 0]
    assert int(infiltrating_cd8(cube_lattice(), [C], [T], spatial_ndim=3)) == 2


def test_tumour_cd8_contact_fraction_2d_and_3d():
    # CD8 (4,4) touches the 8 tumour cells around it, (2,4) only some of those,
    # (7,7) touches (6,6): 9 of 15 tumour cells
    assert tumour_cd8_contact_fraction(block_lattice(), [C], [T]) == pytest.approx(9 / 15)
    # (0,0,0) touches (1,1,1); (4,2,2) touches the 3 x 3 face z = 3: 10 of 27
    assert tumour_cd8_contact_fraction(cube_lattice(), [C], [T]) == pytest.approx(10 / 27)


def test_cd8_treg_ratio_and_nan_without_treg():
    lat = block_lattice()
    assert math.isnan(cd8_treg_ratio(lat, [C], [R]))
    assert math.isnan(cd8_treg_ratio(lat, [C], []))
    lat[9, 9] = lat[9, 0] = R
    assert cd8_treg_ratio(lat, [C], [R]) == 4 / 2


# ------------------------------------------------------------------ geometry


def test_tumour_region_fills_holes_of_a_ring():
    ring = np.full((9, 9), E, dtype=np.int8)
    ring[2:7, 2:7] = T
    ring[3:6, 3:6] = E  # a 3 x 3 hole ...
    ring[4, 4] = C  # ... with a CD8 cell in it
    expected = np.zeros((9, 9), dtype=bool)
    expected[2:7, 2:7] = True
    assert np.array_equal(tumour_region(ring, [T]), expected)

    ring[2, 4] = E  # open the ring: nothing is enclosed any more
    assert int(tumour_region(ring, [T]).sum()) == 15

    diamond = np.full((5, 5), E, dtype=np.int8)
    for y, x in ((1, 2), (2, 1), (2, 3), (3, 2)):
        diamond[y, x] = T  # closed only diagonally: (2, 2) is still enclosed
    assert tumour_region(diamond, [T])[2, 2]
    assert int(tumour_region(diamond, [T]).sum()) == 5

    assert not tumour_region(np.full((4, 4), E, dtype=np.int8), [T]).any()


def test_signed_distance_of_a_half_plane_is_linear_and_antisymmetric():
    lat = np.full((6, 8), E, dtype=np.int8)
    lat[:, :4] = T  # edge between columns 3 and 4
    d = distance_from_tumour_edge_um(lat, [T], site_um=10.0)
    expected = np.broadcast_to((3.5 - np.arange(8)) * 10.0, (6, 8))
    assert np.allclose(d, expected)  # +5 / -5 on both sides of the edge
    swapped = np.where(lat == T, E, T).astype(np.int8)
    assert np.array_equal(distance_from_tumour_edge_um(swapped, [T], 10.0), -d)


def test_signed_distance_of_a_block():
    d = distance_from_tumour_edge_um(block_lattice(), [T], site_um=10.0)
    assert d[3, 3] == 5.0 and d[3, 5] == 5.0  # outermost tumour sites: +site/2
    assert d[4, 4] == 15.0 and d[5, 5] == 15.0  # two sites deep
    assert d[2, 4] == -5.0 and d[7, 5] == -5.0  # face neighbours outside: -site/2
    assert d[2, 2] == pytest.approx(-(math.sqrt(2) - 0.5) * 10)  # diagonal neighbour
    assert d[0, 0] == pytest.approx(-(math.sqrt(18) - 0.5) * 10)  # to (3, 3)
    assert d[9, 9] == pytest.approx(-(math.sqrt(18) - 0.5) * 10)  # to (6, 6)


def test_signed_distance_is_invariant_under_flips_and_transposes():
    rng = np.random.default_rng(3)
    lat = np.where(rng.random((13, 17)) < 0.4, T, E).astype(np.int8)
    lat[4:9, 5:12] = T
    d = distance_from_tumour_edge_um(lat, [T], 20.0)
    assert np.isfinite(d).all() and (d > 0).any() and (d < 0).any()
    assert np.array_equal(distance_from_tumour_edge_um(lat[::-1], [T], 20.0), d[::-1])
    assert np.array_equal(distance_from_tumour_edge_um(lat[:, ::-1], [T], 20.0), d[:, ::-1])
    assert np.array_equal(distance_from_tumour_edge_um(lat.T, [T], 20.0), d.T)
    vol = np.where(rng.random((6, 7, 8)) < 0.5, T, E).astype(np.int8)
    d3 = distance_from_tumour_edge_um(vol, [T], 20.0)
    assert np.array_equal(
        distance_from_tumour_edge_um(vol.transpose(2, 0, 1), [T], 20.0), d3.transpose(2, 0, 1)
    )
    assert np.array_equal(distance_from_tumour_edge_um(vol[:, ::-1], [T], 20.0), d3[:, ::-1])


def test_signed_distance_is_nan_without_an_edge():
    empty = np.full((5, 6), E, dtype=np.int8)
    assert np.isnan(distance_from_tumour_edge_um(empty, [T], 10.0)).all()
    assert np.isnan(distance_from_tumour_edge_um(np.zeros((5, 6), np.int8), [T], 10.0)).all()
    with pytest.raises(ValueError, match="site_um"):
        distance_from_tumour_edge_um(empty, [T], 0.0)
    with pytest.raises(ValueError, match="one snapshot"):
        distance_from_tumour_edge_um(np.zeros((2, 2, 2, 2), np.int8), [T], 10.0)


def test_signed_distance_3d():
    d = distance_from_tumour_edge_um(cube_lattice(), [T], site_um=10.0)
    assert d[2, 2, 2] == 15.0 and d[1, 1, 1] == 5.0 and d[0, 2, 2] == -5.0
    assert d[0, 0, 0] == pytest.approx(-(math.sqrt(3) - 0.5) * 10)


# ------------------------------------------------------------------ core / margin


def test_cd8_core_margin_density_2d():
    out = cd8_core_margin_density(block_lattice(), [C], [T], site_um=10.0, margin_um=10.0)
    # core: the inner 2 x 2 (d = 15 > 10), holding the CD8 at (4, 4); a site is 1e-4 mm^2
    assert out["core_sites"] == 4 and out["n_cd8_core"] == 1
    assert out["cd8_core_density"] == pytest.approx(1 / (4 * 1e-4))  # 2500 per mm^2
    # margin: 12 outer block sites (d = 5) + the 20 sites ringing the block (d = -5
    # or -(sqrt 2 - 0.5) * 10 = -9.1), holding the CD8 at (2, 4) and (7, 7)
    assert out["margin_sites"] == 32 and out["n_cd8_margin"] == 2
    assert out["cd8_margin_density"] == pytest.approx(2 / (32 * 1e-4))  # 625 per mm^2
    assert out["cd8_core_margin_ratio"] == pytest.approx(4.0)

    wide = cd8_core_margin_density(block_lattice(), [C], [T], site_um=10.0, margin_um=100.0)
    assert wide["core_sites"] == 0 and math.isnan(wide["cd8_core_density"])
    assert math.isnan(wide["cd8_core_margin_ratio"])
    assert wide["margin_sites"] == 100 and wide["n_cd8_margin"] == 4  # every site

    # |d| == margin_um is margin, not core: d = 15 inside, and outside sites 2 away
    # face-on (d = -15) but not (1, 2)-away ones (d = -(sqrt 5 - 0.5) * 10 = -17.4)
    edge = cd8_core_margin_density(block_lattice(), [C], [T], site_um=10.0, margin_um=15.0)
    assert edge["core_sites"] == 0 and edge["margin_sites"] == 16 + 20 + 16
    assert edge["n_cd8_margin"] == 3


def test_cd8_core_margin_density_3d_is_per_mm3():
    out = cd8_core_margin_density(cube_lattice(), [C], [T], site_um=10.0, margin_um=10.0)
    # core: the centre site only; margin: 26 surface sites inside + the 98 of the
    # outer shell less its 8 corners (d = -(sqrt 3 - 0.5) * 10 = -12.3)
    assert out["core_sites"] == 1 and out["cd8_core_density"] == 0.0
    assert out["margin_sites"] == 26 + 90 and out["n_cd8_margin"] == 1  # (4,2,2), not (0,0,0)
    assert out["cd8_margin_density"] == pytest.approx(1 / (116 * 1e-6))  # a site is 1e-6 mm^3
    assert out["cd8_core_margin_ratio"] == 0.0


def test_core_margin_without_tumour_or_cd8():
    no_tumour = np.where(block_lattice() == T, E, block_lattice()).astype(np.int8)
    out = cd8_core_margin_density(no_tumour, [C], [T], 10.0, 10.0)
    assert math.isnan(out["cd8_core_density"]) and math.isnan(out["cd8_margin_density"])
    assert math.isnan(out["cd8_core_margin_ratio"])
    assert math.isnan(tumour_cd8_contact_fraction(no_tumour, [C], [T]))
    no_cd8 = np.where(block_lattice() == C, T, block_lattice()).astype(np.int8)
    out = cd8_core_margin_density(no_cd8, [C], [T], 10.0, 10.0)
    assert out["cd8_core_density"] == 0.0 and out["cd8_margin_density"] == 0.0
    assert math.isnan(out["cd8_core_margin_ratio"])  # 0 / 0


# ------------------------------------------------------------------ STAT3


def half_plane_with_cells() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """6 x 8, tumour in columns 0..3 (d = (3.5 - x) * 10 µm), cells at known sites."""
    lat = np.full((6, 8), E, dtype=np.int8)
    lat[:, :4] = T
    rows = [  # (y, x, type, stat3); d = 35, 5, 5, 15, -5, -35
        (0, 0, T, 0.9), (1, 3, T, 0.2), (2, 3, T, 0.5), (3, 2, T, 0.1),
        (0, 4, C, 0.7), (0, 7, C, 0.1),
    ]
    for y, x, code, _ in rows:
        lat[y, x] = code
    cells = {
        "type": np.array([r[2] for r in rows], dtype=np.int8),
        "site": np.array([r[0] * 8 + r[1] for r in rows], dtype=np.int32),
        "stat3": np.array([r[3] for r in rows], dtype=np.float32),
    }
    return lat, cells


def test_stat3_high_fraction_by_distance():
    lat, cells = half_plane_with_cells()
    df = stat3_high_fraction_by_distance(lat, cells, [T], 10.0, [-40, -20, 0, 20, 40])
    assert list(df.columns) == ["type", "bin_low_um", "bin_high_um", "n_cells", "n_high",
                                "fraction_high"]
    assert df["type"].tolist() == [T] * 4 + [C] * 4
    assert df["bin_low_um"].tolist() == [-40, -20, 0, 20] * 2
    assert df["n_cells"].tolist() == [0, 0, 3, 1, 1, 1, 0, 0]
    assert df["n_high"].tolist() == [0, 0, 1, 1, 0, 1, 0, 0]  # 0.5 counts as high
    frac = df["fraction_high"].to_numpy()
    assert np.array_equal(frac, [np.nan, np.nan, 1 / 3, 1, 0, 1, np.nan, np.nan], equal_nan=True)
    # half-open bins: the cell at d = 15 falls in [15, 25), not [5, 15)
    edges = stat3_high_fraction_by_distance(lat, cells, [T], 10.0, [5, 15, 25])
    assert edges[edges["type"] == T]["n_cells"].tolist() == [2, 1]
    # threshold
    strict = stat3_high_fraction_by_distance(lat, cells, [T], 10.0, [0, 20], threshold=0.95)
    assert strict["n_high"].tolist() == [0, 0]


def test_stat3_by_distance_3d_site_index_and_edge_cases():
    lat = np.full((3, 4, 5), E, dtype=np.int8)
    lat[:, :, :2] = T  # tumour where x <= 1: d = (1.5 - x) * 10
    lat[2, 0, 0] = T
    lat[1, 3, 4] = C
    cells = {"type": np.array([T, C]), "site": np.array([(2 * 4 + 0) * 5 + 0, (1 * 4 + 3) * 5 + 4]),
             "stat3": np.array([0.6, 0.6])}  # flat sites 40 (d = +15) and 39 (d = -25)
    df = stat3_high_fraction_by_distance(lat, cells, [T], 10.0, [-30, -20, 10, 20])
    assert df["n_cells"].tolist() == [0, 0, 1, 1, 0, 0]
    no_tumour = np.where(lat == T, E, lat).astype(np.int8)
    empty = stat3_high_fraction_by_distance(no_tumour, cells, [T], 10.0, [-1e9, 1e9])
    assert empty["n_cells"].tolist() == [0, 0] and empty["fraction_high"].isna().all()
    assert len(stat3_high_fraction_by_distance(lat, {}, [T], 10.0, [0, 1])) == 0
    with pytest.raises(ValueError, match="increasing"):
        stat3_high_fraction_by_distance(lat, cells, [T], 10.0, [10, 0])
    with pytest.raises(ValueError, match="outside the lattice"):
        stat3_high_fraction_by_distance(lat, {**cells, "site": np.array([0, 60])}, [T], 10.0,
                                        [0, 1])


# ------------------------------------------------------------------ summaries


def test_codes_for_role():
    codes = {"empty": -1, "tumour": 0, "cd8": 1, "cd8_exhausted": 2, "cd8x": 3, "treg": 4}
    assert codes_for_role(codes, "cd8") == [1, 2]
    assert codes_for_role(codes, "tumour") == [0]
    assert codes_for_role(codes, "nk") == []


def block_cells(lat: np.ndarray) -> dict[str, np.ndarray]:
    """One cell per occupied site: 5 of 15 tumour cells STAT3-high, no CD8, 1 of 2 Tregs."""
    sites = np.flatnonzero(lat >= 0)
    types = lat.ravel()[sites]
    stat3 = np.where(types == C, 0.2, 0.1)
    stat3[np.flatnonzero(types == T)[:5]] = 0.8
    treg = np.flatnonzero(types == R)
    stat3[treg] = [0.9, 0.3][: treg.size]
    return {"id": np.arange(sites.size), "type": types.astype(np.int8),
            "site": sites.astype(np.int32), "stat3": stat3.astype(np.float32)}


def test_snapshot_metrics_roles_and_missing_types():
    lat = block_lattice()
    lat[9, 9] = lat[9, 0] = R
    snap = {"cell_type": lat, "cells": block_cells(lat)}
    m = snapshot_metrics(snap, {"empty": -1, **CODES}, site_um=10.0, margin_um=10.0)
    assert list(m) == list(SNAPSHOT_METRICS)
    assert m["cd8_core_density"] == pytest.approx(2500.0)
    assert m["cd8_margin_density"] == pytest.approx(625.0)
    assert m["cd8_core_margin_ratio"] == pytest.approx(4.0)
    assert m["tumour_cd8_contact_fraction"] == pytest.approx(0.6)
    assert m["infiltrating_cd8"] == 3.0
    assert m["stat3_high_fraction_tumour"] == pytest.approx(5 / 15)
    assert m["stat3_high_fraction_cd8"] == 0.0
    assert m["stat3_high_fraction_treg"] == 0.5

    # exhausted CD8 cells are CD8 cells
    lat2 = lat.copy()
    lat2[2, 4] = 3
    m2 = snapshot_metrics({"cell_type": lat2, "cells": {}}, {**CODES, "cd8_exhausted": 3}, 10.0,
                          margin_um=10.0)
    assert m2["infiltrating_cd8"] == 3.0 and m2["cd8_margin_density"] == pytest.approx(625.0)
    # no cells table: STAT3 fractions NaN, the lattice metrics still there
    assert all(math.isnan(m2[f"stat3_high_fraction_{r}"]) for r in ("tumour", "cd8", "treg"))
    # a scenario without CD8 or Treg types: NaN, never an exception
    m3 = snapshot_metrics(snap, {"tumour": T}, 10.0)
    assert math.isnan(m3["infiltrating_cd8"]) and math.isnan(m3["cd8_margin_density"])
    assert math.isnan(m3["stat3_high_fraction_cd8"]) and math.isnan(m3["stat3_high_fraction_treg"])
    assert m3["stat3_high_fraction_tumour"] == pytest.approx(5 / 15)
    m4 = snapshot_metrics({"cell_type": np.full((4, 4), E, np.int8), "cells": {}}, CODES, 10.0)
    assert all(math.isnan(m4[k]) for k in SNAPSHOT_METRICS if k != "infiltrating_cd8")
    assert m4["infiltrating_cd8"] == 0.0


def write_run(path: Path, snapshots: list[np.ndarray]) -> Path:
    from tme_abm.io import RunLayout, RunWriter

    layout = RunLayout(
        shape=(10, 10), site_um=10.0, field_names=(), field_units=(), field_long_names=(),
        cell_type_names=("tumour", "cd8", "treg"),
        cell_columns=(("id", "int64", "1"), ("type", "int8", "1"), ("site", "int32", "1"),
                      ("stat3", "float32", "1")),
        timeseries=(("count_tumour", "cells", "tumour cells"),),
    )
    with RunWriter(path, layout) as w:
        w.append_timeseries(0.0, {"count_tumour": 15.0})
        for k, lat in enumerate(snapshots):
            w.write_snapshot(float(k), lat, {}, block_cells(lat))
    return w.final_path


def test_run_metrics_reads_codes_and_spacing_from_the_file(tmp_path):
    from tme_abm.batch.sweep import outputs_of

    lat = block_lattice()
    lat[9, 9] = lat[9, 0] = R
    path = write_run(tmp_path / "r.h5", [np.full_like(lat, E), lat])
    m = run_metrics(path, margin_um=10.0)
    assert m["cd8_core_density"] == pytest.approx(2500.0)  # site_um = 10 from the file
    assert m["stat3_high_fraction_treg"] == 0.5  # treg code 2 from flag_meanings
    first = run_metrics(path, index=0, margin_um=10.0)
    assert math.isnan(first["cd8_core_density"]) and first["infiltrating_cd8"] == 0.0
    with pytest.raises(IndexError):
        run_metrics(path, index=5)
    empty = write_run(tmp_path / "e.h5", [])
    assert all(math.isnan(v) for v in run_metrics(empty).values())
    out = outputs_of(empty)
    assert out["final_tumour"] == 15.0
    assert all(math.isnan(out[k]) for k in SNAPSHOT_METRICS)


def brute_force_contacts(lat: np.ndarray, a: list[int], b: list[int]) -> int:
    """Sites of types ``a`` with a Moore neighbour of types ``b`` (plain loops)."""
    ny, nx = lat.shape
    n = 0
    for y in range(ny):
        for x in range(nx):
            if lat[y, x] not in a:
                continue
            n += any(lat[v, u] in b for v in range(max(y - 1, 0), min(y + 2, ny))
                     for u in range(max(x - 1, 0), min(x + 2, nx)) if (v, u) != (y, x))
    return n


def test_tiny_scenario_run_metrics_and_sweep_outputs(tmp_path):
    from tme_abm.batch.plan import RunSpec
    from tme_abm.batch.sweep import OUTPUTS, outputs_of, write_summary
    from tme_abm.io import read_snapshot
    from tme_abm.io.dataset import open_sweep
    from tme_abm.runner import run_scenario
    from tme_abm.scenario import load_scenario

    loaded = load_scenario(TINY, ["domain.duration_days=0.1"])
    path = run_scenario(loaded, tmp_path / "runs" / "tiny.h5", progress=False).path
    snap = read_snapshot(path)
    lat, cells = snap["cell_type"], snap["cells"]
    tumour, cd8 = [0], [1, 2]  # tiny: tumour, cd8, cd8_exhausted
    n_tumour = int((lat == 0).sum())
    assert n_tumour > 0 and np.isin(lat, cd8).any()

    # a ~70-cell tumour (radius ~90 µm): a 40 µm margin leaves a core of ~20 sites
    m = run_metrics(path, margin_um=40.0)
    for key in ("cd8_core_density", "cd8_margin_density", "tumour_cd8_contact_fraction",
                "stat3_high_fraction_tumour", "stat3_high_fraction_cd8"):
        assert np.isfinite(m[key]), key
    assert math.isnan(m["stat3_high_fraction_treg"])  # tiny has no Treg type
    assert m["infiltrating_cd8"] == brute_force_contacts(lat, cd8, tumour)
    assert m["tumour_cd8_contact_fraction"] == pytest.approx(
        brute_force_contacts(lat, tumour, cd8) / n_tumour)
    is_tumour = cells["type"] == 0
    assert m["stat3_high_fraction_tumour"] == pytest.approx(
        np.count_nonzero(cells["stat3"][is_tumour] >= 0.5) / np.count_nonzero(is_tumour))

    old = ("final_tumour", "final_cd8", "final_treg", "cd8_treg_ratio", "tumour_stat3_mean")
    assert OUTPUTS[: len(old)] == old and OUTPUTS[len(old):] == SNAPSHOT_METRICS
    out = outputs_of(path)
    assert list(out) == list(OUTPUTS)
    default = run_metrics(path)  # the summary uses the default 100 µm margin
    assert np.array_equal([out[k] for k in SNAPSHOT_METRICS],
                          [default[k] for k in SNAPSHOT_METRICS], equal_nan=True)

    spec = RunSpec("r0", TINY, 0, 0, 7, {}, ())
    write_summary(tmp_path / "summary.csv", [spec], {"r0": {"run_id": "r0", "status": "ok",
                                                            **out}})
    table = open_sweep(tmp_path)
    cols = list(table.columns)
    assert cols.index("status") < cols.index("final_tumour") < cols.index("cd8_core_density")
    row = table.iloc[0]
    for key in SNAPSHOT_METRICS:
        assert (math.isnan(out[key]) and math.isnan(row[key])) or row[key] == pytest.approx(
            out[key]), key
