"""The Solara page served by ``tme-abm viz``.

Each browser tab gets its own model (built in :func:`Page`, not at module
level, where SolaraViz would share one model between tabs).  The lattice
panel's view controls (colour by cell type or STAT3, which field to map, the
z slice of a 3D lattice) apply at once; the model controls in the sidebar
(scenario, seed, knockout, inhibitor dose, anti-PD-1) apply on Reset.
"""

from __future__ import annotations

import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from tme_abm.viz.figures import COLOUR_BY, lattice_figure, series_figure
from tme_abm.viz.interactive import InteractiveModel, model_params, start_scenario


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


@solara.component
def Page() -> None:
    """The whole page; one model per browser tab.

    SolaraViz provides the app bar, the step/play/reset controls and the model
    controls; the panels are drawn here at full width (SolaraViz's own grid
    gives each component half the width) from the same reactive model, so
    they follow Reset.
    """
    initial = solara.use_memo(lambda: InteractiveModel(scenario=start_scenario()), [])
    model = solara.use_reactive(initial)
    SolaraViz(
        model,
        components=[],
        model_params=model_params(),
        name="tme_abm: tumour microenvironment with per-cell STAT3",
        play_interval=50,
    )
    with solara.Column(style={"padding": "8px", "width": "100%"}):
        LatticeView(model.value)
        SeriesView(model.value)
