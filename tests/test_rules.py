"""The rule kernel: Hill combination, signal vector, compilation order."""

import math

import numpy as np
from factory import engine, minimal, with_type

from tme_abm.core.lattice import moore_offsets
from tme_abm.core.rules import B_DIVISION, B_KILL, evaluate_cell, fill_signals


def tables(base, rules, nb=8):
    """rules: (behaviour, signal, up, half, hill, saturation) for type 0."""
    base_arr = np.zeros((1, nb))
    base_arr[0, : len(base)] = base
    up = base_arr.copy()
    down = base_arr.copy()
    rules = sorted(rules, key=lambda r: r[0])
    for b, _, is_up, _, _, sat in rules:
        (up if is_up else down)[0, b] = sat
    return (
        base_arr, up, down, np.array([0, len(rules)], dtype=np.int64),
        np.array([r[1] for r in rules], dtype=np.int64),
        np.array([r[0] for r in rules], dtype=np.int64),
        np.array([r[2] for r in rules], dtype=np.bool_),
        np.array([r[3] for r in rules], dtype=np.float64),
        np.array([r[4] for r in rules], dtype=np.float64),
    )


def evaluate(base, rules, sig):
    t = tables(base, rules)
    out = np.zeros(t[0].shape[1])
    evaluate_cell(0, np.asarray(sig, dtype=np.float64), *t, out)
    return out


def test_no_rules_gives_base_values():
    out = evaluate([0.1, 0.2, 0.3], [], [5.0, 5.0])
    assert list(out[:3]) == [0.1, 0.2, 0.3]


def test_single_increasing_rule_follows_the_hill_curve():
    rule = (0, 0, True, 2.0, 3.0, 1.0)  # behaviour 0, signal 0, half-max 2, power 3, to 1.0
    for s in (0.0, 1.0, 2.0, 4.0, 100.0):
        h = s**3 / (2.0**3 + s**3)
        assert math.isclose(evaluate([0.2], [rule], [s])[0], 0.2 + 0.8 * h, rel_tol=1e-12)


def test_decreasing_rule_reaches_its_saturation():
    rule = (0, 0, False, 1.0, 1.0, 0.05)
    assert math.isclose(evaluate([1.0], [rule], [1.0])[0], 1.0 + (0.05 - 1.0) * 0.5)
    assert math.isclose(evaluate([1.0], [rule], [1e9])[0], 0.05, rel_tol=1e-6)


def test_up_and_down_rules_combine_as_multivariate_hill():
    rules = [
        (0, 0, True, 1.0, 1.0, 2.0),
        (0, 1, True, 2.0, 2.0, 2.0),
        (0, 2, False, 1.0, 1.0, 0.0),
    ]
    s = [1.0, 2.0, 3.0]
    u = 1.0 + 1.0  # (1/1)^1 + (2/2)^2
    d = 3.0
    expected = 0.5 + (2.0 - 0.5) * u / (1 + u)
    expected += (0.0 - expected) * d / (1 + d)
    assert math.isclose(evaluate([0.5], rules, s)[0], expected, rel_tol=1e-12)


def test_rules_on_other_behaviours_leave_this_one_alone():
    out = evaluate([0.5, 0.5], [(1, 0, True, 1.0, 1.0, 1.0)], [1.0])
    assert out[0] == 0.5 and math.isclose(out[1], 0.75)


def test_signal_vector_counts_contacts_and_crowding():
    nz, ny, nx = 1, 5, 5
    offsets = moore_offsets(2)
    site_cell = np.full(25, -1, dtype=np.int32)
    # cell 0 at the centre (2, 2); neighbours: two of type 1, one of type 2
    sites = np.array([12, 6, 8, 18, 0], dtype=np.int32)  # (1,1) (1,3) (3,3) and a far corner
    types = np.array([0, 1, 1, 2, 1], dtype=np.int8)
    site_cell[sites] = np.arange(5)
    conc = np.arange(25 * 2, dtype=np.float32).reshape(25, 2)
    stat3 = np.array([0.4, 0, 0, 0, 0], dtype=np.float32)
    socs3 = np.array([0.1, 0, 0, 0, 0], dtype=np.float32)
    kills = np.array([3, 0, 0, 0, 0], dtype=np.int16)
    nf, nt = 2, 3
    sig = np.full(nf + 4 + nt, -1.0)
    nbuf = np.empty(8, dtype=np.int64)
    fill_signals(0, types, sites, stat3, socs3, kills, site_cell, conc, nz, ny, nx, offsets,
                 True, sig, nbuf)
    assert list(sig[:2]) == [24.0, 25.0]          # fields at site 12
    assert math.isclose(sig[2], 0.4, rel_tol=1e-6) and math.isclose(sig[3], 0.1, rel_tol=1e-6)
    assert sig[4] == 3 / 8                         # crowding
    assert sig[5] == 3.0                           # kills
    assert list(sig[6:]) == [0.0, 2.0, 1.0]        # contacts by type
    # a corner cell has 3 neighbours, so one neighbour is a third of its neighbourhood
    fill_signals(4, types, sites, stat3, socs3, kills, site_cell, conc, nz, ny, nx, offsets,
                 True, sig, nbuf)
    assert math.isclose(sig[4], 1 / 3) and list(sig[6:]) == [0.0, 1.0, 0.0]


