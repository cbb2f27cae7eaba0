"""The page's pieces without a browser: controls -> model, figures, command."""

import builtins
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tme_abm import cli
from tme_abm.model import TMEModel
from tme_abm.scenario.library import examples_dir, list_scenarios
from tme_abm.viz import interactive, server, slots
from tme_abm.viz.figures import lattice_figure, series_figure
from tme_abm.viz.interactive import (
    SCENARIO_ENV,
    InteractiveModel,
    ScenarioNotOffered,
    model_params,
    scenario_choices,
    start_scenario,
)
from tme_abm.viz.slots import ModelSlots, TooManyModels

TINY = Path(__file__).parent / "data" / "tiny.toml"


@pytest.fixture
def tiny(monkeypatch):
    """The page as served by `tme-abm viz tests/data/tiny.toml`: its label."""
    monkeypatch.setenv(SCENARIO_ENV, str(TINY))
    return "tiny"


def test_controls_become_therapies_from_day_zero():
    m = InteractiveModel(knockout="myeloid", inhibitor_dose_ng_per_ml=10.0, anti_pd1=True,
                         seed="5")
    kinds = {t.kind: t for t in m.scenario.therapy}
    assert m.seed == 5 and m.notes == []
    assert kinds["stat3_knockout"].cell_types == ["myeloid"]
    assert kinds["drug"].dose_ng_per_ml == 10.0 and kinds["drug"].first_dose_day == 0.0
    assert kinds["scale_behaviour"].behaviour == "kill_resistance"
    assert kinds["scale_behaviour"].cell_types == ["tumour"]
    myeloid = [m.params.type_names.index(t) for t in ("dc", "dc_mature", "m1", "m2", "mdsc")]
    assert np.all(m.engine.tables.knockout[myeloid] == 1)


def test_controls_that_do_not_apply_are_reported_not_ignored_silently(tiny):
    m = InteractiveModel(scenario=tiny, knockout="myeloid", inhibitor_dose_ng_per_ml=5.0)
    assert len(m.notes) == 2
    assert "no cell type or group 'myeloid'" in m.notes[0]
    assert "no [stat3_inhibitor]" in m.notes[1]
    assert m.scenario.therapy == []


def test_model_params_offer_every_scenario_and_the_baseline_groups():
    params = model_params()
    assert set(params["scenario"]["values"]) == set(scenario_choices())
    assert "baseline" in params["scenario"]["values"]
    assert {"none", "haematopoietic", "myeloid", "tumour"} <= set(params["knockout"]["values"])
    for key in params:  # every control is a keyword of the model (what Reset calls)
        assert key in InteractiveModel.__init__.__code__.co_varnames


def test_lattice_figure_by_type_and_by_stat3(tiny):
    m = InteractiveModel(scenario=tiny)
    for _ in range(3):
        m.step()
    fig = lattice_figure(m, "cell type", "il6")
    ax_cells, ax_field = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in ax_cells.get_legend().get_texts()]
    counts = m.engine.counts()
    assert labels == [f"{n} ({c})" for n, c in zip(m.params.type_names, counts, strict=True)]
    shown = ax_field.images[0].get_array()
    assert np.allclose(shown, m.engine.field_grid(0))
    fig = lattice_figure(m, "STAT3", None)
    stat3 = fig.axes[0].images[0].get_array()
    c = m.engine.cells
    ys, xs = np.divmod(c.site[: c.n].astype(int), m.params.dims[2])
    assert np.allclose(stat3[ys, xs], c.stat3[: c.n])
    assert np.ma.count_masked(stat3) == stat3.size - c.n  # empty sites are blank


def test_three_dimensional_lattice_shows_the_chosen_slice():
    model = TMEModel(TINY, overrides=["domain.shape=[6,30,30]"])
    fig = lattice_figure(model, "cell type", "il6", z=3)
    assert np.array_equal(fig.axes[0].images[0].get_array(),
                          model.engine.cell_type_grid()[3] + 1)
    assert np.allclose(fig.axes[1].images[0].get_array(), model.engine.field_grid(0)[3])
    assert "z = 3" in fig._suptitle.get_text()


