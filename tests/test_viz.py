"""The page's pieces without a browser: controls -> model, figures, command."""

import base64
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
from tme_abm.viz.frames import CELL_TYPE, LiveSource, RunSource
from tme_abm.viz.interactive import (
    SCENARIO_ENV,
    InteractiveModel,
    PageSettings,
    ScenarioNotOffered,
    model_params,
    scenario_choices,
    start_scenario,
)
from tme_abm.viz.panels import ViewSettings, caption, lattice_panels
from tme_abm.viz.params import override_text, parameter_info, parameter_keys, scenario_toml
from tme_abm.viz.raster import Scale, auto_scale, tumour_edge
from tme_abm.viz.series import LiveSeries, SeriesBuffer, chart_payload, run_series
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


def _pixels(data_url: str) -> np.ndarray:
    """The RGB array of a PNG data URL, row 0 at the top."""
    from PIL import Image

    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def test_lattice_picture_has_one_pixel_per_site_in_the_type_colours(tiny):
    m = InteractiveModel(scenario=tiny)
    for _ in range(3):
        m.step()
    source = LiveSource(m)
    panels = lattice_panels(source, ViewSettings(field="il6", outline_tumour=False))
    types = m.engine.cell_type_grid()
    pixels = _pixels(panels[0]["src"])
    assert pixels.shape == (*types.shape, 3)
    colours = [ct.colour for ct in m.scenario.cell_types.values()]
    for (y, x), code in np.ndenumerate(types):  # y = 0 is the picture's bottom row
        want = (255, 255, 255) if code < 0 else _rgb(colours[code])
        assert tuple(pixels[types.shape[0] - 1 - y, x]) == want
    legend = panels[0]["legend"]
    assert [item["label"] for item in legend] == [ct.label or n for n, ct in
                                                  m.scenario.cell_types.items()]
    assert [int(item["count"].replace(",", "")) for item in legend] == list(m.engine.counts())
    # the field picture: brightest where the field peaks, with its units and range
    field = m.engine.field_grid(0)
    bright = _pixels(panels[1]["src"]).astype(int).sum(axis=2)[::-1]
    peak = np.unravel_index(field.argmax(), field.shape)
    assert bright[peak] == bright.max()
    assert bright[np.unravel_index(field.argmin(), field.shape)] < bright.max() / 2
    assert panels[1]["colorbar"]["label"] == "ng/mL"
    assert float(panels[1]["colorbar"]["high"]) == pytest.approx(field.max(), rel=1e-2)


def test_stat3_picture_and_hover_read_the_cell_at_the_site(tiny):
    m = InteractiveModel(scenario=tiny)
    for _ in range(3):
        m.step()
    source = LiveSource(m)
    plane = source.quantity("STAT3")
    c = m.engine.cells
    ys, xs = np.divmod(c.site[: c.n].astype(int), m.params.dims[2])
    assert np.allclose(plane[ys, xs], c.stat3[: c.n])
    assert np.isnan(plane).sum() == plane.size - c.n  # empty sites have no value
    row = int(np.argmax(c.stat3[: c.n]))
    info = source.site(int(xs[row]), int(ys[row]))
    assert info.cell["STAT3"] == pytest.approx(float(c.stat3[row]))
    name, ct = list(m.scenario.cell_types.items())[c.type[row]]
    assert info.cell["cell"] == (ct.label or name)
    assert info.cell["division (1/min)"] == pytest.approx(float(c.behaviours[row, 0]))
    flat = int(c.site[row])
    assert info.fields["IL-6 (ng/mL)"] == pytest.approx(float(m.engine.conc.reshape(
        -1, len(m.params.field_names))[flat, 0]))
    # STAT3 is a fraction (0-1); SOCS3 is in arbitrary units: its scale is fitted
    bar = lattice_panels(source, ViewSettings(colour_by="STAT3"))[0]["colorbar"]
    assert (bar["low"], bar["high"]) == ("0", "1")
    c.socs3[: c.n] = np.linspace(0.0, 2.5, c.n, dtype=np.float32)  # production > decay
    bar = lattice_panels(source, ViewSettings(colour_by="SOCS3"))[0]["colorbar"]
    assert (bar["low"], bar["high"]) == ("0", "2.5")
    empty = np.argwhere(m.engine.cell_type_grid() < 0)[0]
    assert source.site(int(empty[1]), int(empty[0])).cell == {}


