"""TMEModel: the Mesa shell around the array engine.

``TMEModel`` subclasses :class:`mesa.Model` so that Mesa's seeding,
``step()``, ``running``, ``DataCollector``, SolaraViz and
``mesa.batch_run`` all work, but it creates no Python object per cell:
the state lives in :class:`tme_abm.core.engine.Engine`'s arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import mesa
import numpy as np

from tme_abm.core.behaviours import EVENTS
from tme_abm.core.engine import Engine
from tme_abm.scenario import (
    LoadedScenario,
    Scenario,
    compile_scenario,
    load_scenario,
)
from tme_abm.scenario.library import examples_dir
from tme_abm.scenario.load import toml_value

#: The scenario used when none is named (shipped with the package).
DEFAULT_SCENARIO = examples_dir() / "baseline.toml"


def _as_seed(value: Any) -> int | None:
    """Accept ints and integer strings (SolaraViz's seed box passes a string)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("seed must be an integer, not a bool")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise TypeError(f"seed must be a non-negative integer, not {value!r}")


def _override_strings(overrides: Mapping[str, Any] | Iterable[str]) -> tuple[str, ...]:
    if isinstance(overrides, Mapping):
        return tuple(f"{key}={toml_value(value)}" for key, value in overrides.items())
    return tuple(overrides)


class TMEModel(mesa.Model):
    """A tumour-microenvironment run as a Mesa model.

    Parameters
    ----------
    scenario
        A scenario file path, a :class:`LoadedScenario` or a :class:`Scenario`
        (default: the shipped ``baseline`` scenario).
    seed
        Overrides the scenario's seed.  ``rng`` is accepted as a synonym so that
        Mesa's tooling, which passes ``rng``, works.
    overrides
        ``{"dotted.key": value}`` or ``["dotted.key=value", ...]``, applied to
        the scenario file before validation (like ``--set``).

    Raises
    ------
    tme_abm.scenario.ScenarioError
        If the scenario is invalid.
    """

    def __init__(
        self,
        scenario: str | Path | LoadedScenario | Scenario = DEFAULT_SCENARIO,
        *,
        seed: int | str | None = None,
        rng: int | str | None = None,
        overrides: Mapping[str, Any] | Iterable[str] = (),
    ) -> None:
        override_list = _override_strings(overrides)
        if isinstance(scenario, LoadedScenario):
            if override_list:
                raise ValueError("apply overrides when loading: load_scenario(path, overrides)")
            loaded = scenario
        elif isinstance(scenario, Scenario):
            if override_list:
                raise ValueError("overrides need a scenario file, not a Scenario object")
            loaded = LoadedScenario(scenario, "", None)
        else:
            loaded = load_scenario(scenario, override_list)
        chosen = _as_seed(seed) if seed is not None else _as_seed(rng)
        if chosen is None:
            chosen = loaded.scenario.seed
        if chosen < 0:
            raise ValueError(f"seed must be >= 0, not {chosen}")
        super().__init__(rng=chosen)
        self.seed = chosen
        self.loaded = loaded
        self.scenario = loaded.scenario
        self.params = compile_scenario(loaded.scenario, seed=chosen)
        self.engine = Engine(self.params)
        self.n_ticks = self.params.n_ticks
        self._summary_tick = -1
        self._summary: dict[str, float] = {}
        self.datacollector = SeriesCollector(
            model_reporters={name: partial(_series_value, name) for name in self.series_names()}
        )
        self.datacollector.collect(self)
        self.running = True

    # ------------------------------------------------------------------ Mesa
    def step(self) -> None:
        """Advance one tick and record the model-level series."""
        if self.engine.tick >= self.n_ticks:
            self.running = False
            return
        self.engine.step()
        self.datacollector.collect(self)
        if self.engine.tick >= self.n_ticks:
            self.running = False

    # --------------------------------------------------------------- readouts
    @property
    def time_min(self) -> float:
        """Simulated minutes since the start."""
        return self.engine.time_min

    def series_names(self) -> list[str]:
        """Names of the per-tick series (see :meth:`summary`)."""
        p = self.params
        names = [f"count_{t}" for t in p.type_names]
        names += [f"stat3_mean_{t}" for t in p.type_names]
        names += [f"field_mean_{f}" for f in p.field_names]
        names += [f"{ev}_{t}" for ev in EVENTS for t in p.type_names]
        return names

    def summary(self) -> dict[str, float]:
        """Model-level numbers for the current tick: counts and mean STAT3 per
        type, mean concentration per field, and this tick's events per type."""
        if self._summary_tick != self.engine.tick:
            e, p = self.engine, self.params
            out: dict[str, float] = {}
            counts = e.counts()
            for name, v in zip(p.type_names, counts, strict=True):
                out[f"count_{name}"] = int(v)
            for name, v in zip(p.type_names, e.mean_stat3(counts), strict=True):
                out[f"stat3_mean_{name}"] = float(v)
            for name, v in zip(p.field_names, e.field_means(), strict=True):
                out[f"field_mean_{name}"] = float(v)
            for k, ev in enumerate(EVENTS):
                for name, v in zip(p.type_names, e.events[k], strict=True):
                    out[f"{ev}_{name}"] = int(v)
            self._summary = out
            self._summary_tick = e.tick
        return self._summary


class SeriesCollector(mesa.DataCollector):
    """Mesa's DataCollector, collecting the model's own series in one pass.

    Mesa's ``collect`` calls each reporter and deep-copies its value: ~4 us
    per series, 85 series in the baseline, a tenth of the quick-start run's
    wall time.  The series are plain numbers from one :meth:`TMEModel.summary`,
    so they are appended as they are.  Anything else (reporters added later,
    agent reporters) goes through Mesa's own ``collect``.
    """

    def collect(self, model: mesa.Model) -> None:
        """Append this tick's value of every series."""
        ours = isinstance(model, TMEModel) and not (
            self.agent_reporters or self.agenttype_reporters
        )
        summary = model.summary() if ours else {}
        if not ours or any(name not in summary for name in self.model_reporters):
            super().collect(model)
            return
        for name, values in self.model_vars.items():
            values.append(summary[name])


def _series_value(name: str, model: TMEModel) -> float:
    """DataCollector reporter: one entry of the model's summary (a partial of
    this is picklable and is called with the model, unlike other callables)."""
    return model.summary()[name]
