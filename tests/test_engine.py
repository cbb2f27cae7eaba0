"""Whole-tick behaviour: lattice invariants, no directional bias, actions,
recruitment, determinism across seeds and threads, bit-identical restart."""

import numba
import numpy as np
import pytest
from factory import engine, minimal, with_type

from tme_abm.core import engine as engine_module
from tme_abm.core.behaviours import EV_DIVISION, EV_KILLS, EV_RECRUIT
from tme_abm.core.lattice import site_coords


def check_invariants(e):
    c = e.cells
    sites = c.site[: c.n]
    assert np.all(sites >= 0)
    assert len(np.unique(sites)) == c.n, "two cells on one site"
    assert np.array_equal(c.site_cell[sites], np.arange(c.n))
    assert (c.site_cell >= 0).sum() == c.n
    assert len(np.unique(c.id[: c.n])) == c.n
    assert np.all(c.id[: c.n] < c.next_id)


def coords(e):
    nz, ny, nx = e.params.dims
    s = e.cells.site[: e.cells.n].astype(np.int64)
    return np.stack([s // (ny * nx), (s // nx) % ny, s % nx], axis=1)


def busy_scenario(shape=(41, 41)):
    data = minimal(shape=shape, days=0.5)
    data["fields"]["signal"] = {"diffusion_um2_per_min": 600.0, "half_life_min": 60.0}
    data = with_type(
        data, "a", division_rate_per_min=0.01, death_rate_per_min=0.002,
        migration_speed_um_per_min=4.0, secretion_ng_per_ml_per_min={"signal": 0.1},
        transform_rate_per_min={"b": 0.002},
    )
    data = with_type(
        data, "b", migration_speed_um_per_min=4.0, chemotaxis_field="signal",
        chemotaxis_bias=0.7, kill_rate_per_min=0.05, kill_targets=["a"], kill_capacity=3,
        death_rate_per_min=0.001,
        recruitment={"rate_per_vessel_per_min": 0.01, "signal": "signal",
                     "half_max_ng_per_ml": 0.1},
    )
    data["placement"] = [{"cell_type": "a", "region": "disc", "radius_um": 100.0},
                         {"cell_type": "b", "region": "everywhere", "fraction": 0.02}]
    data["vessels"] = {"fraction": 0.01}
    return data


def test_never_two_cells_on_one_site():
    e = engine(busy_scenario())
    check_invariants(e)
    for _ in range(100):
        e.step()
        check_invariants(e)
        assert e.conc.min() >= 0.0 and np.isfinite(e.conc).all()
    assert e.cells.n > 50  # the scenario did not simply die out
    c = e.cells
    assert np.array_equal(e.counts(), np.bincount(c.type[: c.n], minlength=2))
    assert e.counts().sum() == c.n


def test_same_seed_same_run_other_seed_other_run():
    data = busy_scenario()
    runs = []
    for seed in (5, 5, 6):
        e = engine(data, seed=seed)
        for _ in range(60):
            e.step()
        runs.append((e.cells.columns(), e.conc.copy()))
    for name in runs[0][0]:
        assert np.array_equal(runs[0][0][name], runs[1][0][name]), name
    assert np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0]["site"], runs[2][0]["site"])