def test_compiled_scenario_rules_act_on_the_right_cells():
    data = with_type(minimal(shape=(9, 9)), "a", division_rate_per_min=0.001)
    data = with_type(data, "b", kill_rate_per_min=0.01)
    data["rules"] = [
        {"cell_type": "b", "signal": "contact:a", "direction": "increases", "behaviour": "kill",
         "saturation": 0.03, "half_max": 1.0},
        {"cell_type": "a", "signal": "crowding", "direction": "decreases",
         "behaviour": "division", "saturation": 0.0, "half_max": 0.5, "hill_power": 2},
    ]
    data["placement"] = [
        {"cell_type": "b", "region": "disc", "radius_um": 1.0},
        {"cell_type": "a", "region": "disc", "radius_um": 21.0},
    ]
    e = engine(data)
    c = e.cells
    types = c.type[: c.n]
    b = np.flatnonzero(types == 1)
    assert len(b) == 1 and (types == 0).sum() == 4  # centre b, four axial neighbours a
    assert math.isclose(c.behaviours[b[0], B_KILL], 0.01 + 0.02 * 4 / 5, rel_tol=1e-6)
    a_rows = np.flatnonzero(types == 0)
    # each axial a touches b and two other a's diagonally: 3 of 8 neighbours occupied
    crowd = 3 / 8
    expected = 0.001 * (1 - crowd**2 / (0.25 + crowd**2))
    np.testing.assert_allclose(c.behaviours[a_rows, B_DIVISION], expected, rtol=1e-5)


def test_block_kernel_matches_cell_by_cell_evaluation_exactly():
    """evaluate_rules (type-sorted blocks, SIMD loops) gives bit-for-bit the
    values of evaluate_cell on every cell: mixed types, contact and plain
    types, every Hill form (1, 2, 3, non-integer), zero and positive signals,
    and more cells than one block."""
    from tme_abm.core.rules import RULE_BLOCK, evaluate_rules

    rng = np.random.default_rng(7)
    nz, ny, nx, nf, nt = 1, 64, 64, 3, 3
    n_sites = ny * nx
    n = RULE_BLOCK * 2 + 333
    n_signals = nf + 4 + nt
    sites = rng.permutation(n_sites)[:n].astype(np.int32)
    site_cell = np.full(n_sites, -1, dtype=np.int32)
    site_cell[sites] = np.arange(n, dtype=np.int32)
    cell_type = rng.integers(0, nt, n).astype(np.int32)
    stat3 = rng.uniform(0, 1, n)
    stat3[::5] = 0.0
    socs3 = rng.uniform(0, 3, n)
    kills = rng.integers(0, 4, n).astype(np.int32)
    conc = rng.uniform(0, 2, (n_sites, nf)).astype(np.float32)
    conc[rng.uniform(size=conc.shape) < 0.2] = 0.0
    nb = 10
    base = rng.uniform(0, 1, (nt, nb))
    sat_up = base + rng.uniform(0, 1, (nt, nb))
    sat_down = base * rng.uniform(0, 1, (nt, nb))
    rules = []  # (type, behaviour, signal, up, half_max, hill)
    for t in range(nt):
        for _ in range(9):
            sig_max = n_signals if t == 1 else nf + 4  # only type 1 reads contacts
            signal = int(rng.integers(0, sig_max))
            if t != 1 and signal == nf + 2:
                signal = nf  # crowding needs a contact scan
            hill = float(rng.choice([1.0, 2.0, 3.0, 1.26, 0.7]))
            rules.append((t, int(rng.integers(0, nb)), signal, bool(rng.integers(0, 2)),
                          float(rng.uniform(0.1, 2.0)), hill))
    rules.sort(key=lambda r: (r[0], r[1]))
    rule_offset = np.searchsorted([r[0] for r in rules], np.arange(nt + 1)).astype(np.int64)
    table = (
        base, sat_up, sat_down, rule_offset,
        np.array([r[2] for r in rules], dtype=np.int64),
        np.array([r[1] for r in rules], dtype=np.int64),
        np.array([r[3] for r in rules], dtype=np.bool_),
        np.array([r[4] for r in rules], dtype=np.float64),
        np.array([r[5] for r in rules], dtype=np.float64),
    )
    need_contacts = np.array([False, True, False])
    offsets = moore_offsets(2)
    behaviours = np.full((n + 5, nb), -7.0, dtype=np.float32)
    evaluate_rules(n, cell_type, sites, stat3, socs3, kills, site_cell, conc, nz, ny, nx,
                   offsets, need_contacts, n_signals, *table, behaviours)

    sig = np.empty(n_signals)
    nbuf = np.empty(len(offsets), dtype=np.int64)
    out = np.empty(nb)
    expected = np.empty((n, nb), dtype=np.float32)
    for i in range(n):
        fill_signals(i, cell_type, sites, stat3, socs3, kills, site_cell, conc, nz, ny, nx,
                     offsets, need_contacts[cell_type[i]], sig, nbuf)
        evaluate_cell(cell_type[i], sig, *table, out)
        expected[i] = out
    assert np.array_equal(behaviours[:n], expected)
    assert np.all(behaviours[n:] == -7.0)  # rows past n untouched
    assert not np.array_equal(expected[cell_type == 0], np.broadcast_to(
        base[0].astype(np.float32), expected[cell_type == 0].shape))  # rules did act
