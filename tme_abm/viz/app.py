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

from typing import cast

import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter
from solara.server import kernel_context

from tme_abm.viz.figures import COLOUR_BY, lattice_figure, series_figure
from tme_abm.viz.interactive import InteractiveModel, first_model, model_params
from tme_abm.viz.slots import TooManyModels, server_slots

#: Errors of a Reset that are the user's input, shown on the page as a message
#: (ScenarioError and ScenarioNotOffered are ValueErrors; a bad seed is a TypeError).
RESET_INPUT_ERRORS = (ValueError, TypeError)
#: This tab's model.  Solara gives each kernel (browser tab) its own value of
#: a module-level reactive, and drops it when the kernel closes.
tab_model = solara.reactive(cast(InteractiveModel | None, None))


@solara.component
def LatticeView(model: InteractiveModel) -> None:
    """Lattice (by cell type or STAT3) beside a map of a chosen field."""
    update_counter.get()
    colour_by, set_colour_by = solara.use_state(COLOUR_BY[0])
    field, set_field = solara.use_state("")
    z, set_z = solara.use_state(-1)
    fields = list(model.params.field_names)
    shown = field if field in fields else (fields[0] if fields else None)
    nz = model.params.dims[0]
    z_shown = z if 0 <= z < nz else nz // 2
    with solara.Column():
        with solara.Row():
            solara.ToggleButtonsSingle(value=colour_by, values=list(COLOUR_BY),
                                       on_value=set_colour_by)
            if fields:
                solara.Select(label="field", value=shown, values=fields, on_value=set_field)
            if nz > 1:
                solara.SliderInt("z slice", value=z_shown, min=0, max=nz - 1, on_value=set_z)
        for note in model.notes:
            solara.Warning(note)
        solara.FigureMatplotlib(lattice_figure(model, colour_by, shown, z_shown), format="png")


@solara.component
def SeriesView(model: InteractiveModel) -> None:
    """Counts, mean STAT3 per type and field means over time."""
    update_counter.get()
    solara.FigureMatplotlib(series_figure(model), format="png")


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

    solara.use_effect(build, [])
    if tab_model.value is None:
        solara.Text("building the model...")
        return
    SolaraViz(
        tab_model,
        components=[],
        model_params=model_params(),
        name="tme_abm: tumour microenvironment with per-cell STAT3",
        play_interval=50,
    )
    with solara.Column(style={"padding": "8px", "width": "100%"}):
        LatticeView(tab_model.value)
        SeriesView(tab_model.value)


@solara.component
def Page() -> None:
    """The whole page; one model per browser tab, at most ``--max-models`` tabs."""
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