def assert_same_on_one_and_two_threads(monkeypatch, data, ticks, each_tick=None):
    """Run ``data`` for ``ticks`` on 1 and on 2 threads; cells and fields must agree."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with one thread")
    # small problems normally run serially; force the parallel kernels
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_CELLS", 0)
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_FIELD_VOXELS", 0)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            e = engine(data)
            for _ in range(ticks):
                e.step()
                if each_tick is not None:
                    each_tick(e)
            results.append((e.cells.columns(), e.conc.copy()))
    finally:
        numba.set_num_threads(before)
    for name in results[0][0]:
        assert np.array_equal(results[0][0][name], results[1][0][name]), name
    assert np.array_equal(results[0][1], results[1][1])


def test_one_and_two_threads_give_identical_runs(monkeypatch):
    assert_same_on_one_and_two_threads(monkeypatch, busy_scenario(shape=(12, 30, 30)), 30)


def test_restart_from_checkpoint_is_bit_identical():
    data = busy_scenario()
    straight = engine(data)
    for _ in range(40):
        straight.step()
    first = engine(data)
    for _ in range(20):
        first.step()
    arrays, scalars = first.checkpoint()
    resumed = engine(data)
    resumed.restore(arrays, scalars)
    for _ in range(20):
        resumed.step()
    for name, col in straight.cells.columns().items():
        assert np.array_equal(col, resumed.cells.columns()[name]), name
    assert np.array_equal(straight.conc, resumed.conc)


def grow_from_one_cell(
    seed, shape=(121, 121), target=2500, division_rate_per_min=0.01, push_sites=1
):
    data = minimal(shape=shape, days=30)
    data = with_type(
        data, "a", division_rate_per_min=division_rate_per_min, division_push_sites=push_sites
    )
    data["placement"] = [{"cell_type": "a", "region": "disc", "radius_um": 1.0}]
    e = engine(data, seed=seed)
    assert e.cells.n == 1
    # a bound on ticks, so that growth that stalls fails instead of hanging:
    # at least one division per 10 expected doubling times
    max_ticks = int(10 * np.log2(target) / (division_rate_per_min * 5.0)) + 100
    for _ in range(max_ticks):
        if e.cells.n >= target:
            break
        e.step()
    assert e.cells.n >= target, f"grew to {e.cells.n} of {target} cells in {max_ticks} ticks"
    # (y, x) in 2D, (z, y, x) in 3D; the first cell sat on the centre site
    return coords(e)[:, 3 - len(shape) :].astype(float), np.array(shape) // 2


def unbiased(samples, expected, detectable):
    """Each column of ``samples`` (one row per seed) has its mean within 4
    standard errors of ``expected``, and 4 standard errors are below
    ``detectable``, so that a bias of that size would show."""
    samples = np.atleast_2d(np.asarray(samples).T).T
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert np.all(4 * se < detectable), "too few seeds to detect the bias"
    assert np.all(np.abs(samples.mean(axis=0) - expected) < 4 * se)


def test_tumour_grown_from_one_cell_has_no_preferred_direction():
    assert_grows_without_preferred_direction(push_sites=1)


def assert_grows_without_preferred_direction(push_sites):
    """2D growth from one cell, pooled over seeds, favours no direction."""
    # Pool 64 tumours of 800 cells: one tumour's centre of mass wanders ~1 site
    # (the first divisions decide a lot), so bias shows only across many seeds.
    offsets, second_moments, quadrants = [], [], []
    for seed in range(64):
        yx, centre = grow_from_one_cell(seed, shape=(81, 81), target=800, push_sites=push_sites)
        d = yx - centre
        offsets.append(d.mean(axis=0))
        second_moments.append([(d[:, 0] ** 2).mean(), (d[:, 1] ** 2).mean(),
                               (d[:, 0] * d[:, 1]).mean()])
        # quadrants of the cells off the two axes through the first cell (cells on
        # an axis would otherwise all fall on its "<= 0" side)
        off = d[(d[:, 0] != 0) & (d[:, 1] != 0)]
        quadrants.append(
            np.histogram2d(off[:, 0] > 0, off[:, 1] > 0, bins=2)[0].ravel() / len(off)
        )
        # round: the farthest cell is not much farther out than a disc of that area
        assert np.sqrt((d**2).sum(axis=1)).max() < 1.5 * np.sqrt(len(d) / np.pi)
    offsets, m, quadrants = np.array(offsets), np.array(second_moments), np.array(quadrants)
    # Each statistic must sit within 4 standard errors of its unbiased value, and
    # the standard error must be small enough that the named bias would show.
    unbiased(offsets, 0.0, 1.0)  # centre of mass stays put (a 1-site drift would show)
    # isotropic second moments: a row sweep or an ordered update stretches one axis
    unbiased((m[:, 0] - m[:, 1]) / (m[:, 0] + m[:, 1]), 0.0, 0.06)
    unbiased(m[:, 2] / (m[:, 0] + m[:, 1]), 0.0, 0.06)
    unbiased(quadrants, 0.25, 0.03)  # no quadrant favoured


def test_tumour_grown_from_one_cell_in_3d_has_no_preferred_direction():
    # Pool 256 tumours of 2000 cells, as in 2D.  One tumour's statistics scatter
    # (standard deviations) by: centre of mass 0.8 sites, normalised second-moment
    # differences 0.09, off-diagonal moments 0.05, octant fractions 0.04 (the
    # first divisions decide a lot).  Over 256 seeds 4 standard errors are then
    # about 0.2 sites, 0.023, 0.012 and 0.01: below a 1-site drift, a 0.06
    # stretch along an axis or a diagonal, and a 0.015 shift of one octant's
    # share of 1/8 (12 %, as for 2D's quadrants) -- octants need the most seeds.
    # Cells divide 5 times faster than in 2D (probability 0.22 a tick): a tumour
    # takes ~45 ticks, not ~185, with the same roundness and scatter, and more
    # cells compete for free sites in each colour turn.
    offsets, second_moments, octants = [], [], []
    for seed in range(256):
        zyx, centre = grow_from_one_cell(
            seed, shape=(41, 41, 41), target=2000, division_rate_per_min=0.05
        )
        d = zyx - centre
        # round: the farthest cell is within 2.2 radii of a ball of that volume (a
        # Moore-lattice tumour tends to a cube, corners at 1.4 radii, with a rough
        # surface: up to 1.93 in 768 seeds; a tumour that leaves sites empty, or
        # that is much longer than wide, reaches farther)
        assert np.sqrt((d**2).sum(axis=1)).max() < 2.2 * np.cbrt(3 * len(d) / (4 * np.pi))
        offsets.append(d.mean(axis=0))
        second_moments.append(d.T @ d / len(d))  # (z, y, x) x (z, y, x)
        # octants of the cells off the three planes through the first cell (cells
        # on a plane would otherwise all fall on its "<= 0" side)
        off = d[np.all(d != 0, axis=1)]
        octants.append(np.bincount((off > 0) @ [4, 2, 1], minlength=8) / len(off))
    offsets, m, octants = np.array(offsets), np.array(second_moments), np.array(octants)
    unbiased(offsets, 0.0, 1.0)  # centre of mass stays put (a 1-site drift would show)
    # isotropic second moments, each pair of axes normalised as in 2D: zz - yy,
    # yy - xx, xx - zz (a sweep or an ordered update stretches one axis) ...
    a, b = [0, 1, 2], [1, 2, 0]
    diag = m[:, a, a] + m[:, b, b]
    unbiased((m[:, a, a] - m[:, b, b]) / diag, 0.0, 0.06)
    unbiased(m[:, a, b] / diag, 0.0, 0.06)  # ... and zy, yx, xz (a diagonal)
    unbiased(octants, 1 / 8, 0.015)  # no octant favoured


def test_random_walk_has_no_drift():
    data = minimal(shape=(200, 200), days=1)
    data = with_type(data, "a", migration_speed_um_per_min=100.0)  # moves every tick
    data["placement"] = [{"cell_type": "a", "region": "disc", "radius_um": 1500.0,
                          "fraction": 0.1}]
    e = engine(data)
    assert e.cells.n > 1500  # enough walkers that var_y/var_x has a standard error < 5%
    start = coords(e)[:, 1:].astype(float)
    ids = e.cells.id[: e.cells.n].copy()
    n_steps = 60
    for _ in range(n_steps):
        e.step()
    assert np.array_equal(e.cells.id[: e.cells.n], ids)
    d = coords(e)[:, 1:] - start
    se = d.std(axis=0) / np.sqrt(len(d))
    assert np.all(np.abs(d.mean(axis=0)) < 4 * se)
    var = d.var(axis=0)
    assert abs(var[0] / var[1] - 1) < 0.15
    # a free Moore walk has variance 0.75 sites^2 per step per axis; crowding (10%) lowers it
    assert 0.6 * 0.75 * n_steps < var.mean() < 1.05 * 0.75 * n_steps


def test_random_walk_in_3d_has_no_drift():
    data = minimal(shape=(96, 96, 96), days=1)
    data = with_type(data, "a", migration_speed_um_per_min=100.0)  # moves every tick
    # a ball of radius 30 sites: the faces are 18 sites (about 3 standard
    # deviations of a walker's displacement per axis) beyond it
    data["placement"] = [{"cell_type": "a", "region": "disc", "radius_um": 600.0, "fraction": 0.1}]
    e = engine(data)
    # One axis's variance has a relative standard error of sqrt(2 / n), 1.3 % for
    # n = 11,000 walkers, and a ratio of two about 1.9 %: 10 % is over 5 of those.
    assert e.cells.n > 10_000
    start = coords(e).astype(float)
    ids = e.cells.id[: e.cells.n].copy()
    n_steps = 60
    for _ in range(n_steps):
        e.step()
    assert np.array_equal(e.cells.id[: e.cells.n], ids)
    d = coords(e) - start
    se = d.std(axis=0) / np.sqrt(len(d))  # 0.06 sites: a 0.25-site drift would show
    assert np.all(np.abs(d.mean(axis=0)) < 4 * se)
    var = d.var(axis=0)
    assert var.max() / var.min() - 1 < 0.1
    # a free 3D Moore walk steps -1, 0, +1 along an axis with probabilities 9, 8, 9
    # in 26: variance 18/26 sites^2 per step per axis; crowding (10 %) may lower it
    # (measured: by under 2 %)
    free = 18 / 26
    assert 0.85 * free * n_steps < var.mean() < 1.05 * free * n_steps


def test_migration_speed_is_honoured():
    data = minimal(shape=(300, 300), days=1)
    data = with_type(data, "a", migration_speed_um_per_min=2.0)
    data["placement"] = [{"cell_type": "a", "region": "disc", "radius_um": 2500.0,
                          "fraction": 0.01}]
    e = engine(data)
    moves = 0
    for _ in range(100):
        before = e.cells.site[: e.cells.n].copy()
        e.step()
        moves += (e.cells.site[: e.cells.n] != before).sum()
    expected = 2.0 * 5.0 / e.mean_step_um * 100 * e.cells.n
    assert abs(moves / expected - 1) < 0.05


def test_chemotaxis_climbs_the_gradient():
    data = minimal(shape=(60, 60), days=1)
    data = with_type(data, "a", migration_speed_um_per_min=100.0, chemotaxis_field="signal",
                     chemotaxis_bias=0.5)
    data["placement"] = [{"cell_type": "a", "region": "disc", "radius_um": 300.0,
                          "fraction": 0.1}]
    e = engine(data)
    x = np.arange(60, dtype=np.float32)
    e.conc[0, :, :, 0] = x[None, :]  # rises along +x, flat along y (D = 0, no decay)
    start = coords(e)[:, 1:].astype(float)
    for _ in range(10):
        e.step()
    d = coords(e)[:, 1:] - start
    assert d[:, 1].mean() > 3.0  # about half the moves go up the gradient
    assert abs(d[:, 0].mean()) < 4 * d[:, 0].std() / np.sqrt(len(d))


def test_division_needs_a_free_neighbour():
    data = minimal(shape=(9, 9), days=1)
    data = with_type(data, "a", division_rate_per_min=10.0)
    data["placement"] = [{"cell_type": "a", "region": "everywhere"}]
    e = engine(data)
    assert e.cells.n == 81
    e.step()
    assert e.cells.n == 81 and e.events[EV_DIVISION].sum() == 0
    check_invariants(e)


def test_killer_stops_at_its_kill_capacity():
    data = minimal(shape=(9, 9), days=1)
    data = with_type(data, "a")
    data = with_type(data, "k", kill_rate_per_min=100.0, kill_targets=["a"], kill_capacity=3)
    data["placement"] = [{"cell_type": "k", "region": "disc", "radius_um": 1.0},
                         {"cell_type": "a", "region": "everywhere"}]
    e = engine(data)
    kills = 0
    for _ in range(20):
        e.step()
        kills += e.events[EV_KILLS, 1]
    assert kills == 3
    assert (e.cells.type[: e.cells.n] == 0).sum() == 80 - 3


def test_kill_resistance_lowers_kill_probability():
    def kills_with(resistance):
        data = minimal(shape=(3, 3 * 200), days=1)
        data = with_type(data, "a", kill_resistance=resistance)
        data = with_type(data, "k", kill_rate_per_min=0.02, kill_targets=["a"])
        data["placement"] = [{"cell_type": "k", "region": "everywhere", "fraction": 0.5},
                             {"cell_type": "a", "region": "everywhere"}]
        e = engine(data)
        e.step()
        return e.events[EV_KILLS, 1]
    none, half = kills_with(0.0), kills_with(0.5)
    # per-tick kill probability 1 - exp(-0.1) vs 1 - exp(-0.05) for killers with a target
    assert 0.4 < half / none < 0.62


def test_recruits_enter_at_vessels_only():
    data = minimal(shape=(50, 50), days=1)
    data = with_type(data, "r", recruitment={"rate_per_vessel_per_min": 0.002})
    data["vessels"] = {"fraction": 0.01}
    e = engine(data)
    vessels = set(e.vessel_sites.tolist())
    assert len(vessels) > 5
    total = 0
    for _ in range(20):
        e.step()
        total += e.events[EV_RECRUIT, 1]
    assert total == e.cells.n > 0
    assert set(e.cells.site[: e.cells.n].tolist()) <= vessels
    expected = len(vessels) * 20 * (1 - np.exp(-0.002 * 5))
    assert abs(total - expected) < 4 * np.sqrt(expected)


def test_three_dimensional_lattice_runs_and_keeps_invariants():
    data = busy_scenario(shape=(15, 15, 15))
    data["placement"][0]["radius_um"] = 60.0
    e = engine(data)
    assert e.params.ndim == 3 and e.offsets.shape == (26, 3)
    for _ in range(30):
        e.step()
        check_invariants(e)
    z = coords(e)[:, 0]
    assert z.min() < 5 and z.max() > 9  # cells use the third dimension


def test_site_coords_round_trip():
    for site in (0, 7, 123, 3374):
        z, y, x = site_coords(site, 15, 15)
        assert (z * 15 + y) * 15 + x == site


def test_systemic_priming_scales_recruitment_with_a_lag():
    data = minimal(shape=(50, 50), days=3)
    data = with_type(data, "p")  # the priming type: 25 cells = 0.01 per site
    data = with_type(data, "r", death_rate_per_min=0.02, recruitment={
        "rate_per_vessel_per_min": 0.004, "primed_by": "p",
        "priming_half_max_per_site": 0.01, "priming_basal_fraction": 0.2,
        "priming_delay_days": 0.5})  # recruits live ~50 min so vessels stay free
    data["vessels"] = {"fraction": 0.02}
    primed = {**data, "placement": [{"cell_type": "p", "region": "everywhere",
                                     "fraction": 0.01}]}

    def recruited_in(e, ticks):
        r = e.params.type_names.index("r")
        total = 0
        for _ in range(ticks):
            e.step()
            total += e.events[EV_RECRUIT, r]
        return total

    e = engine(primed)
    P, R = e.params.type_names.index("p"), e.params.type_names.index("r")
    density = e.counts()[P] / e.n_sites
    assert density == pytest.approx(0.01, rel=0.3)
    recruited_in(e, 144)  # half a day = one time constant
    # the lagged density follows 1 - exp(-t/tau) exactly
    assert e.priming[R] == pytest.approx(density * (1 - np.exp(-1.0)), rel=1e-9)
    assert e.priming[P] == 0.0  # type p itself is not primed
    recruited_in(e, 576)
    # long after: recruitment runs at basal + (1 - basal) * H(density)
    x = e.priming[R] / 0.01
    assert x > 0.6
    level = 0.2 + 0.8 * x / (1 + x)
    expected = len(e.vessel_sites) * 144 * (1 - np.exp(-0.004 * level * 5))
    assert abs(recruited_in(e, 144) - expected) < 4 * np.sqrt(expected)
    # without any priming cells only the basal fraction recruits
    bare = engine(data)
    expected_bare = len(bare.vessel_sites) * 144 * (1 - np.exp(-0.004 * 0.2 * 5))
    assert abs(recruited_in(bare, 144) - expected_bare) < 4 * np.sqrt(expected_bare)


def test_ensure_capacity_keeps_live_rows_and_zeroes_the_rest():
    from tme_abm.core.cells import CellTable

    c = CellTable(n_sites=400, n_behaviours=3, capacity=16)
    rows = c.add(2, np.arange(10, 30), stat3=0.5)
    c.behaviours[rows] = 7.0
    c.ensure_capacity(100)  # grows (copying the live rows) and zeroes rows 20..99
    c.ensure_capacity(300)  # grows again
    assert c.capacity >= 300 and c.n == 20
    assert np.array_equal(c.site[:20], np.arange(10, 30))
    assert np.all(c.type[:20] == 2) and np.all(c.stat3[:20] == 0.5)
    assert np.all(c.behaviours[:20] == 7.0)
    assert np.all(c.behaviours[20:300] == 0.0) and np.all(c.site[20:300] == 0)
    c.ensure_capacity(25)  # within what is resident: live rows untouched
    assert np.all(c.behaviours[:20] == 7.0)


def test_occurs_decides_as_the_full_probability_does():
    """The expm1-free shortcut gives exactly the decision u < 1 - exp(-x)."""
    import math

    from tme_abm.core.behaviours import occurs

    rng = np.random.default_rng(5)
    xs = np.concatenate([
        [0.0, 1e-300, 1e-17, 2.0**-52, 1e-9, 0.5, 1.0, 30.0, 800.0],
        10.0 ** rng.uniform(-12, 1, 2000),
    ])
    for x in xs:
        p = -math.expm1(-x)
        us = np.concatenate([[0.0, p, np.nextafter(p, 0.0), np.nextafter(p, 1.0), x],
                             rng.uniform(0.0, min(1.0, 3 * x + 1e-300), 20)])
        for u in us:
            assert occurs(float(u), float(x)) == (u < p), (u, x)


def _packed_with_infiltrator(infiltrates, death_rate=0.0):
    data = minimal(shape=(15, 15), days=1)
    data = with_type(data, "a", death_rate_per_min=death_rate)
    data = with_type(data, "k", migration_speed_um_per_min=1000.0, infiltrates=infiltrates)
    data["placement"] = [{"cell_type": "k", "region": "disc", "radius_um": 1.0},
                         {"cell_type": "a", "region": "everywhere"}]
    return data


def test_infiltrating_cells_swap_into_a_packed_mass():
    e = engine(_packed_with_infiltrator(["a"]))
    assert e.cells.n == 225  # no free site at all
    k_row = int(np.flatnonzero(e.cells.type[: e.cells.n] == 1)[0])
    start = int(e.cells.site[k_row])
    visited = {start}
    for _ in range(10):
        e.step()
        check_invariants(e)
        visited.add(int(e.cells.site[k_row]))
    assert len(visited) > 3  # it moved through the mass, swapping places
    assert np.array_equal(e.counts(), [224, 1])
    still = engine(_packed_with_infiltrator([]))
    for _ in range(3):
        still.step()
    assert int(still.cells.site[k_row]) == start  # without `infiltrates` it is stuck


def test_a_displaced_cell_loses_its_turn():
    """Every `a` dies in its turn (death rate 10/min); one displaced by the
    infiltrator before its turn survives the tick, at the infiltrator's old site."""
    outcomes = []
    for seed in range(12):
        e = engine(_packed_with_infiltrator(["a"], death_rate=10.0), seed=seed)
        k_row = int(np.flatnonzero(e.cells.type[: e.cells.n] == 1)[0])
        start = int(e.cells.site[k_row])
        e.step()
        check_invariants(e)
        alive_a = np.flatnonzero(e.cells.type[: e.cells.n] == 0)
        assert len(alive_a) <= 1
        if len(alive_a):
            assert int(e.cells.site[alive_a[0]]) == start
        outcomes.append(len(alive_a))
    assert 0 < sum(outcomes) < len(outcomes)  # both orders of turns happen


