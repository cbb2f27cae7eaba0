"""Drive the page's Solara components in-process, as two browser tabs would,
and print what they showed as JSON (run by tests/test_viz.py in a subprocess:
Solara's server patches ipywidgets, matplotlib and threading process-wide).

Usage: python tests/viz_page_driver.py SCENARIO_FILE  (with TME_ABM_VIZ_MAX_MODELS=1)
"""

from __future__ import annotations

import json
import sys

import ipyvuetify as v
import solara
import solara.server.starlette  # noqa: F401  (as the server: reactives per kernel)
from solara.server import kernel, kernel_context
from solara.server import patch as solara_patch

solara_patch.patch()

from tme_abm.viz import app, slots  # noqa: E402


def tab(i: int) -> kernel_context.VirtualKernelContext:
    """A Solara kernel, as the server makes one per browser tab."""
    return kernel_context.VirtualKernelContext(id=f"tab{i}", kernel=kernel.Kernel(),
                                               session_id=f"session{i}")


def alerts(rc) -> list[str]:
    return [" ".join(map(str, w.children)) for w in rc.find(v.Alert).widgets]


def click(rc, label: str) -> None:
    rc.find(v.Btn, children=[label]).widget.click()


def main() -> None:
    seen: dict[str, object] = {}
    first = tab(1)
    with first:
        _, rc = solara.render(app.Layout(children=[app.Page()]), handle_error=False)
        model = app.tab_model.value
        seen["first_scenario"] = model.scenario.name
        # the browser's hover messages: anything but a site of the lattice is ignored
        lattice = [w for w in rc.find(v.VuetifyTemplate).widgets if hasattr(w, "vue_hover")][0]
        seen["hover"] = []
        for payload in ({"x": "abc", "y": 1}, {"x": 10**30, "y": 0}, {"x": -1, "y": 0},
                        {"x": 0, "y": 40}, None, [1, 2], {"x": 5, "y": 6}):
            lattice.vue_hover(payload)
            seen["hover"].append(lattice.info[0][1] if lattice.info else None)
        click(rc, "Step")
        # the browser sends a value that is not in the list
        rc.find(v.Select, label="scenario").widget.v_model = sys.argv[1]
        click(rc, "Reset")
        seen["forged_alerts"] = alerts(rc)
        click(rc, "Back to the model")
        seen["kept_model"] = app.tab_model.value is model
        seen["kept_steps"] = model.steps
        seen["alerts_after_back"] = alerts(rc)
    seen["slots_after_first"] = slots.server_slots().count
    second = tab(2)
    with second:
        _, rc2 = solara.render(app.Layout(children=[app.Page()]), handle_error=False)
        seen["second_alerts"] = alerts(rc2)
        seen["second_model"] = app.tab_model.value is not None
    first.close()  # what Solara does when the first tab is closed
    seen["slots_after_close"] = slots.server_slots().count
    with second:
        click(rc2, "Try again")
        seen["second_alerts_retry"] = alerts(rc2)
        seen["second_model_retry"] = app.tab_model.value is not None
    seen["slots_after_retry"] = slots.server_slots().count
    second.close()
    seen["slots_at_end"] = slots.server_slots().count
    print("RESULT " + json.dumps(seen))


if __name__ == "__main__":
    main()
