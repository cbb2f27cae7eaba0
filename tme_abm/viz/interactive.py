"""The page's controls as a model: scenario, seed, knockout, inhibitor, anti-PD-1.

SolaraViz builds a new model from its controls on Reset by calling the model
class with them as keywords, so :class:`InteractiveModel` takes exactly those
keywords and turns them into therapies added to the chosen scenario (from day
0), leaving the scenario file untouched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tme_abm.model import DEFAULT_SCENARIO, TMEModel
from tme_abm.scenario import LoadedScenario, load_scenario, validate_data

#: Environment variable through which ``tme-abm viz SCENARIO`` names the start scenario.
SCENARIO_ENV = "TME_ABM_VIZ_SCENARIO"
#: Inhibitor pharmacokinetics used by the dose slider (as in scenarios/stat3_inhibitor.toml).
INHIBITOR_PK = {"plasma_half_life_min": 240.0, "exchange_per_min": 0.1, "every_days": 1.0}
NO_KNOCKOUT = "none"


def scenario_choices() -> dict[str, Path]:
    """Scenario name -> file: everything in scenarios/, plus the one given to
    ``tme-abm viz`` (through :data:`SCENARIO_ENV`)."""
    choices = {p.stem: p for p in sorted(DEFAULT_SCENARIO.parent.glob("*.toml"))}
    given = os.environ.get(SCENARIO_ENV)
    if given:
        choices.setdefault(Path(given).stem, Path(given))
    return choices


def start_scenario() -> str:
    """Name of the scenario the page opens with."""
    given = os.environ.get(SCENARIO_ENV)
    return Path(given).stem if given else DEFAULT_SCENARIO.stem


def _with_therapies(
    loaded: LoadedScenario, knockout: str, inhibitor_dose_ng_per_ml: float, anti_pd1: bool
) -> tuple[LoadedScenario, list[str]]:
    """The scenario with the page's therapies added; also notes on controls
    that do not apply to it."""
    sc = loaded.scenario
    data = sc.model_dump(mode="json")
    notes: list[str] = []
    therapies = data.setdefault("therapy", [])
    if knockout != NO_KNOCKOUT:
        if knockout in sc.groups or knockout in sc.cell_types:
            therapies.append({"kind": "stat3_knockout", "cell_types": [knockout]})
        else:
            notes.append(f"knockout: {sc.name} has no cell type or group {knockout!r}")
    if inhibitor_dose_ng_per_ml > 0:
        if sc.stat3_inhibitor is None:
            notes.append(f"inhibitor: {sc.name} has no [stat3_inhibitor] field")
        else:
            doses = max(1, int(sc.domain.duration_days) + 1)
            therapies.append({
                "kind": "drug", "field": sc.stat3_inhibitor.field,
                "dose_ng_per_ml": float(inhibitor_dose_ng_per_ml), "doses": doses,
                **INHIBITOR_PK,
            })
    if anti_pd1:
        targets = sorted({t for ct in sc.cell_types.values() for t in ct.kill_targets})
        if targets:
            therapies.append({"kind": "scale_behaviour", "cell_types": targets,
                              "behaviour": "kill_resistance", "factor": 0.0})
        else:
            notes.append(f"anti-PD-1: {sc.name} has no killers")
    scenario = validate_data(data, str(loaded.path))
    return LoadedScenario(scenario, loaded.text, loaded.path, loaded.overrides), notes


class InteractiveModel(TMEModel):
    """A :class:`TMEModel` built from the page's controls.

    Parameters
    ----------
    scenario
        A name from :func:`scenario_choices` or a file path.
    seed
        Random seed (the page's text box passes a string).
    knockout
        ``"none"``, or a cell type or group of the scenario whose STAT3 is
        knocked out from day 0.
    inhibitor_dose_ng_per_ml
        Peak plasma level of a daily STAT3-inhibitor dose from day 0 (0: none).
    anti_pd1
        PD-1/PD-L1 blockade from day 0 (targets lose their kill resistance).
    """

    def __init__(
        self,
        scenario: str = DEFAULT_SCENARIO.stem,
        seed: int | str = 1,
        knockout: str = NO_KNOCKOUT,
        inhibitor_dose_ng_per_ml: float = 0.0,
        anti_pd1: bool = False,
    ) -> None:
        path = scenario_choices().get(str(scenario), Path(str(scenario)))
        loaded, self.notes = _with_therapies(
            load_scenario(path), knockout, inhibitor_dose_ng_per_ml, anti_pd1
        )
        super().__init__(loaded, seed=seed)


def model_params() -> dict[str, Any]:
    """The controls, in SolaraViz's ``model_params`` format (applied on Reset)."""
    start = load_scenario(scenario_choices()[start_scenario()]).scenario
    knockouts = [NO_KNOCKOUT, *start.groups, *start.cell_types]
    return {
        "scenario": {"type": "Select", "value": start_scenario(),
                     "values": list(scenario_choices()), "label": "scenario"},
        "seed": {"type": "InputText", "value": str(start.seed), "label": "seed"},
        "knockout": {"type": "Select", "value": NO_KNOCKOUT, "values": knockouts,
                     "label": "STAT3 knockout in"},
        "inhibitor_dose_ng_per_ml": {"type": "SliderFloat", "value": 0.0, "min": 0.0,
                                     "max": 50.0, "step": 1.0,
                                     "label": "STAT3 inhibitor dose (ng/mL, daily)"},
        "anti_pd1": {"type": "Checkbox", "value": False, "label": "anti-PD-1"},
    }