def test_three_dimensional_lattice_shows_the_chosen_slice():
    model = TMEModel(TINY, overrides=["domain.shape=[6,30,30]"])
    source = LiveSource(model)
    panels = lattice_panels(source, ViewSettings(field="il6", z=3, outline_tumour=False))
    types = model.engine.cell_type_grid()[3]
    pixels = _pixels(panels[0]["src"])[::-1]
    assert np.array_equal(pixels.sum(axis=2) == 255 * 3, types < 0)
    assert "z = 3" in caption(source, 3)


def test_a_field_of_zeros_is_drawn_on_the_scale_of_its_biology(tiny):
    m = InteractiveModel(scenario=tiny)  # fields start empty
    source = LiveSource(m)
    assert float(m.engine.field_grid(0).max()) == 0.0
    panels = lattice_panels(source, ViewSettings(field="il6"))
    bar = panels[1]["colorbar"]
    # the lowest half-max at which a cell of the scenario responds to IL-6, not 1e-9
    half_maxes = [i.half_max_ng_per_ml for ct in m.scenario.cell_types.values()
                  for i in ct.stat3.inputs if i.field == "il6"]
    half_maxes += [r.half_max for r in m.scenario.rules if r.signal == "il6"]
    assert float(bar["high"]) == pytest.approx(min(half_maxes), rel=1e-2)
    assert "zero everywhere" in panels[1]["title"]


def test_scales_clip_take_logs_and_stay_fixed():
    values = np.r_[np.linspace(0.0, 1.0, 1000), 1000.0]
    assert auto_scale(values).vmax == 1000.0
    assert auto_scale(values, clip_percentile=99.0).vmax < 1.0
    log = auto_scale(values, "log")
    assert log.kind == "log" and log.vmax == 1000.0 and log.vmin == pytest.approx(1.0)
    # no cell (NaN) and non-finite values never set the scale; nothing positive: the reference
    assert auto_scale(np.array([np.nan, 0.0, 2.0, np.inf])).vmax == 2.0
    assert auto_scale(np.array([np.nan, -1.0]), reference=0.5) == Scale(0.0, 0.5)
    assert auto_scale(np.zeros(4), "log", reference=0.5) == Scale(0.0005, 0.5, "log")
    codes = Scale(0.0, 1.0).codes(np.array([np.nan, 0.0, 0.5, 1.0, 7.0]))
    assert list(codes) == [0, 1, 127, 254, 254]  # 0: no value; above the top: clipped
    assert list(Scale(1.0, 100.0, "log").codes(np.array([1.0, 10.0, 100.0]))) == [1, 127, 254]


def test_tumour_edge_is_the_outer_boundary_only():
    types = np.full((20, 20), -1, dtype=np.int8)
    yy, xx = np.mgrid[:20, :20]
    types[(yy - 10) ** 2 + (xx - 10) ** 2 <= 36] = 0
    types[10, 10] = 1  # an immune cell inside the tumour: no edge around it
    edge = tumour_edge(types, [0])
    assert not edge[9:12, 9:12].any()
    assert edge.sum() > 0 and np.all(types[edge] == 0)
    # every edge site touches a site outside the disc
    outside = types < 0
    for y, x in zip(*np.nonzero(edge), strict=True):
        assert outside[y - 1:y + 2, x - 1:x + 2].any()
    # the disc's perimeter in full, wherever the disc lies on the lattice
    wide = np.full((60, 90), -1, dtype=np.int8)
    wide[30:50, 55:75] = types
    assert np.array_equal(tumour_edge(wide, [0])[30:50, 55:75], edge)
    assert tumour_edge(wide, [0]).sum() == edge.sum()
    assert not tumour_edge(np.full((5, 5), -1, dtype=np.int8), [0]).any()  # no tumour


