"""Pushing division: a dividing cell with no free neighbour shoves the cells
between it and the nearest free site (within its reach) one step outward."""

import numpy as np
import pytest
from factory import engine, minimal, with_type
from test_engine import (
    assert_grows_without_preferred_direction,
    assert_same_on_one_and_two_threads,
    busy_scenario,
    check_invariants,
)

from tme_abm.core.behaviours import EV_DIVISION, colour_count, colour_period


def _site(e, where):
    """Flat site of ``(y, x)`` or ``(z, y, x)`` on the engine's lattice."""
    return int(np.ravel_multi_index(where if len(where) == 3 else (0, *where), e.params.dims))


def _packed(shape, reach, free_at, seed=None):
    """A lattice packed with inert `b` cells around one `a` at the centre that
    divides at once (10/min) with push reach ``reach``; ``free_at`` sites are
    emptied.  Returns the engine and the centre site."""
    data = minimal(shape=shape, days=1)
    data = with_type(data, "a", division_rate_per_min=10.0, division_push_sites=reach)
    data = with_type(data, "b")
    data["placement"] = [
        {"cell_type": "a", "region": "disc", "radius_um": 1.0},
        {"cell_type": "b", "region": "everywhere"},
    ]
    e = engine(data, seed=seed)
    c = e.cells
    for where in free_at:
        s = _site(e, where)
        row = int(c.site_cell[s])
        assert row >= 0
        c.site[row] = -1
        c.site_cell[s] = -1
    c.compact()
    check_invariants(e)
    return e, _site(e, tuple(d // 2 for d in e.params.dims))


def _occupant_type(e, where):
    row = int(e.cells.site_cell[_site(e, where)])
    return -1 if row < 0 else int(e.cells.type[row])


def _ids_at(e):
    c = e.cells
    return dict(zip(c.site[: c.n].tolist(), c.id[: c.n].tolist(), strict=True))


@pytest.mark.parametrize(
    ("free", "path"),
    [
        ((4, 6), [(4, 5), (4, 6)]),  # straight along x
        ((2, 6), [(3, 5), (2, 6)]),  # along the diagonal
        ((2, 5), [(3, 5), (2, 5)]),  # a knight's offset: diagonal step, then straight
    ],
)
def test_push_reach_two_frees_the_first_site_on_the_path(free, path):
    e, centre = _packed((9, 9), 2, [free])
    before = _ids_at(e)
    n0 = e.cells.n
    e.step()
    check_invariants(e)
    assert e.cells.n == n0 + 1 and e.events[EV_DIVISION, 0] == 1
    after = _ids_at(e)
    first, last = (_site(e, p) for p in path)
    assert after[last] == before[first]  # the neighbour was shoved one step outward
    assert _occupant_type(e, path[0]) == 0  # the daughter took its place
    assert after[centre] == before[centre]  # the mother stays put
    moved = {s for s in after if before.get(s) != after[s]}
    assert moved == {first, last}  # nothing else moved


def test_no_push_without_reach_and_no_push_beyond_it():
    e, _ = _packed((9, 9), 1, [(4, 6)])  # contact inhibition: reach 1
    n0 = e.cells.n
    e.step()
    assert e.cells.n == n0 and e.events[EV_DIVISION].sum() == 0
    e, _ = _packed((9, 9), 2, [(4, 7)])  # the free site is 3 away: out of reach 2
    e.step()
    assert e.cells.n == n0 and e.events[EV_DIVISION].sum() == 0


def test_push_reach_three_shoves_a_chain_of_two():
    e, centre = _packed((11, 11), 3, [(2, 8)])  # (dy, dx) = (-3, +3): a diagonal chain
    before = _ids_at(e)
    e.step()
    check_invariants(e)
    after = _ids_at(e)
    p1, p2, p3 = (_site(e, p) for p in [(4, 6), (3, 7), (2, 8)])
    assert after[p3] == before[p2] and after[p2] == before[p1]
    assert _occupant_type(e, (4, 6)) == 0
    assert after[centre] == before[centre]


def test_the_nearest_free_site_is_chosen_and_all_nearest_ones_are_used():
    """Free sites 2 and 3 away: only the nearer one fills; two at distance 2
    are each chosen in some seeds."""
    picks = set()
    for seed in range(16):
        e, _ = _packed((11, 11), 3, [(5, 7), (5, 3), (5, 8)], seed=seed)
        e.step()
        check_invariants(e)
        assert _occupant_type(e, (5, 8)) == -1  # 3 away: never used while nearer ones exist
        picks.add((_occupant_type(e, (5, 7)) >= 0, _occupant_type(e, (5, 3)) >= 0))
    assert picks == {(True, False), (False, True)}


def test_push_in_three_dimensions_along_a_body_diagonal():
    e, centre = _packed((7, 7, 7), 2, [(1, 5, 1)])  # (dz, dy, dx) = (-2, +2, -2)
    before = _ids_at(e)
    e.step()
    check_invariants(e)
    after = _ids_at(e)
    p1, p2 = (_site(e, p) for p in [(2, 4, 2), (1, 5, 1)])
    assert after[p2] == before[p1]
    assert _occupant_type(e, (2, 4, 2)) == 0
    assert after[centre] == before[centre]


def test_colour_period_covers_the_longest_reach():
    assert colour_period(np.array([1, 1])) == 3
    assert colour_period(np.array([1, 3, 2])) == 7
    assert colour_count(1, 7) == 49 and colour_count(5, 5) == 125


def test_pushing_gives_identical_runs_on_one_and_two_threads(monkeypatch):
    data = busy_scenario(shape=(40, 40))
    data["cell_types"]["a"]["division_push_sites"] = 3
    data["cell_types"]["b"]["infiltrates"] = ["a"]
    assert_same_on_one_and_two_threads(monkeypatch, data, 40, each_tick=check_invariants)


def test_pushing_in_3d_gives_identical_runs_on_one_and_two_threads(monkeypatch):
    data = busy_scenario(shape=(12, 24, 24))
    data["cell_types"]["a"]["division_push_sites"] = 2
    assert_same_on_one_and_two_threads(monkeypatch, data, 20, each_tick=check_invariants)


def test_a_pushing_tumour_grows_from_its_interior():
    """With contact inhibition only the rim divides; with reach 3 a packed
    mass grows faster, by the rim cells pushing their neighbours."""
    sizes = {}
    for reach in (1, 3):
        data = minimal(shape=(61, 61), days=1)
        data = with_type(data, "a", division_rate_per_min=0.01, division_push_sites=reach)
        data["placement"] = [{"cell_type": "a", "region": "disc", "radius_um": 200.0}]
        e = engine(data, seed=3)
        for _ in range(60):
            e.step()
            check_invariants(e)
        sizes[reach] = e.cells.n
    n0 = int(np.pi * 10.0**2)
    # a disc of radius 10 sites: ~314 cells, ~60 rim cells (reach 1); reach 3
    # makes ~170 cells able to divide
    assert sizes[3] - n0 > 1.8 * (sizes[1] - n0)


def test_a_pushing_tumour_grown_from_one_cell_has_no_preferred_direction():
    """The ring scan and the straight push path favour no direction or axis
    (the same pooled statistics as contact-inhibited growth)."""
    assert_grows_without_preferred_direction(push_sites=3)
