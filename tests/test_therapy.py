"""Interventions: each therapy kind does what it says, when it says, and
scenario files compose with ``extends``."""

import math

import numpy as np
import pytest
from factory import engine, minimal, with_type

from tme_abm.core.behaviours import EV_RECRUIT
from tme_abm.core.rules import B_KILL, B_RESISTANCE
from tme_abm.core.stat3 import FLAG_STAT3_KNOCKOUT
from tme_abm.scenario import ScenarioError, load_scenario, validate_data
from tme_abm.scenario.library import examples_dir

SCENARIOS = examples_dir()


def stat3_world(**extra):
    data = minimal(shape=(20, 20), days=2, dt_min=10.0)
    data["fields"]["signal"]["half_life_min"] = 60.0
    stat3 = {
        "constitutive": 1.0,
        "activation_rate_per_min": 0.05,
        "deactivation_rate_per_min": 0.01,
    }
    data = with_type(data, "a", stat3=stat3)
    data = with_type(data, "b", stat3=stat3, kill_resistance=0.5)
    data["placement"] = [
        {"cell_type": "a", "region": "everywhere", "fraction": 0.1},
        {"cell_type": "b", "region": "everywhere", "fraction": 0.1},
    ]
    data["groups"] = {"both": ["a", "b"]}
    data.update(extra)
    return data


def run_until(e, day):
    while e.time_min < day * 1440:
        e.step()


def mean_stat3(e, code):
    c = e.cells
    return float(c.stat3[: c.n][c.type[: c.n] == code].mean())


def test_knockout_starts_on_its_day_and_only_in_its_types():
    e = engine(
        stat3_world(therapy=[{"kind": "stat3_knockout", "cell_types": ["a"], "start_day": 1.0}])
    )
    run_until(e, 0.9)
    assert mean_stat3(e, 0) > 0.8 and mean_stat3(e, 1) > 0.8
    run_until(e, 1.05)
    assert mean_stat3(e, 0) == 0.0 and mean_stat3(e, 1) > 0.8


def test_knockout_of_a_group_and_its_end_day():
    e = engine(
        stat3_world(
            therapy=[
                {"kind": "stat3_knockout", "cell_types": ["both"], "start_day": 0.0, "end_day": 1.0}
            ]
        )
    )
    run_until(e, 0.5)
    assert mean_stat3(e, 0) == 0.0 and mean_stat3(e, 1) == 0.0
    run_until(e, 2.0)  # knockout over: STAT3 recovers towards 5/6
    assert mean_stat3(e, 0) > 0.8


def test_knockdown_lowers_the_activation_rate_to_its_analytic_steady_state():
    e = engine(
        stat3_world(therapy=[{"kind": "stat3_knockdown", "cell_types": ["a"], "efficiency": 0.75}])
    )
    run_until(e, 2.0)
    a = 0.05 * 0.25
    assert math.isclose(mean_stat3(e, 0), a / (a + 0.01), rel_tol=1e-4)
    assert math.isclose(mean_stat3(e, 1), 0.05 / 0.06, rel_tol=1e-4)


def test_scale_behaviour_multiplies_exactly_while_active():
    e = engine(
        stat3_world(
            therapy=[
                {
                    "kind": "scale_behaviour",
                    "cell_types": ["b"],
                    "behaviour": "kill_resistance",
                    "factor": 0.2,
                    "start_day": 0.5,
                    "end_day": 1.0,
                }
            ]
        )
    )
    rows = np.flatnonzero(e.cells.type[: e.cells.n] == 1)
    run_until(e, 0.45)
    assert np.allclose(e.cells.behaviours[rows, B_RESISTANCE], 0.5)
    run_until(e, 0.6)
    rows = np.flatnonzero(e.cells.type[: e.cells.n] == 1)
    assert np.allclose(e.cells.behaviours[rows, B_RESISTANCE], 0.1)
    run_until(e, 1.1)
    rows = np.flatnonzero(e.cells.type[: e.cells.n] == 1)
    assert np.allclose(e.cells.behaviours[rows, B_RESISTANCE], 0.5)


