"""The Solara page served by ``tme-abm viz``.

Each browser tab gets its own model (built in :func:`ModelPage`, not at module
level, where SolaraViz would share one model between tabs).  The lattice
panel's view controls (colour by cell type or STAT3, which field to map, the
z slice of a 3D lattice) apply at once; the model controls in the sidebar
(scenario, seed, knockout, inhibitor dose, anti-PD-1) apply on Reset.

``tme-abm viz --from-run RUN --day D`` opens each tab at that run's
checkpoint nearest day D (a replay of the run from there, live).

A tab builds its model only after claiming one of the server's model slots
(:mod:`tme_abm.viz.slots`), given back when Solara closes the tab's kernel; a
Reset the model refuses (a scenario the page does not offer, a bad seed)
leaves the tab's model as it was and says why on the page.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import reacton.ipyvuetify as rv
import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter
from solara.server import kernel_context

from tme_abm.io import RunFileError
from tme_abm.viz.frames import CELL_TYPE, FrameSource, LiveSource, RunSource
from tme_abm.viz.interactive import (
    InteractiveModel,
    PageSettings,
    first_model,
    model_params,
)
from tme_abm.viz.panels import CLIP_LABELS, ViewSettings, caption, field_scale, lattice_panels
from tme_abm.viz.params import override_text, parameter_info, parameter_keys, scenario_toml
from tme_abm.viz.raster import Scale
from tme_abm.viz.series import LiveSeries, chart_payload, run_series
from tme_abm.viz.server import REPLAY_ENV
from tme_abm.viz.slots import TooManyModels, server_slots

#: Errors of a Reset that are the user's input, shown on the page as a message
#: (ScenarioError and ScenarioNotOffered are ValueErrors; a bad seed is a TypeError).
RESET_INPUT_ERRORS = (ValueError, TypeError)
#: This tab's model.  Solara gives each kernel (browser tab) its own value of
#: a module-level reactive, and drops it when the kernel closes.
tab_model = solara.reactive(cast(InteractiveModel | None, None))
#: Width and height of a lattice panel on screen at zoom 1 (pixels).
VIEW_PX = 440
#: Size of one time-series chart (pixels).
CHART_W, CHART_H = 390, 210
#: Default pause between steps while playing (ms): Mesa's slider goes down to 1.
PLAY_INTERVAL_MS = 1
#: Snapshots per second while a replay plays.
REPLAY_FPS = 5.0


@solara.component_vue("lattice.vue")
def LatticeCanvas(
    panels: list,
    nx: int,
    ny: int,
    view_px: int,
    tick: int,
    caption: str,
    info: list,
    info_title: str,
    event_hover: Callable[[dict], None],
) -> None:
    """The lattice panels: pictures scaled in the browser (zoom, pan), legends,
    colour bars, and the hovered site's values."""


@solara.component_vue("chart.vue")
def Charts(charts: list, marker: float | None, width: int, height: int) -> None:
    """Time-series panels drawn on canvases in the browser."""


