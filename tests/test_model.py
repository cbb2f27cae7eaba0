"""TMEModel as Mesa sees it: construction, stepping, DataCollector, batch_run."""

from pathlib import Path

import mesa
import numpy as np
import pytest

from tme_abm.model import TMEModel
from tme_abm.scenario import ScenarioError

TINY = Path(__file__).parent / "data" / "tiny.toml"
SHORT = {"domain.duration_days": 0.05, "output.snapshot_every_min": 10}


def test_runs_to_the_end_and_stops():
    m = TMEModel(TINY, overrides=SHORT)
    assert m.n_ticks == round(0.05 * 1440 / 5)
    while m.running:
        m.step()
    assert m.engine.tick == m.n_ticks and m.steps == m.n_ticks
    df = m.datacollector.get_model_vars_dataframe()
    assert len(df) == m.n_ticks + 1  # initial state + one row per tick
    counts = df[[f"count_{t}" for t in m.params.type_names]].sum(axis=1).to_numpy()
    assert counts[-1] == m.engine.cells.n
    assert {"stat3_mean_tumour", "field_mean_il6", "kills_cd8"} <= set(df.columns)


def test_series_collector_records_what_mesas_collector_would():
    m = TMEModel(TINY, overrides=SHORT)
    plain = mesa.DataCollector(model_reporters=dict(m.datacollector.model_reporters))
    plain.collect(m)
    for _ in range(6):
        m.step()
        plain.collect(m)
    ours = m.datacollector.get_model_vars_dataframe()
    assert ours.equals(plain.get_model_vars_dataframe())
    assert ours["count_tumour"].diff().abs().sum() > 0  # the series do move
    # a reporter added by a user is honoured (Mesa's own path)
    m.datacollector = type(m.datacollector)(
        model_reporters=dict(plain.model_reporters) | {"tick": lambda model: model.engine.tick}
    )
    m.step()
    m.datacollector.collect(m)
    df = m.datacollector.get_model_vars_dataframe()
    assert df["tick"].tolist() == [7, 7]
    assert df["count_tumour"].iloc[-1] == m.summary()["count_tumour"]


def test_no_mesa_agent_per_cell():
    m = TMEModel(TINY, overrides=SHORT)
    assert m.engine.cells.n > 20
    assert len(m.agents) == 0


def test_seed_string_from_solara_and_seed_precedence():
    a = TMEModel(TINY, rng="42", overrides=SHORT)
    b = TMEModel(TINY, seed=42, overrides=SHORT)
    c = TMEModel(TINY, overrides=SHORT)
    assert a.seed == b.seed == 42 and c.seed == 7  # tiny.toml says seed = 7
    for _ in range(5):
        a.step()
        b.step()
    assert np.array_equal(a.engine.cell_type_grid(), b.engine.cell_type_grid())
    with pytest.raises(TypeError):
        TMEModel(TINY, seed="forty-two")


def test_invalid_override_raises_scenario_error_naming_the_key():
    with pytest.raises(ScenarioError) as err:
        TMEModel(TINY, overrides={"domain.site_um": -1})
    assert any(path == "domain.site_um" for path, _ in err.value.problems)


def test_mesa_batch_run_sweeps_seeds():
    results = mesa.batch_run(
        TMEModel,
        parameters={"scenario": str(TINY), "overrides": [SHORT], "seed": [1, 2]},
        iterations=1,
        max_steps=4,
        number_processes=1,
        display_progress=False,
    )
    by_seed = {}
    for row in results:
        by_seed.setdefault(row["seed"], []).append(row)
    assert set(by_seed) == {1, 2}
    assert max(r["Step"] for r in results) >= 4
    finals = {s: max(rows, key=lambda r: r["Step"]) for s, rows in by_seed.items()}
    assert all(f["count_tumour"] > 0 for f in finals.values())


def test_bounded_series_keep_the_latest_rows_indexed_by_tick():
    full = TMEModel(TINY, overrides=SHORT)
    last3 = TMEModel(TINY, overrides=SHORT, series_rows=3)
    none = TMEModel(TINY, overrides=SHORT, series_rows=0)
    for _ in range(6):
        for m in (full, last3, none):
            m.step()
    want = full.datacollector.get_model_vars_dataframe()
    got = last3.datacollector.get_model_vars_dataframe()
    assert len(want) == 7 and list(got.index) == [4, 5, 6]
    assert got.equals(want.iloc[-3:])
    assert all(len(v) == 3 for v in last3.datacollector.model_vars.values())
    # series_rows=0 keeps nothing, and still answers with the series' columns
    empty = none.datacollector.get_model_vars_dataframe()
    assert len(empty) == 0 and list(empty.columns) == list(want.columns)
    assert all(len(v) == 0 for v in none.datacollector.model_vars.values())
    assert none.datacollector.n_collected == 7
    np.testing.assert_equal(none.summary(), full.summary())  # the model is unchanged


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_series_rows_must_be_a_count(bad):
    with pytest.raises(ValueError, match="max_rows"):
        TMEModel(TINY, overrides=SHORT, series_rows=bad)


def test_model_takes_a_shipped_scenario_by_name(tmp_path, monkeypatch):
    from tme_abm import TMEModel

    monkeypatch.chdir(tmp_path)  # no baseline file here: the shipped one
    model = TMEModel("baseline", seed=3, overrides={"domain.shape": [30, 30]})
    assert model.scenario.name == "baseline" and model.engine.cells.n > 0
    (tmp_path / "baseline").write_text("not toml = = =")  # a path that exists wins
    import pytest

    from tme_abm.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="not valid TOML"):
        TMEModel("baseline")