def test_field_blockade_adds_decay():
    data = minimal(shape=(10, 10), days=1)
    data["fields"]["signal"] = {"diffusion_um2_per_min": 100.0, "initial_ng_per_ml": 1.0}
    data["therapy"] = [
        {"kind": "field_blockade", "field": "signal", "extra_decay_per_min": 0.01, "start_day": 0.0}
    ]
    e = engine(data)
    for _ in range(12):  # 60 min
        e.step()
    assert math.isclose(float(e.conc.mean()), math.exp(-0.01 * 60), rel_tol=1e-5)


def test_drug_follows_plasma_kinetics_and_enters_the_tissue():
    data = minimal(shape=(10, 10), days=3, dt_min=5.0)
    data["fields"]["drug"] = {"diffusion_um2_per_min": 100.0}
    dose = {
        "kind": "drug",
        "field": "drug",
        "dose_ng_per_ml": 10.0,
        "first_dose_day": 1.0,
        "every_days": 1.0,
        "doses": 2,
        "plasma_half_life_min": 120.0,
        "exchange_per_min": 1.0,
    }
    e = engine({**data, "therapy": [dose]})
    schedule = e.params.drugs[0]
    assert schedule.plasma_ng_per_ml(1439.0) == 0.0
    assert math.isclose(schedule.plasma_ng_per_ml(1440.0 + 120.0), 5.0)
    assert math.isclose(schedule.plasma_ng_per_ml(2880.0), 10.0 * (1 + 2.0**-12))
    drug = e.conc[..., 1]  # a view: field 0 is the untouched "signal"
    run_until(e, 1.0)
    assert drug.max() == 0.0
    run_until(e, 1.0 + 120 / 1440)
    # every site follows plasma closely (exchange 1/min >> plasma decay 0.0058/min)
    assert 4.5 < float(drug.mean()) < 5.5
    assert np.ptp(drug) < 1e-4


def test_drug_at_vessels_only_reaches_vessel_sites_first():
    data = minimal(shape=(30, 30), days=2, dt_min=5.0)
    data["fields"]["drug"] = {"diffusion_um2_per_min": 50.0}
    data["vessels"] = {"fraction": 0.01}
    data["therapy"] = [
        {
            "kind": "drug",
            "field": "drug",
            "dose_ng_per_ml": 10.0,
            "plasma_half_life_min": 600.0,
            "entry": "vessels",
            "exchange_per_min": 5.0,
        }
    ]
    e = engine(data)
    e.step()
    flat = e.conc.reshape(-1, 2)[:, 1]
    at_vessels = flat[e.vessel_sites].mean()
    assert at_vessels > 5 * flat.mean() > 0.0


def test_transfer_adds_knocked_out_cells_near_vessels_on_its_day():
    data = minimal(shape=(40, 40), days=1)
    data = with_type(data, "t", stat3={"constitutive": 1.0, "activation_rate_per_min": 0.05})
    data["vessels"] = {"fraction": 0.02}
    data["therapy"] = [
        {"kind": "transfer", "cell_type": "t", "count": 25, "day": 0.5, "stat3_knockout": True}
    ]
    e = engine(data)
    while e.time_min < 720.0:  # day 0.5
        e.step()
        assert e.cells.n == 0
    e.step()  # the tick [720, 725) holds the transfer
    c = e.cells
    assert c.n == 25 and e.events[EV_RECRUIT, 1] == 25
    assert np.all(c.flags[: c.n] & FLAG_STAT3_KNOCKOUT)
    # every transferred cell (they do not move) sits on or next to a vessel
    nx = 40
    vy, vx = np.divmod(e.vessel_sites, nx)
    cy, cx = np.divmod(c.site[: c.n].astype(np.int64), nx)
    near = (np.abs(cy[:, None] - vy[None]) <= 1) & (np.abs(cx[:, None] - vx[None]) <= 1)
    assert near.any(axis=1).all()
    run_until(e, 0.8)
    assert e.cells.n == 25 and np.all(e.cells.stat3[: e.cells.n] == 0.0)


def test_depletion_removes_cells_and_stops_recruitment():
    data = minimal(shape=(40, 40), days=1)
    data = with_type(data, "r", recruitment={"rate_per_vessel_per_min": 0.01})
    data["placement"] = [{"cell_type": "r", "region": "everywhere", "fraction": 0.05}]
    data["vessels"] = {"fraction": 0.02}
    data["therapy"] = [
        {"kind": "depletion", "cell_types": ["r"], "start_day": 0.25, "end_day": 0.5}
    ]
    e = engine(data)
    run_until(e, 0.2)
    assert e.cells.n > 50
    run_until(e, 0.26)
    assert e.cells.n == 0
    run_until(e, 0.49)
    assert e.cells.n == 0  # no recruitment while depleting
    run_until(e, 0.7)
    assert e.cells.n > 0  # recruitment resumes after end_day


