"""The page's pieces without a browser: controls -> model, figures, command."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tme_abm.model import TMEModel
from tme_abm.viz.figures import lattice_figure, series_figure
from tme_abm.viz.interactive import InteractiveModel, model_params, scenario_choices

TINY = Path(__file__).parent / "data" / "tiny.toml"


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


def test_controls_that_do_not_apply_are_reported_not_ignored_silently():
    m = InteractiveModel(scenario=str(TINY), knockout="myeloid", inhibitor_dose_ng_per_ml=5.0)
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


def test_lattice_figure_by_type_and_by_stat3():
    m = InteractiveModel(scenario=str(TINY))
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


def test_series_figure_has_one_line_per_type_and_field():
    m = InteractiveModel(scenario=str(TINY))
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
])
def test_viz_command_rejects_bad_input(args, message):
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "viz", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
