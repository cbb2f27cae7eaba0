"""The page's controls as a model: scenario, seed, knockout, inhibitor,
anti-PD-1, the day they start, and parameters by dotted key.

SolaraViz builds a new model from its controls on Reset by calling the model
class with them as keywords, so :class:`InteractiveModel` takes exactly those
keywords: the tab's :class:`PageSettings` (``--set`` items) are applied to
the chosen scenario, then the controls become therapies added to it from
``therapy_from_day``, leaving the scenario file untouched.

The scenario box sends a label, which may be forged (the browser can send any
string): only the labels of :func:`scenario_choices` are accepted, each
mapped to a file on the server; anything else is refused with
:class:`ScenarioNotOffered` before any file is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tme_abm.model import TMEModel
from tme_abm.scenario import LoadedScenario, load_scenario, validate_data
from tme_abm.scenario.library import list_scenarios
from tme_abm.viz.server import FROM_DAY_ENV, FROM_RUN_ENV, SCENARIO_ENV

#: Scenario the page opens with when ``tme-abm viz`` names none.
DEFAULT_CHOICE = "baseline"
#: Inhibitor pharmacokinetics used by the dose slider (as in the shipped stat3_inhibitor.toml).
INHIBITOR_PK = {"plasma_half_life_min": 240.0, "exchange_per_min": 0.1, "every_days": 1.0}
NO_KNOCKOUT = "none"
#: Longest forged value quoted back in a refusal.
_QUOTE_CHARS = 60


class ScenarioNotOffered(ValueError):
    """A scenario label the page does not list (a forged or stale browser value)."""


def _given_label(given: Path, shipped: dict[str, Path]) -> str:
    """Label of the file given to ``tme-abm viz``: its stem, or its path where
    a shipped scenario of another file has that name."""
    other = shipped.get(given.stem)
    if other is None or other.resolve() == given.resolve():
        return given.stem
    return str(given)


def scenario_choices() -> dict[str, Path]:
    """The scenarios the page offers: label -> file on the server.

    The shipped scenarios (:func:`tme_abm.scenario.library.list_scenarios`)
    plus the file given to ``tme-abm viz`` (through :data:`SCENARIO_ENV`,
    which only the server's own command line sets).  This is the complete
    list of files the page may read.
    """
    choices = dict(list_scenarios())
    given = os.environ.get(SCENARIO_ENV)
    if given:
        path = Path(given)
        choices[_given_label(path, choices)] = path
    return choices


def start_scenario() -> str:
    """Label of the scenario the page opens with."""
    given = os.environ.get(SCENARIO_ENV)
    return _given_label(Path(given), list_scenarios()) if given else DEFAULT_CHOICE


def scenario_file(label: object) -> Path:
    """The server-side file of a label from the scenario box.

    Raises
    ------
    ScenarioNotOffered
        If ``label`` is not one of :func:`scenario_choices` (nothing is read).
    """
    choices = scenario_choices()
    if isinstance(label, str) and label in choices:
        return choices[label]
    quoted = repr(label)
    if len(quoted) > _QUOTE_CHARS:
        quoted = quoted[: _QUOTE_CHARS - 3] + "..."
    raise ScenarioNotOffered(
        f"scenario {quoted} is not offered by this page; choose one of the "
        f"{len(choices)} in the scenario list"
    )


@dataclass
class PageSettings:
    """A tab's settings that Mesa's controls cannot hold: scenario parameters
    set by dotted key (``--set`` items, applied on Reset)."""

    overrides: list[str] = field(default_factory=list)

    def set(self, item: str) -> None:
        """Add ``key=value``, replacing an earlier value of the same key."""
        key = item.partition("=")[0]
        self.overrides = [o for o in self.overrides if o.partition("=")[0] != key] + [item]

    def remove(self, key: str) -> None:
        self.overrides = [o for o in self.overrides if o.partition("=")[0] != key]


def _with_therapies(
    loaded: LoadedScenario, knockout: str, inhibitor_dose_ng_per_ml: float, anti_pd1: bool,
    from_day: float = 0.0,
) -> tuple[LoadedScenario, list[str]]:
    """The scenario with the page's therapies added from ``from_day``; also
    notes on controls that do not apply to it."""
    sc = loaded.scenario
    data = sc.model_dump(mode="json")
    notes: list[str] = []
    therapies = data.setdefault("therapy", [])
    chosen = knockout != NO_KNOCKOUT or inhibitor_dose_ng_per_ml > 0 or anti_pd1
    if chosen and from_day >= sc.domain.duration_days:
        notes.append(f"therapies from day {from_day:g}: {sc.name} ends at day "
                     f"{sc.domain.duration_days:g}, so they never act")
    if knockout != NO_KNOCKOUT:
        if knockout in sc.groups or knockout in sc.cell_types:
            therapies.append({"kind": "stat3_knockout", "cell_types": [knockout],
                              "start_day": float(from_day)})
        else:
            notes.append(f"knockout: {sc.name} has no cell type or group {knockout!r}")
    if inhibitor_dose_ng_per_ml > 0:
        if sc.stat3_inhibitor is None:
            notes.append(f"inhibitor: {sc.name} has no [stat3_inhibitor] field")
        else:
            doses = max(1, int(sc.domain.duration_days - from_day) + 1)
            therapies.append({
                "kind": "drug", "field": sc.stat3_inhibitor.field,
                "dose_ng_per_ml": float(inhibitor_dose_ng_per_ml), "doses": doses,
                "first_dose_day": float(from_day),
                **INHIBITOR_PK,
            })
    if anti_pd1:
        targets = sorted({t for ct in sc.cell_types.values() for t in ct.kill_targets})
        if targets:
            therapies.append({"kind": "scale_behaviour", "cell_types": targets,
                              "behaviour": "kill_resistance", "factor": 0.0,
                              "start_day": float(from_day)})
        else:
            notes.append(f"anti-PD-1: {sc.name} has no killers")
    scenario = validate_data(data, str(loaded.path))
    return LoadedScenario(scenario, loaded.text, loaded.path, loaded.overrides), notes


class InteractiveModel(TMEModel):
    """A :class:`TMEModel` built from the page's controls.

    Parameters
    ----------
    scenario
        A label from :func:`scenario_choices` (anything else raises
        :class:`ScenarioNotOffered`; no file path is taken from the browser).
    seed
        Random seed (the page's text box passes a string).
    knockout
        ``"none"``, or a cell type or group of the scenario whose STAT3 is
        knocked out.
    inhibitor_dose_ng_per_ml
        Peak plasma level of a daily STAT3-inhibitor dose (0: none).
    anti_pd1
        PD-1/PD-L1 blockade (targets lose their kill resistance).
    therapy_from_day
        Day from which the knockout, inhibitor and anti-PD-1 act (0: from the start).
    settings
        The tab's :class:`PageSettings` (parameters by dotted key), read on
        every Reset.
    """

    def __init__(
        self,
        scenario: str = DEFAULT_CHOICE,
        seed: int | str = 1,
        knockout: str = NO_KNOCKOUT,
        inhibitor_dose_ng_per_ml: float = 0.0,
        anti_pd1: bool = False,
        therapy_from_day: float = 0.0,
        settings: PageSettings | None = None,
    ) -> None:
        path = scenario_file(scenario)
        self.overrides = tuple(settings.overrides) if settings is not None else ()
        from_file = load_scenario(path, self.overrides)
        #: the scenario before the page's therapies: what dotted keys address
        self.file_scenario = from_file.scenario
        loaded, self.notes = _with_therapies(
            from_file, knockout, inhibitor_dose_ng_per_ml, anti_pd1, float(therapy_from_day),
        )
        super().__init__(loaded, seed=seed)


def model_from_run(path: str | Path, day: float | None = None) -> InteractiveModel:
    """A page model at a run file's checkpoint nearest ``day`` (None: the latest).

    It continues exactly as the run did (see :func:`tme_abm.restart.fork_model`);
    Reset then builds a fresh model from the page's controls.

    Raises
    ------
    tme_abm.restart.ForkError
        If the file has no checkpoint near ``day``.
    """
    from tme_abm.restart import fork_model

    plan = fork_model(path, day)
    model = plan.model
    model.__class__ = InteractiveModel  # the same state; only Reset differs
    model.notes = [f"opened at day {plan.time_min / 1440.0:g} of {Path(path).name}"]
    model.overrides = ()
    model.file_scenario = model.scenario
    return model


def first_model() -> InteractiveModel:
    """A new tab's model: at the run named by ``tme-abm viz --from-run``, else
    the start scenario's."""
    run = os.environ.get(FROM_RUN_ENV)
    if run:
        day = os.environ.get(FROM_DAY_ENV)
        return model_from_run(run, float(day) if day else None)
    return InteractiveModel(scenario=start_scenario())


def model_params(settings: PageSettings | None = None) -> dict[str, Any]:
    """The controls, in SolaraViz's ``model_params`` format (applied on Reset);
    ``settings`` (the tab's) is passed to the model as it is."""
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
        "therapy_from_day": {"type": "SliderFloat", "value": 0.0, "min": 0.0,
                             "max": float(start.domain.duration_days), "step": 0.5,
                             "label": "therapies above from day"},
        "settings": settings if settings is not None else PageSettings(),
    }