def test_dying_cells_release_into_their_site():
    data = minimal(shape=(9, 9), days=1)
    data = with_type(data, "a", death_rate_per_min=100.0, death_release_ng_per_ml={"signal": 2.5})
    data["placement"] = [{"cell_type": "a", "region": "everywhere", "fraction": 0.3}]
    e = engine(data)
    sites = e.cells.site[: e.cells.n].copy()
    e.step()  # D = 0 and no decay: the release stays where it happened
    assert e.cells.n == 0
    flat = e.conc.reshape(-1)
    assert np.allclose(flat[sites], 2.5) and flat.sum() == pytest.approx(2.5 * len(sites))


def test_restart_with_therapies_is_bit_identical():
    data = stat3_world(
        therapy=[
            {"kind": "stat3_knockout", "cell_types": ["a"], "start_day": 0.5},
            {
                "kind": "scale_behaviour",
                "cell_types": ["b"],
                "behaviour": "kill_resistance",
                "factor": 0.0,
                "start_day": 0.7,
            },
        ]
    )
    straight = engine(data)
    run_until(straight, 1.0)
    first = engine(data)
    run_until(first, 0.6)
    arrays, scalars = first.checkpoint()
    resumed = engine(data)
    resumed.restore(arrays, scalars)
    run_until(resumed, 1.0)
    for name, col in straight.cells.columns().items():
        assert np.array_equal(col, resumed.cells.columns()[name]), name
    assert np.array_equal(
        straight.cells.behaviours[: straight.cells.n], resumed.cells.behaviours[: resumed.cells.n]
    )


def test_therapy_errors_name_the_key():
    bad = stat3_world(
        therapy=[
            {"kind": "stat3_knockout", "cell_types": ["nope"]},
            {"kind": "teleport"},
            {
                "kind": "drug",
                "field": "signal",
                "dose_ng_per_ml": 1.0,
                "plasma_half_life_min": 10.0,
                "exchange_per_min": 1.0,
                "doses": 3,
            },
            {
                "kind": "scale_behaviour",
                "cell_types": ["a"],
                "behaviour": "flying",
                "factor": 2.0,
                "colour": "red",
            },
        ]
    )
    with pytest.raises(ScenarioError) as err:
        validate_data(bad)
    problems = dict(err.value.problems)
    assert "defined types and groups: a, b, both" in problems["therapy.0.cell_types.0"]
    assert "stat3_knockout" in problems["therapy.1"]
    assert "unknown key" in problems["therapy.3.colour"]
    assert "unknown behaviour 'flying'" in problems["therapy.3.behaviour"]
    with pytest.raises(ScenarioError) as err:
        validate_data(stat3_world(therapy=[bad["therapy"][2]]))
    assert "therapy.0.every_days" in dict(err.value.problems)


def test_extends_merges_tables_and_appends_therapies(tmp_path):
    (tmp_path / "base.toml").write_text((SCENARIOS / "baseline.toml").read_text())
    (tmp_path / "a.toml").write_text(
        'extends = "base.toml"\nname = "a"\n[domain]\ndt_min = 2.0\n'
        '[[therapy]]\nkind = "stat3_knockout"\ncell_types = ["cd8"]\n'
    )
    (tmp_path / "b.toml").write_text(
        'extends = "base.toml"\nname = "b"\n[[therapy]]\nkind = "depletion"\ncell_types = ["nk"]\n'
    )
    (tmp_path / "ab.toml").write_text('extends = ["a.toml", "b.toml"]\nname = "ab"\n')
    base = load_scenario(tmp_path / "base.toml").scenario
    ab = load_scenario(tmp_path / "ab.toml")
    sc = ab.scenario
    assert sc.name == "ab"
    assert sc.domain.dt_min == 2.0 and sc.domain.shape == base.domain.shape
    assert [t.kind for t in sc.therapy] == ["stat3_knockout", "depletion"]
    assert len(sc.rules) == len(base.rules)  # the shared base is not counted twice
    assert "base.toml" in ab.text and "a.toml" in ab.text