def test_series_buffer_stays_bounded_and_keeps_the_ends():
    buffer = SeriesBuffer(["a"], cap=50)
    for tick in range(100_000):
        buffer.add(tick, [tick * 2.0])
    ticks, values = buffer.arrays()
    assert len(ticks) <= 2 * 50 + 1
    assert ticks[0] == 0 and ticks[-1] == 99_999
    assert np.all(np.diff(ticks) > 0) and np.all(values[:, 0] == ticks * 2.0)
    assert np.all(ticks[:-1] % buffer.stride == 0)


def test_live_series_carry_the_models_values(tiny):
    m = InteractiveModel(scenario=tiny)
    source = LiveSource(m)
    series = LiveSeries(m, source.catalogue)
    for _ in range(5):
        m.step()
        series.update()
    m.step()
    charts = chart_payload(series.update(), source.catalogue)
    frame = m.datacollector.get_model_vars_dataframe()
    assert [c["title"] for c in charts][:2] == ["cells per type", "mean STAT3 per type"]
    counts = charts[0]["lines"]
    assert len(counts) == len(m.params.type_names) and len(charts[0]["x"]) == 7
    first = m.params.type_names[0]
    assert counts[0]["y"] == [float(v) for v in frame[f"count_{first}"]]


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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A complete run file of the tiny scenario (7 snapshots)."""
    out = tmp_path_factory.mktemp("replay") / "tiny.h5"
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "run", str(TINY), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def test_replay_reads_the_snapshot_shown_and_nothing_else(tiny_run):
    from tme_abm.io import read_snapshot

    source = RunSource(tiny_run)
    assert source.n_snapshots == 7 and source.index == 6  # opens at the last snapshot
    for index in (0, 3, 6):
        source.load(index)
        snap = read_snapshot(tiny_run, index)
        assert source.time_min == snap["time_min"]
        assert np.array_equal(source.types(), snap["cell_type"])
        assert np.array_equal(source.field("il6"), snap["fields"]["il6"])
        cells = snap["cells"]
        plane = source.quantity("STAT3")
        ys, xs = np.divmod(cells["site"].astype(int), 40)
        assert np.allclose(plane[ys, xs], cells["stat3"])
        assert source.counts() == list(np.bincount(cells["type"], minlength=3)[:3])
        info = source.site(int(xs[0]), int(ys[0]))
        assert info.cell["STAT3"] == pytest.approx(float(cells["stat3"][0]))
        assert info.fields["IL-6 (ng/mL)"] == pytest.approx(
            float(snap["fields"]["il6"][ys[0], xs[0]]))
    # the panels and series draw from the file alone
    assert len(lattice_panels(source, ViewSettings(field="il6"))) == 2
    charts = chart_payload(run_series(tiny_run, source.catalogue), source.catalogue)
    assert charts[0]["x"][0] == 0.0 and charts[0]["x"][-1] == pytest.approx(0.5)


def test_replay_of_a_partial_file_grows_with_it(tiny_run, tmp_path):
    import h5py

    partial = tmp_path / "cut.h5.partial"
    partial.write_bytes(tiny_run.read_bytes())
    with h5py.File(partial, "r+") as f:  # a writer that has finished 3 snapshots
        f["time"].resize((3,))
    source = RunSource(partial)
    assert source.n_snapshots == 3
    with h5py.File(partial, "r+") as f:
        f["time"].resize((5,))
    assert source.refresh() == 5
    # the run finishes: its .partial is renamed, and the replay follows it
    final = tmp_path / "cut.h5"
    partial.rename(final)
    assert source.refresh() == 5 and source.path == final
    source.load(0)
    assert source.time_min == 0.0


def test_replay_of_a_run_whose_scenario_no_longer_validates_uses_its_attributes(
        tiny_run, tmp_path):
    import h5py

    old = tmp_path / "old.h5"
    old.write_bytes(tiny_run.read_bytes())
    with h5py.File(old, "r+") as f:  # a key this version's schema does not know
        data = json.loads(f.attrs["scenario_resolved_json"])
        data["domain"]["retired_key"] = 1
        f.attrs["scenario_resolved_json"] = json.dumps(data)
    source = RunSource(old)
    fresh = RunSource(tiny_run)
    assert source.catalogue.type_labels == fresh.catalogue.type_labels
    assert source.catalogue.type_colours == fresh.catalogue.type_colours
    assert source.catalogue.field_labels == fresh.catalogue.field_labels
    assert source.catalogue.field_reference == (1.0, 1.0)  # no rules to read half-maxes from
    assert np.array_equal(source.types(), fresh.types())


@pytest.mark.parametrize("content, message", [
    (b"", "not an HDF5 file"),
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "cannot be read"),
])
def test_viz_refuses_a_broken_run_file(tmp_path, content, message):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "tme_abm", "viz", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and "bad.h5" in proc.stderr


def test_parameters_by_dotted_key_are_typed_with_units_and_range():
    from tme_abm.scenario import load_scenario

    sc = load_scenario(list_scenarios()["baseline"]).scenario
    keys = parameter_keys(sc)
    assert "cell_types.cd8.kill_rate_per_min" in keys and "name" not in keys
    info = parameter_info(sc, "cell_types.cd8.kill_rate_per_min")
    assert (info.kind, info.units, info.low, info.value) == ("float", "1/min", 0.0, 0.003)
    assert info.check(-1.0) and info.check(0.01) is None
    frac = parameter_info(sc, "cell_types.cd8.chemotaxis_bias")
    assert (frac.low, frac.high) == (0.0, 1.0) and frac.check(1.5)
    solver = parameter_info(sc, "domain.field_solver")
    assert solver.kind == "choice" and set(solver.choices) == {"exact", "lod"}
    assert parameter_info(sc, "cell_types.tumour.secretion_ng_per_ml_per_min.il6").units == \
        "ng/mL/min"
    with pytest.raises(KeyError):
        parameter_info(sc, "cell_types.cd8.no_such_key")


def test_page_settings_and_a_later_therapy_day_reach_the_model(tmp_path):
    settings = PageSettings()
    settings.set(override_text("placement.0.radius_um", 100.0))
    settings.set(override_text("placement.0.radius_um", 120.0))  # replaces the first
    assert settings.overrides == ["placement.0.radius_um=120.0"]
    m = InteractiveModel(knockout="tumour", anti_pd1=True, therapy_from_day=2.0,
                         settings=settings)
    assert m.scenario.placement[0].radius_um == 120.0
    assert {t.kind: t.start_day for t in m.scenario.therapy} == {
        "stat3_knockout": 2.0, "scale_behaviour": 2.0}
    # dotted keys address the scenario file (with the overrides), not the page's therapies
    assert m.file_scenario.therapy == [] and m.file_scenario.placement[0].radius_um == 120.0
    assert not [k for k in parameter_keys(m.file_scenario) if k.startswith("therapy.")]
    # saved as a scenario file that validates and runs as the same scenario
    text = scenario_toml(m.scenario, m.loaded.path, m.overrides)
    saved = tmp_path / "saved.toml"
    saved.write_text(text, encoding="utf-8")
    from tme_abm.scenario import load_scenario

    assert load_scenario(saved).scenario == m.scenario
    assert "placement.0.radius_um=120.0" in text
    late = InteractiveModel(anti_pd1=True, therapy_from_day=30.0)
    assert "ends at day 7, so they never act" in late.notes[0]
    bad = PageSettings(["placement.0.radius_um=-5"])
    with pytest.raises(ValueError, match="radius_um"):
        InteractiveModel(settings=bad)


def test_page_pieces_draw_at_tick_zero_without_warnings(tiny):
    m = InteractiveModel(scenario=tiny)  # fields start empty: every field mean is 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source = LiveSource(m)
        for colour_by in (CELL_TYPE, *source.catalogue.quantities):
            lattice_panels(source, ViewSettings(colour_by=colour_by, field="il6",
                                                field_scale="log"))
        charts = chart_payload(LiveSeries(m, source.catalogue).update(), source.catalogue)
    assert len(charts[0]["x"]) == 1  # the first tick is drawn


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
    # forged hover messages look nothing up; a site of the 40 x 40 lattice does
    assert seen["hover"] == [None] * 6 + ["x 5, y 6 (110, 130 µm)"]
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