@solara.component
def LatticeView(source: FrameSource, version: int) -> None:
    """The lattice (by cell type or a per-cell quantity) beside a chosen field,
    with the view controls; redrawn when ``version`` changes."""
    cat = source.catalogue
    colour_by, set_colour_by = solara.use_state(CELL_TYPE)
    field, set_field = solara.use_state(cat.field_names[0] if cat.field_names else "")
    z, set_z = solara.use_state(cat.dims[0] // 2)
    kind, set_kind = solara.use_state("linear")
    clip, set_clip = solara.use_state(100.0)
    fixed, set_fixed = solara.use_state(cast(Scale | None, None))
    outline, set_outline = solara.use_state(True)
    hover, set_hover = solara.use_state(cast(tuple[int, int] | None, None))
    shown_field = field if field in cat.field_names else None
    z = min(max(z, 0), cat.dims[0] - 1)
    settings = ViewSettings(colour_by, shown_field, z, kind, clip, fixed, outline)
    panels = solara.use_memo(lambda: lattice_panels(source, settings), [source, version, settings])
    info = solara.use_memo(
        lambda: source.site(hover[0], hover[1], z).rows(cat) if hover else [],
        [source, version, hover, z])
    labels = dict(zip(cat.field_labels, cat.field_names, strict=True))

    def choose_field(label: str) -> None:
        set_fixed(None)
        set_field(labels.get(label, ""))

    def fix_scale(on: bool) -> None:
        set_fixed(field_scale(source, settings) if on else None)

    def on_hover(site: Any) -> None:
        # the browser may send anything: only a site of this lattice is looked up
        try:
            x, y = int(site["x"]), int(site["y"])
        except (TypeError, KeyError, ValueError, OverflowError):
            return
        if 0 <= x < cat.dims[2] and 0 <= y < cat.dims[1]:
            set_hover((x, y))

    with solara.Row(style={"flex-wrap": "wrap", "align-items": "center", "gap": "12px"}):
        solara.Select(label="colour cells by", value=colour_by,
                      values=[CELL_TYPE, *cat.quantities], on_value=set_colour_by)
        solara.Checkbox(label="outline tumour", value=outline, on_value=set_outline)
        if cat.field_names:
            current = cat.field_labels[cat.field_names.index(shown_field)] if shown_field else ""
            solara.Select(label="field", value=current, values=list(labels),
                          on_value=choose_field)
            solara.ToggleButtonsSingle(value=kind, values=["linear", "log"],
                                       on_value=lambda v: (set_fixed(None), set_kind(v)))
            solara.Select(label="scale top", value=CLIP_LABELS[clip],
                          values=list(CLIP_LABELS.values()),
                          on_value=lambda v: set_clip(
                              {lab: c for c, lab in CLIP_LABELS.items()}.get(v, clip)))
            solara.Checkbox(label="fix field scale", value=fixed is not None, on_value=fix_scale)
        if cat.is_3d:
            solara.SliderInt("z slice", value=z, min=0, max=cat.dims[0] - 1, on_value=set_z)
    LatticeCanvas(
        panels=panels, nx=cat.dims[2], ny=cat.dims[1], view_px=VIEW_PX, tick=source.tick,
        caption=caption(source, z), info=info,
        info_title="site under the pointer" if hover else "hover a site to see its cell",
        event_hover=on_hover,
    )


@solara.component
def LivePanels(model: InteractiveModel) -> None:
    """The lattice and time series of a running model, redrawn every step."""
    version = update_counter.get()
    source = solara.use_memo(lambda: LiveSource(model), [model])
    series = solara.use_memo(lambda: LiveSeries(model, source.catalogue), [model])
    charts = solara.use_memo(lambda: chart_payload(series.update(), source.catalogue),
                             [model, version])
    for note in getattr(model, "notes", []):
        solara.Warning(note)
    LatticeView(source, version)
    Charts(charts=charts, marker=None, width=CHART_W, height=CHART_H)


def _typed_input(info: Any, value: Any, on_value: Callable[[Any], None]) -> None:
    label = f"value ({info.units})" if info.units else "value"
    if info.kind == "bool":
        solara.Checkbox(label=label, value=bool(value), on_value=on_value)
    elif info.kind == "choice":
        solara.Select(label=label, value=str(value), values=list(info.choices),
                      on_value=on_value)
    elif info.kind == "int":
        solara.InputInt(label=label, value=int(value), on_value=on_value)
    else:
        solara.InputFloat(label=label, value=float(value), on_value=on_value)


@solara.component
def ParameterCard(model: InteractiveModel, settings: PageSettings) -> None:
    """Set any scenario parameter by dotted key (typed, with units and range,
    applied on Reset), and save the model's scenario as a file."""
    base = model.file_scenario
    keys = solara.use_memo(lambda: parameter_keys(base), [base])
    key, set_key = solara.use_state(cast(str | None, None))
    value, set_value = solara.use_state(cast(Any, None))
    message, set_message = solara.use_state("")
    overrides, set_overrides = solara.use_state(list(settings.overrides))
    info = parameter_info(base, key) if key in keys else None

    def choose(k: str | None) -> None:
        set_key(k)
        set_message("")
        set_value(parameter_info(base, k).value if k in keys else None)

    def add() -> None:
        if info is None:
            return
        problem = info.check(value)
        if problem:
            set_message(problem)
            return
        settings.set(override_text(info.key, value))
        set_overrides(list(settings.overrides))
        set_message(f"{info.key} will be {value} after Reset")

    def remove(k: str) -> None:
        settings.remove(k)
        set_overrides(list(settings.overrides))

    with solara.Card("Scenario parameters"):
        rv.Autocomplete(items=keys, v_model=key, on_v_model=choose, clearable=True,
                        label=f"parameter by dotted key ({len(keys)})", dense=True)
        if info is not None:
            solara.Text(f"now {info.value}; allowed: {info.allowed()}"
                        + (f"; units {info.units}" if info.units else ""))
            _typed_input(info, value if value is not None else info.value, set_value)
            solara.Button("Set (applies on Reset)", on_click=add, color="primary", small=True)
        if message:
            solara.Info(message, dense=True)
        for item in overrides:
            k = item.partition("=")[0]
            with solara.Row(style={"align-items": "center"}):
                solara.Text(item, style={"font-family": "monospace", "font-size": "12px"})
                solara.Button("×", on_click=lambda k=k: remove(k), text=True, small=True)
        source = getattr(model, "loaded", None)
        path = source.path if source is not None else None
        solara.FileDownload(
            lambda: scenario_toml(model.scenario, path, model.overrides),
            filename=f"{model.scenario.name}_from_page.toml",
            label="Save this model's scenario (.toml)",
        )


def claim_slot() -> str | None:
    """Claim a model slot for the current tab (its Solara kernel), given back
    when the kernel closes; returns None, or the message why not."""
    context = kernel_context.get_current_context()
    slots = server_slots()
    try:
        new = slots.claim(context.id)
    except TooManyModels as exc:
        return str(exc)
    if new:
        context.on_close(lambda: slots.release(context.id))
    return None


@solara.component
def ModelPage() -> None:
    """SolaraViz's controls and the panels, for this tab's model.

    SolaraViz provides the app bar, the step/play/reset controls and the model
    controls; the panels are drawn here at full width (SolaraViz's own grid
    gives each component half the width) from the same reactive model, so
    they follow Reset.
    """

    def build() -> None:
        if tab_model.peek() is None:
            tab_model.set(first_model())

    settings = solara.use_memo(PageSettings, [])
    params = solara.use_memo(lambda: model_params(settings), [settings])
    solara.use_effect(build, [])
    if tab_model.value is None:
        solara.Text("building the model...")
        return
    SolaraViz(
        tab_model,
        components=[],
        model_params=params,
        name="tme_abm: tumour microenvironment with per-cell STAT3",
        play_interval=PLAY_INTERVAL_MS,
    )
    with solara.Column(style={"padding": "8px 8px 8px 24px", "width": "100%"}):
        LivePanels(tab_model.value)
    ParameterSidebar(tab_model.value, settings)


@solara.component
def ParameterSidebar(model: InteractiveModel, settings: PageSettings) -> None:
    """The parameter card, in the sidebar below SolaraViz's cards: Solara
    orders sidebar items by the depth of the component that adds them, so it
    is added one component deeper than SolaraViz adds its own."""
    _DeeperSidebar(model, settings)


@solara.component
def _DeeperSidebar(model: InteractiveModel, settings: PageSettings) -> None:
    with solara.Sidebar():
        ParameterCard(model, settings)


@solara.component
def ReplayPage(path: str) -> None:
    """A run file's snapshots, or why the file cannot be shown (with a button
    to try again: a run may be between its ``.partial`` and final names)."""
    attempt, set_attempt = solara.use_state(0)

    def open_source() -> tuple[RunSource | None, str]:
        try:
            return RunSource(path), ""
        except RunFileError as exc:
            return None, str(exc)

    source, problem = solara.use_memo(open_source, [path, attempt])
    with solara.AppBar():
        solara.AppBarTitle(f"tme_abm replay: {Path(path).name}")
    if source is None:
        with solara.Column(style={"padding": "16px"}):
            solara.Error(problem)
            solara.Button("Try again", on_click=lambda: set_attempt(attempt + 1),
                          color="primary")
        return
    ReplayView(source)


@solara.component
def ReplayView(source: RunSource) -> None:
    """A slider over the snapshots, play/pause, and the same panels as a live
    model (each snapshot read from disk when shown)."""
    n, set_n = solara.use_state(source.n_snapshots)
    index, set_index = solara.use_state(source.n_snapshots - 1)
    playing, set_playing = solara.use_state(False)
    problem, set_problem = solara.use_state("")
    lock = solara.use_memo(threading.Lock, [])

    def read_series() -> list:
        try:
            return chart_payload(run_series(source.path, source.catalogue), source.catalogue)
        except RunFileError:
            return []

    charts = solara.use_memo(read_series, [source, n])
    def read_days() -> Any:
        try:
            return source.snapshot_days()
        except RunFileError:
            return np.zeros(n)

    days = solara.use_memo(read_days, [source, n])
    try:
        with lock:
            source.load(index)
    except RunFileError as exc:  # the file went away or was damaged while shown
        if str(exc) != problem:
            set_problem(str(exc))

    def play() -> None:
        # one snapshot per run of this thread: it restarts whenever the index changes
        if not playing:
            return
        time.sleep(1.0 / REPLAY_FPS)
        if index + 1 < n:
            set_index(index + 1)
            return
        try:
            with lock:
                grown = source.refresh()  # a run still being written may have added some
        except RunFileError as exc:
            set_problem(str(exc))
            grown = n
        if grown > n:
            set_n(grown)
            set_index(index + 1)
        else:
            set_playing(False)

    solara.use_thread(play, [playing, index])

    def refresh() -> None:
        try:
            set_n(source.refresh())
            set_problem("")
        except RunFileError as exc:
            set_problem(str(exc))

    def toggle() -> None:
        if not playing and index >= n - 1:
            set_index(0)
        set_playing(not playing)

    with solara.Column(style={"padding": "8px 8px 8px 24px", "width": "100%"}):
        shown = str(source.path)
        status = "partial (still written?)" if shown.endswith(".partial") else "complete"
        solara.Text(f"{shown}: {n} snapshots, {status}; scenario {source.name}")
        if problem:
            solara.Error(problem)
        with solara.Row(style={"align-items": "center", "gap": "12px"}):
            solara.Button("❚❚" if playing else "▶", on_click=toggle, color="primary")
            solara.SliderInt(f"snapshot ({index + 1} of {n}, day {days[index]:.2f})",
                             value=index, min=0, max=n - 1, thumb_label=False,
                             on_value=lambda v: (set_playing(False), set_index(v)))
            solara.Button("re-read file", on_click=refresh, text=True)
        LatticeView(source, source.index)
        Charts(charts=charts, marker=float(days[index]), width=CHART_W, height=CHART_H)


@solara.component
def Page() -> None:
    """The whole page; one model per browser tab, at most ``--max-models`` tabs,
    or the replay of the run file given to ``tme-abm viz RUN.h5``."""
    replay = os.environ.get(REPLAY_ENV)
    if replay:
        ReplayPage(replay)
    else:
        LivePage()


@solara.component
def LivePage() -> None:
    """A live model for this tab, if a model slot is free."""
    attempt, set_attempt = solara.use_state(0)
    refusal = solara.use_memo(claim_slot, [attempt])
    if refusal is None:
        ModelPage()
        return
    with solara.Column(style={"padding": "16px"}):
        solara.Error(refusal)
        solara.Button("Try again", on_click=lambda: set_attempt(attempt + 1), color="primary")


@solara.component
def Layout(children: list | None = None) -> None:
    """Solara's app layout, or why the tab's last Reset was refused.

    The Reset button sits in SolaraViz's sidebar, which the layout renders,
    so the exception of its click handler reaches this component (not
    :func:`Page`).  An error of the user's input (a scenario the page does
    not offer, a bad seed: :data:`RESET_INPUT_ERRORS`) is shown instead of
    the page, with a button back to it; the tab keeps its model
    (:data:`tab_model`), at the step it had reached.  (Solara keeps the
    exception in the button's component until that is discarded, so the
    page cannot be drawn beside the message.)  Any other error is raised
    again, for Solara to show as usual.
    """
    exception, clear_exception = solara.use_exception()
    if exception is None:
        solara.AppLayout(children=children or [])
        return
    if not isinstance(exception, RESET_INPUT_ERRORS):
        raise exception
    with solara.Column(style={"padding": "16px"}):
        solara.Error(f"Reset refused: {exception}")
        solara.Button("Back to the model", on_click=clear_exception, color="primary")