def test_extends_errors(tmp_path):
    (tmp_path / "x.toml").write_text('extends = "y.toml"\nname = "x"\n')
    (tmp_path / "y.toml").write_text('extends = "x.toml"\nname = "y"\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "x.toml")
    assert "cycle" in err.value.format()
    (tmp_path / "z.toml").write_text('extends = "missing.toml"\nname = "z"\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "z.toml")
    assert "no such file" in err.value.format()


def test_intervention_scenarios_compose_the_expected_therapies():
    sc = load_scenario(SCENARIOS / "inhibitor_anti_pd1.toml").scenario
    assert sorted(t.kind for t in sc.therapy) == ["drug", "scale_behaviour"]
    sc = load_scenario(SCENARIOS / "ko_haematopoietic_deplete_cd8_nk.toml").scenario
    assert sorted(t.kind for t in sc.therapy) == ["depletion", "depletion", "stat3_knockout"]
    e = engine(
        load_scenario(
            SCENARIOS / "ko_haematopoietic.toml", ["domain.shape=[60,60]"]
        ).scenario.model_dump(mode="json")
    )
    immune = [
        e.params.type_names.index(t)
        for t in ("cd8", "nk", "treg", "dc", "dc_mature", "m1", "m2", "mdsc")
    ]
    assert np.all(e.tables.knockout[immune] == 1)
    assert e.tables.knockout[e.params.type_names.index("tumour")] == 0
    assert B_KILL < e.cells.behaviours.shape[1]


def test_a_rule_with_a_known_id_is_replaced_not_added():
    base = load_scenario(SCENARIOS / "baseline.toml").scenario
    flipped = load_scenario(SCENARIOS / "contested_nk_stat3_activating.toml").scenario
    assert len(flipped.rules) == len(base.rules)
    before = next(r for r in base.rules if r.id == "nk_stat3_kill")
    after = next(r for r in flipped.rules if r.id == "nk_stat3_kill")
    assert (before.direction, after.direction) == ("decreases", "increases")
    assert after.signal == before.signal == "stat3" and after.saturation == 0.004


def test_duplicate_rule_ids_are_an_error():
    data = stat3_world(rules=[
        {"id": "r", "cell_type": "a", "signal": "stat3", "direction": "increases",
         "behaviour": "death", "saturation": 0.1, "half_max": 1.0},
        {"id": "r", "cell_type": "b", "signal": "stat3", "direction": "increases",
         "behaviour": "death", "saturation": 0.1, "half_max": 1.0},
    ])
    with pytest.raises(ScenarioError) as err:
        validate_data(data)
    assert dict(err.value.problems)["rules.1.id"] == "same id as rules.0"


def test_large_transfer_places_every_cell_nearest_vessels_first():
    data = minimal(shape=(30, 30), days=1)
    data = with_type(data, "t")
    data["vessels"] = {"fraction": 0.005}  # a handful of vessels, far fewer than 9 x 200 sites
    data["therapy"] = [{"kind": "transfer", "cell_type": "t", "count": 200, "day": 0.0}]
    e = engine(data)
    e.step()
    assert e.cells.n == 200
    # nearest first: no empty site is closer to a vessel than the farthest placed cell
    nx = 30
    vy, vx = np.divmod(e.vessel_sites, nx)

    def dist(sites):
        y, x = np.divmod(np.asarray(sites, dtype=np.int64), nx)
        return np.sqrt((y[:, None] - vy) ** 2 + (x[:, None] - vx) ** 2).min(axis=1)

    empty = np.flatnonzero(e.cells.site_cell < 0)
    assert dist(e.cells.site[: e.cells.n]).max() <= dist(empty).min() + 1e-9


def test_transfer_onto_a_full_lattice_warns():
    data = minimal(shape=(5, 5), days=1)
    data = with_type(data, "t")
    data["placement"] = [{"cell_type": "a", "region": "everywhere"}]
    data["therapy"] = [{"kind": "transfer", "cell_type": "t", "count": 3, "day": 0.0}]
    e = engine(data)
    with pytest.warns(RuntimeWarning, match="only 0 free sites"):
        e.step()
