"""TMEModel: the Mesa shell around the array engine.

``TMEModel`` subclasses :class:`mesa.Model` so that Mesa's seeding,
``step()``, ``running``, ``DataCollector``, SolaraViz and
``mesa.batch_run`` all work, but it creates no Python object per cell:
the state lives in :class:`tme_abm.core.engine.Engine`'s arrays.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import mesa
import numpy as np
import pandas as pd

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
        A scenario file path, the name of a shipped scenario (``"baseline"``,
        see ``tme-abm scenarios``; a path that exists wins), a
        :class:`LoadedScenario` or a :class:`Scenario` (default: the shipped
        ``baseline`` scenario).
    seed
        Overrides the scenario's seed.  ``rng`` is accepted as a synonym so that
        Mesa's tooling, which passes ``rng``, works.
    overrides
        ``{"dotted.key": value}`` or ``["dotted.key=value", ...]``, applied to
        the scenario file before validation (like ``--set``).
    series_rows
        How many of the most recent ticks of the per-tick series
        ``datacollector`` keeps in memory.  None (the default) keeps every
        tick, as Mesa's DataCollector does (about 85 Python numbers a tick);
        0 keeps none, for runs whose series are written elsewhere:
        :func:`~tme_abm.runner.run_scenario` (``tme-abm run``, sweeps) uses 0
        and writes the series to the run file, so its memory stays flat
        however long the run.  ``mesa.batch_run`` and the interactive page
        read every row: leave it None there.  See :class:`SeriesCollector`.

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
        series_rows: int | None = None,
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
        else:  # a path, or the name of a shipped scenario ("baseline")
            from tme_abm.scenario.library import resolve

            loaded = load_scenario(resolve(scenario), override_list)
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
        self._series_rows = series_rows
        self.datacollector = self._new_collector()
        self.datacollector.collect(self)
        self.running = True

    def _new_collector(self, first_tick: int = 0) -> SeriesCollector:
        return SeriesCollector(
            model_reporters={name: partial(_series_value, name) for name in self.series_names()},
            max_rows=self._series_rows,
            first_tick=first_tick,
        )

    @classmethod
    def from_run(
        cls,
        path: str | Path,
        day: float | None = None,
        *,
        scenario: str | Path | None = None,
        overrides: Mapping[str, Any] | Iterable[str] = (),
        seed: int | None = None,
        series_rows: int | None = None,
    ) -> TMEModel:
        """A model continuing from a checkpoint of a run file: a fork in a notebook.

        Parameters
        ----------
        path
            A run file (complete or ``.partial``).
        day
            Start from the checkpoint nearest this simulated day (None: the
            latest). Checkpoints exist at the last snapshot and at the days
            listed in the run's ``output.checkpoint_days``.
        scenario
            Continue with this scenario file instead of the run's own (the
            lattice, cell types, fields and time step must match).
        overrides
            ``{"dotted.key": value}`` or ``["dotted.key=value"]`` applied on top
            (e.g. a therapy that starts at ``day`` or later).
        seed
            The seed from ``day`` on (default: the run's).
        series_rows
            As for :class:`TMEModel`.

        Returns
        -------
        TMEModel
            At the checkpoint's tick; ``step()`` continues from there, and
            with no changes it continues exactly as the run did.

        Raises
        ------
        tme_abm.restart.ForkError
            If the file has no checkpoint near ``day`` or the changes cannot
            be applied from there (the message says which).
        """
        from tme_abm.restart import fork_model

        return fork_model(
            path, day, scenario=scenario, overrides=_override_strings(overrides), seed=seed,
            series_rows=series_rows,
        ).model

    def restore_checkpoint(
        self, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]
    ) -> None:
        """Replace the state with a checkpoint's (``read_checkpoint``'s output).

        The series collected so far are dropped and collection restarts at
        the checkpoint's tick; Mesa's ``steps`` becomes that tick.

        Raises
        ------
        ValueError
            If the checkpoint does not fit this model's lattice, fields or
            cell types.
        """
        self.engine.restore(dict(arrays), dict(attrs))
        self._summary_tick = -1
        self.steps = self.engine.tick
        self.running = self.engine.tick < self.n_ticks
        self.datacollector = self._new_collector(first_tick=self.engine.tick)
        self.datacollector.collect(self)

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
    """Mesa's DataCollector, collecting the model's own series in one pass,
    optionally keeping only the most recent rows.

    Mesa's ``collect`` calls each reporter and deep-copies its value: ~4 us
    per series, 85 series in the baseline, a tenth of the quick-start run's
    wall time.  The series are plain numbers from one :meth:`TMEModel.summary`,
    so they are appended as they are.  Anything else (reporters added later,
    agent reporters) goes through Mesa's own ``collect``.

    Parameters
    ----------
    model_reporters, agent_reporters, agenttype_reporters, tables
        As for :class:`mesa.DataCollector`.
    max_rows
        Keep at most this many of the most recent collected rows of each
        model reporter (None: all of them, as Mesa does; 0: none).  A
        bounded collector's ``model_vars`` values are
        :class:`collections.deque` objects, and
        :meth:`get_model_vars_dataframe` indexes the rows it kept by their
        collection number (the tick, for a :class:`TMEModel`), so that a
        bounded frame lines up with an unbounded one.
    first_tick
        The number of the first collection (a model restored from a
        checkpoint starts collecting at that checkpoint's tick).

    Attributes
    ----------
    n_collected
        How many times :meth:`collect` has run (kept rows or not).
    """

    def __init__(
        self,
        model_reporters: dict[str, Any] | None = None,
        agent_reporters: dict[str, Any] | None = None,
        agenttype_reporters: dict[Any, dict[str, Any]] | None = None,
        tables: dict[str, list[str]] | None = None,
        *,
        max_rows: int | None = None,
        first_tick: int = 0,
    ) -> None:
        if max_rows is not None and (
            isinstance(max_rows, bool) or not isinstance(max_rows, int | np.integer)
            or max_rows < 0
        ):
            raise ValueError(f"max_rows must be None or an integer >= 0, not {max_rows!r}")
        self.max_rows = None if max_rows is None else int(max_rows)
        self.first_tick = int(first_tick)
        self.n_collected = 0
        super().__init__(model_reporters, agent_reporters, agenttype_reporters, tables)

    def _new_model_reporter(self, name: str, reporter: Any) -> None:
        super()._new_model_reporter(name, reporter)
        if self.max_rows is not None:
            self.model_vars[name] = deque(maxlen=self.max_rows)

    def get_model_vars_dataframe(self) -> pd.DataFrame:
        """The kept rows as a DataFrame, one column per model reporter,
        indexed by collection number (``first_tick`` for the first :meth:`collect`)."""
        df = super().get_model_vars_dataframe()
        if self.max_rows is not None or self.first_tick:
            end = self.first_tick + self.n_collected
            df.index = pd.RangeIndex(end - len(df), end)
        return df

    def collect(self, model: mesa.Model) -> None:
        """Append this tick's value of every series."""
        self.n_collected += 1
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
