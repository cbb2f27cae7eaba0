"""The model as a function: parameters and a seed in, summary statistics out.

This is the seam between tme_abm and any inference library.  A
:class:`Simulator` holds a base scenario, its overrides, the fitted
parameters and the summary statistics; calling it with parameter values and
a seed runs the scenario (into a temporary run file that is deleted after
its summaries are read) and returns ``{name: value}``.  :func:`simulate` is
the one-call form and :func:`simulate_batch` runs many parameter sets on a
process pool or a Dask cluster (the executors of ``tme-abm sweep``), in
input order, whatever the number of workers.

Seeds: a run with ``replicates = 1`` uses ``seed`` itself, so
``tme-abm run SCENARIO --seed SEED --set KEY=VALUE ...`` reproduces it;
with R > 1 replicates, replicate r uses :func:`replicate_seeds` (``seed``'s
``numpy.random.SeedSequence`` spawned R times) and the summaries are the
replicates' mean.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tme_abm.calibration.spec import (
    Calibration,
    DataPoint,
    ParameterSpec,
    SummarySpec,
    parameter_overrides,
)
from tme_abm.scenario.load import toml_value

__all__ = ["Simulator", "replicate_seeds", "simulate", "simulate_batch"]


def replicate_seeds(seed: int, replicates: int) -> list[int]:
    """Run seeds of ``replicates`` runs made for one (parameters, seed) pair.

    One replicate uses ``seed`` itself; more use ``SeedSequence(seed).spawn``.
    """
    if replicates == 1:
        return [int(seed)]
    children = np.random.SeedSequence(int(seed)).spawn(replicates)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


@dataclass(frozen=True)
class Simulator:
    """A picklable function ``(parameters, seed) -> summaries`` over one scenario.

    Parameters
    ----------
    scenario_path
        The base scenario file.
    base_overrides
        ``KEY=VALUE`` overrides applied first (lattice size, duration ...).
    parameters
        Fitted parameters: their names are the keys :meth:`__call__` accepts
        (values in natural units).  Empty: keys are dotted scenario keys.
    summaries, points
        Which numbers to return: each point's summary statistic
        (:func:`tme_abm.calibration.summaries.evaluate`).  Without points the
        key outputs of ``tme-abm sweep`` are returned
        (:func:`tme_abm.batch.sweep.outputs_of`).
    replicates
        Runs per call; the summaries are their mean.
    """

    scenario_path: Path
    base_overrides: tuple[str, ...] = ()
    parameters: tuple[ParameterSpec, ...] = ()
    summaries: Mapping[str, SummarySpec] = field(default_factory=dict)
    points: tuple[DataPoint, ...] = ()
    replicates: int = 1

    @classmethod
    def from_calibration(cls, calibration: Calibration) -> Simulator:
        """The simulator a calibration file describes."""
        spec = calibration.spec
        return cls(
            scenario_path=calibration.scenario_path,
            base_overrides=calibration.base_overrides,
            parameters=tuple(spec.parameters),
            summaries=dict(spec.summaries),
            points=calibration.data,
            replicates=spec.model.replicates,
        )

    def overrides(self, parameters: Mapping[str, float]) -> tuple[str, ...]:
        """The ``KEY=VALUE`` overrides that put ``parameters`` into the scenario."""
        if not self.parameters:
            return self.base_overrides + tuple(
                f"{k}={toml_value(v)}" for k, v in parameters.items()
            )
        names = {p.name for p in self.parameters}
        unknown = sorted(set(parameters) - names)
        missing = sorted(names - set(parameters))
        if unknown or missing:
            raise KeyError(
                (f"unknown parameter(s) {', '.join(unknown)}; " if unknown else "")
                + (f"missing {', '.join(missing)}; " if missing else "")
                + f"the parameters are {', '.join(sorted(names))}"
            )
        return self.base_overrides + parameter_overrides(self.parameters, parameters)

    def run_once(self, parameters: Mapping[str, float], seed: int) -> dict[str, float]:
        """One run at ``seed``: its summaries."""
        from tme_abm.batch.sweep import outputs_of
        from tme_abm.calibration.summaries import evaluate
        from tme_abm.runner import run_scenario
        from tme_abm.scenario import load_scenario

        loaded = load_scenario(self.scenario_path, self.overrides(parameters))
        with tempfile.TemporaryDirectory(prefix="tme_abm_sim_") as tmp:
            path = Path(tmp) / "run.h5"
            run_scenario(loaded, path, seed=int(seed), progress=False)
            if self.points:
                return evaluate(path, self.summaries, self.points)
            return outputs_of(path)

    def __call__(self, parameters: Mapping[str, float], seed: int) -> dict[str, float]:
        """Summaries of ``replicates`` runs (their mean) at ``parameters``."""
        if multiprocessing.parent_process() is not None:
            # one numba thread per worker process: more oversubscribe the cores
            import numba

            numba.set_num_threads(1)
        runs = [self.run_once(parameters, s) for s in replicate_seeds(seed, self.replicates)]
        if len(runs) == 1:
            return runs[0]
        out = {}
        for key in runs[0]:
            values = np.array([r[key] for r in runs], dtype=float)
            finite = values[np.isfinite(values)]
            out[key] = float(finite.mean()) if finite.size else math.nan
        return out


def _simulator(
    calibration: str | Path | Calibration | None,
    scenario: str | Path,
    overrides: Sequence[str],
    replicates: int,
) -> Simulator:
    if calibration is not None:
        from tme_abm.calibration.spec import load_calibration

        cal = calibration if isinstance(calibration, Calibration) else load_calibration(calibration)
        return Simulator.from_calibration(cal)
    from tme_abm.scenario.library import resolve

    return Simulator(resolve(scenario), tuple(overrides), replicates=replicates)


def simulate(
    parameters: Mapping[str, float],
    seed: int,
    *,
    scenario: str | Path = "baseline",
    overrides: Sequence[str] = (),
    calibration: str | Path | Calibration | None = None,
    replicates: int = 1,
) -> dict[str, float]:
    """Run the model once at ``parameters`` and return its summary statistics.

    Parameters
    ----------
    parameters
        With ``calibration``: the calibration's parameter names -> values in
        natural units.  Without: dotted scenario keys -> values
        (``{"rules.0.saturation": 5e-4}``), as ``--set`` takes them.
    seed
        The run's seed (with ``replicates`` > 1, the root of theirs).
    scenario, overrides
        The base scenario (a file or a shipped name) and ``KEY=VALUE``
        overrides, when no calibration is given.
    calibration
        A calibration file (or a loaded one): its model, parameters and
        summaries at its data points.
    replicates
        Runs averaged per call (a calibration file sets its own).

    Returns
    -------
    dict of str to float
        With a calibration: ``quantity@<time>d`` -> value for every data
        point.  Without: the key outputs of a sweep (final counts, CD8/Treg
        ratio, the spatial metrics).

    Examples
    --------
    >>> import tme_abm
    >>> tme_abm.simulate({"domain.shape": [40, 40], "domain.duration_days": 1}, seed=1)
    ... # doctest: +SKIP
    """
    return _simulator(calibration, scenario, overrides, replicates)(parameters, seed)


def _call(simulator: Simulator, parameters: Mapping[str, float], seed: int) -> dict[str, float]:
    return simulator(parameters, seed)


def simulate_batch(
    parameter_sets: Sequence[Mapping[str, float]],
    seeds: Sequence[int] | None = None,
    *,
    entropy: int = 0,
    scenario: str | Path = "baseline",
    overrides: Sequence[str] = (),
    calibration: str | Path | Calibration | None = None,
    replicates: int = 1,
    workers: int = 2,
    scheduler: str | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
) -> list[dict[str, float]]:
    """:func:`simulate` over many parameter sets, in parallel, results in input order.

    Parameters
    ----------
    parameter_sets
        One mapping per simulation (see :func:`simulate`).
    seeds
        One seed per set; by default ``SeedSequence(entropy).spawn(n)``, so
        the same call gives the same seeds whatever ``workers`` is.
    workers
        Processes of the local pool (1: run here, in this process).
    scheduler
        A Dask scheduler address, or ``"local"`` (needs the dask extra).
    executor
        Any ``concurrent.futures.Executor`` to use instead.
    progress
        A progress bar on stderr (None: only on a terminal).
    """
    from tqdm import tqdm

    sim = _simulator(calibration, scenario, overrides, replicates)
    n = len(parameter_sets)
    if seeds is None:
        seeds = [
            int(c.generate_state(1, dtype=np.uint32)[0])
            for c in np.random.SeedSequence(entropy).spawn(n)
        ]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} parameter sets")
    bar = tqdm(
        total=n,
        unit="run",
        file=sys.stderr,
        dynamic_ncols=True,
        desc="simulate",
        disable=None if progress is None else not progress,
    )
    with bar:
        return map_in_order(
            _call,
            [(sim, p, s) for p, s in zip(parameter_sets, seeds, strict=True)],
            workers=workers,
            scheduler=scheduler,
            executor=executor,
            on_done=bar.update,
        )


def map_in_order(
    fn: Any,
    args: Sequence[tuple[Any, ...]],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    executor: Executor | None = None,
    on_done: Any = None,
) -> list[Any]:
    """``[fn(*a) for a in args]`` on a pool, a Dask cluster or here; results in order.

    ``on_done(1)`` is called as each result arrives.  Interrupted, the queued
    calls are dropped.
    """
    from contextlib import ExitStack

    from tme_abm.batch.guard import bind_worker_to_parent

    if executor is None and scheduler is None and workers <= 1:
        out = []
        for a in args:
            out.append(fn(*a))
            if on_done:
                on_done(1)
        return out
    with ExitStack() as stack:
        if executor is None and scheduler is not None:
            from tme_abm.batch.dask import dask_executor

            executor = stack.enter_context(dask_executor(scheduler, workers))
        own = executor is None
        pool = executor or ProcessPoolExecutor(
            max_workers=workers, initializer=bind_worker_to_parent, initargs=(os.getpid(),)
        )
        finished = False
        futures: list[Any] = []
        try:
            futures = [pool.submit(fn, *a) for a in args]
            index = {f: k for k, f in enumerate(futures)}
            results: list[Any] = [None] * len(futures)
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                results[index[fut]] = fut.result()
                if on_done:
                    on_done(1)
            finished = True
            return results
        finally:
            if own:
                pool.shutdown(wait=True, cancel_futures=not finished)
            elif not finished:
                for f in futures:
                    f.cancel()