def test_series_figure_has_one_line_per_type_and_field(tiny):
    m = InteractiveModel(scenario=tiny)
    for _ in range(4):
        m.step()
    fig = series_figure(m)
    counts, stat3, fields = fig.axes
    assert len(counts.lines) == len(stat3.lines) == len(m.params.type_names)
    assert len(fields.lines) == len(m.params.field_names)
    assert len(counts.lines[0].get_xdata()) == m.engine.tick + 1


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "--port: must be 1-65535"),
    (["no/such.toml"], "no such file"),
    (["--max-models", "0"], "--max-models: must be at least 1"),
])
def test_viz_command_rejects_bad_input(args, message):
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "viz", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_series_figure_at_tick_zero_draws_without_warnings(tiny):
    m = InteractiveModel(scenario=tiny)  # fields start empty: every field mean is 0
    assert all(v[0] == 0 for k, v in m.datacollector.model_vars.items()
               if k.startswith("field_mean_"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib: "Data has no positive values"
        fig = series_figure(m)
        fig.savefig(io.BytesIO(), format="png")
    counts, _, fields = fig.axes
    assert fields.get_yscale() == "linear" and counts.get_yscale() == "log"
    for _ in range(3):
        m.step()
    assert series_figure(m).axes[2].get_yscale() == "log"


# --- what the page accepts from the browser --------------------------------------------


FORGED = ["/etc/passwd", "../x.toml", "/dev/zero", str(TINY), "baseline.toml",
          "baseline/../../../etc/passwd", "x" * 10_000, 7, None]


@pytest.mark.parametrize("forged", FORGED)
def test_a_scenario_the_page_does_not_list_is_refused_and_no_file_is_opened(
        forged, monkeypatch):
    monkeypatch.delenv(SCENARIO_ENV, raising=False)
    shipped = examples_dir().resolve()
    opened: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def watching(real):
        def open_(file, *args, **kwargs):
            opened.append(os.fspath(file) if isinstance(file, str | os.PathLike) else str(file))
            return real(file, *args, **kwargs)
        return open_

    monkeypatch.setattr(builtins, "open", watching(real_open))
    monkeypatch.setattr(io, "open", watching(real_io_open))
    monkeypatch.setattr(interactive, "load_scenario",
                        lambda *a, **k: pytest.fail("a scenario was loaded"))
    with pytest.raises(ScenarioNotOffered, match="is not offered by this page") as info:
        InteractiveModel(scenario=forged)
    assert len(str(info.value)) < 200  # a forged value is not echoed in full
    # only the shipped scenarios were read (to list them), nothing the browser named
    assert all(Path(f).resolve().is_relative_to(shipped) for f in opened), opened


def test_the_page_offers_the_shipped_scenarios_and_the_given_file(tiny):
    choices = scenario_choices()
    assert {k: v for k, v in choices.items() if k != "tiny"} == list_scenarios()
    assert choices["tiny"] == TINY and start_scenario() == "tiny"
    assert InteractiveModel(scenario="tiny").scenario.name == "tiny"


def test_a_given_file_named_like_a_shipped_one_is_offered_under_its_path(
        tmp_path, monkeypatch):
    own = tmp_path / "baseline.toml"
    own.write_text(TINY.read_text())
    monkeypatch.setenv(SCENARIO_ENV, str(own))
    label = start_scenario()
    assert label == str(own) and scenario_choices()[label] == own
    assert scenario_choices()["baseline"] == list_scenarios()["baseline"]
    assert InteractiveModel(scenario=label).scenario.name == "tiny"  # the user's file


def test_model_slots_refuse_one_too_many_and_take_the_next_after_a_release():
    s = ModelSlots(2)
    assert s.claim("tab1") and s.claim("tab2") and s.count == 2
    with pytest.raises(TooManyModels, match=r"already runs 2 models.*--max-models 2"):
        s.claim("tab3")
    assert s.claim("tab1") is False and s.count == 2  # a Reset in a tab takes no new slot
    s.release("tab2")
    assert s.claim("tab3") and s.count == 2
    s.release("tab2")  # twice (e.g. close after cull) is harmless
    assert s.count == 2
    with pytest.raises(ValueError, match="at least 1"):
        ModelSlots(0)


def test_default_model_bound_follows_memory(monkeypatch):
    gib = 1024**3
    assert slots.default_max_models(16 * gib) == 16  # half of 16 GiB at 512 MiB each
    assert slots.default_max_models(100 * 1024**2) == 1
    assert slots.default_max_models() >= 1
    monkeypatch.setenv(slots.MAX_MODELS_ENV, "3")
    assert slots.max_models() == 3
    monkeypatch.setenv(slots.MAX_MODELS_ENV, "0")
    with pytest.raises(ValueError, match="TME_ABM_VIZ_MAX_MODELS"):
        slots.max_models()


def test_page_refuses_a_forged_reset_and_a_tab_past_the_bound():
    """The Solara components themselves, as two tabs of a server run with
    --max-models 1 (in a subprocess: Solara's server patches globals)."""
    env = {**os.environ, SCENARIO_ENV: str(TINY), slots.MAX_MODELS_ENV: "1",
           "SOLARA_CHECK_HOOKS": "warn"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "viz_page_driver.py"), "/etc/passwd"],
        capture_output=True, text=True, timeout=300, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    # Solara's rules-of-hooks check (off in the server) finds nothing in our components
    assert not [x for x in proc.stderr.splitlines() if "tme_abm/viz/app.py" in x], proc.stderr
    seen = json.loads(lines[0].removeprefix("RESULT "))
    assert seen["first_scenario"] == "tiny"
    # the forged value: refused on the page, the tab keeps its model at its step
    assert seen["forged_alerts"] == ["Reset refused: scenario '/etc/passwd' is not offered "
                                     "by this page; choose one of the 21 in the scenario list"
                                     .replace("21", str(len(list_scenarios()) + 1))]
    assert seen["kept_model"] and seen["kept_steps"] == 1 and seen["alerts_after_back"] == []
    # the second tab finds the only slot taken, and builds no model
    assert seen["slots_after_first"] == 1
    assert len(seen["second_alerts"]) == 1
    assert "already runs 1 model" in seen["second_alerts"][0]
    assert "--max-models 1" in seen["second_alerts"][0]
    assert seen["second_model"] is False
    # closing the first tab gives its slot back; the second gets it on Try again
    assert seen["slots_after_close"] == 0
    assert seen["second_alerts_retry"] == [] and seen["second_model_retry"] is True
    assert seen["slots_after_retry"] == 1 and seen["slots_at_end"] == 0


def test_viz_command_serves_offline_without_upgrade_notice_and_bounds_models(
        monkeypatch, capsys):
    started = {}

    def execve(path, argv, env):
        started.update(path=path, argv=argv, env=env)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    for name in ("SOLARA_KERNEL_CULL_TIMEOUT", "SOLARA_CHECK_HOOKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(SCENARIO_ENV, "/somewhere/else.toml")  # not inherited
    with pytest.raises(SystemExit):
        cli.main(["viz", str(TINY), "--max-models", "3", "--port", "8799"])
    argv, env = started["argv"], started["env"]
    assert argv[1:4] == ["-m", "solara", "run"] and argv[4] == str(server.APP)
    # solara asks PyPI for a newer release and prints "Please upgrade" unless told not to
    assert "--no-check-version" in argv
    assert env["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] == "False"
    assert env[SCENARIO_ENV] == str(TINY.resolve())
    assert env[slots.MAX_MODELS_ENV] == "3"
    assert env["SOLARA_KERNEL_CULL_TIMEOUT"] == server.CULL_TIMEOUT
    assert env["SOLARA_CHECK_HOOKS"] == "off"
    assert "at most 3 tabs with a model at once" in capsys.readouterr().out