def test_infiltration_gives_identical_runs_on_one_and_two_threads(monkeypatch):
    data = busy_scenario(shape=(30, 30))
    data["cell_types"]["b"]["infiltrates"] = ["a"]
    assert_same_on_one_and_two_threads(monkeypatch, data, 40, each_tick=check_invariants)


def test_priming_suppressor_divides_the_primed_part_of_recruitment():
    data = minimal(shape=(50, 50), days=3)
    data = with_type(data, "p")
    data = with_type(data, "q")
    data = with_type(data, "r", death_rate_per_min=0.02, recruitment={
        "rate_per_vessel_per_min": 0.004, "primed_by": "p",
        "priming_half_max_per_site": 0.01, "priming_basal_fraction": 0.2,
        "priming_suppressed_by": "q", "priming_suppression_half_max_per_site": 0.005,
        "priming_suppression_hill_power": 2.0})  # no delay: densities act at once
    data["vessels"] = {"fraction": 0.02}
    data["placement"] = [{"cell_type": "p", "region": "everywhere", "fraction": 0.01},
                         {"cell_type": "q", "region": "everywhere", "fraction": 0.005}]
    e = engine(data)
    P, Q, R = (e.params.type_names.index(t) for t in "pqr")
    base = e.tables.recruit_rate[R]
    rate = e._primed_recruit_rate()[R]
    dp = e.counts()[P] / e.n_sites
    dq = e.counts()[Q] / e.n_sites
    x, y = dp / 0.01, (dq / 0.005) ** 2
    assert e.priming_suppression[R] == dq and e.priming_suppression[P] == 0.0
    assert rate == pytest.approx(base * (0.2 + 0.8 * x / (1 + x) / (1 + y)), rel=1e-12)
    # the suppressor's lag is part of the checkpoint
    arrays, scalars = e.checkpoint()
    assert arrays["priming_suppression"][R] == dq
    other = engine(data)
    other.restore(arrays, scalars)
    assert other.priming_suppression[R] == dq


def test_priming_suppression_needs_primed_by():
    from tme_abm.scenario import ScenarioError
    from tme_abm.scenario.load import validate_data

    data = minimal()
    data = with_type(data, "r", recruitment={"rate_per_vessel_per_min": 0.001,
                                             "priming_suppressed_by": "a"})
    with pytest.raises(ScenarioError, match="priming_suppressed_by"):
        validate_data(data, "t")
