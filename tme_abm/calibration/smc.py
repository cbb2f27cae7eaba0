"""ABC-SMC through pyabc: priors, distance, a seeded sampler, and a resumable history.

pyabc does the inference (Toni et al. 2009 J R Soc Interface 6:187; Klinger
et al. 2018 Bioinformatics 34:3591).  This module only connects it to the
model, with one addition pyabc lacks: **reproducibility whatever the number
of workers**.  pyabc's own parallel samplers accept the first particles to
finish, so the population depends on timing (pyabc issue #392), and its
``MappingSampler`` reseeds every task from the operating system.
:class:`SeededSampler` is a ``MappingSampler`` whose task ``i`` of generation
``t`` seeds numpy and ``random`` from ``SeedSequence([seed, t + 1, i])`` and
samples until it has one accepted particle; the population is the tasks'
particles in task order.  Proposals and simulation seeds are drawn from
that stream, so the same file and seed give the same posterior on one
process, a pool of any size or a Dask cluster, and after an interruption.

The history is pyabc's SQLite database (``history.db``): every finished
generation is stored, and running the same command again continues after
the last one.  Only pyabc's import of this module needs the ``calibrate``
extra.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

from tme_abm.calibration.simulate import Simulator, map_in_order
from tme_abm.calibration.spec import Calibration

try:
    import pyabc
    from pyabc.sampler import MappingSampler
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'calibration needs pyabc: pip install -e ".[calibrate]" (or "tme_abm[calibrate]")'
    ) from exc

__all__ = ["SeededSampler", "TooFewAccepted", "build_abc", "observed", "task_seeds"]


class TooFewAccepted(RuntimeError):
    """A sampling task exceeded its share of ``abc.max_simulations``."""


def task_seeds(seed: int, t: int, n: int) -> list[int]:
    """Seeds of the ``n`` sampling tasks of generation ``t`` (-1: pyabc's calibration sample)."""
    return [
        int(np.random.SeedSequence([int(seed), t + 1, i]).generate_state(1)[0]) for i in range(n)
    ]


def _transform(value: float, log: bool) -> float:
    if not log:
        return float(value)
    return math.log(value) if value > 0 else math.nan


class ABCModel:
    """pyabc's model: fitted parameters in, transformed summary statistics out.

    A simulation's seed is drawn from numpy's global generator, which the
    sampling task has seeded (:class:`SeededSampler`).
    """

    def __init__(self, calibration: Calibration) -> None:
        self.simulator = Simulator.from_calibration(calibration)
        self.params = calibration.spec.parameters
        self.logs = {pt.key: calibration.spec.summaries[pt.quantity].log for pt in calibration.data}

    def natural(self, pars: dict[str, float]) -> dict[str, float]:
        """Natural-unit values from the sampler's (log10 for log-uniform priors)."""
        return {p.name: p.to_natural(float(pars[p.fitted_name])) for p in self.params}

    def __call__(self, pars: dict[str, float]) -> dict[str, float]:
        # pyabc draws proposals from numpy's global generator; so does this
        seed = int(np.random.randint(0, 2**32 - 1, dtype=np.int64))  # noqa: NPY002
        sims = self.simulator(self.natural(pars), seed)
        return {k: _transform(sims[k], log) for k, log in self.logs.items()}


def observed(calibration: Calibration) -> dict[str, float]:
    """The observed data as pyabc sees them (log values for ``log`` summaries)."""
    s = calibration.spec.summaries
    return {pt.key: _transform(pt.value, s[pt.quantity].log) for pt in calibration.data}


def distance_weights(calibration: Calibration) -> dict[str, float]:
    """1 / uncertainty per data point (1 / relative uncertainty on a log scale)."""
    s = calibration.spec.summaries
    return {
        pt.key: (abs(pt.value) / pt.uncertainty if s[pt.quantity].log else 1.0 / pt.uncertainty)
        for pt in calibration.data
    }


class SeededSampler(MappingSampler):
    """A MappingSampler whose tasks are seeded from one ``SeedSequence``.

    Parameters
    ----------
    seed
        The calibration's root seed.
    executor
        Where tasks run (None: in this process).
    progress
        Show a bar per generation.
    max_simulations
        Evaluations allowed in a generation, shared evenly by its tasks.
    """

    def __init__(
        self,
        seed: int,
        executor: Executor | None = None,
        progress: bool | None = None,
        max_simulations: int = 1_000_000,
    ) -> None:
        super().__init__(map_=map)
        self.seed = int(seed)
        self.executor = executor
        self.progress = progress
        self.max_simulations = int(max_simulations)

    def map_function(self, simulate_one: Any, task: tuple[int, int]) -> tuple[Any, int]:
        """One task: seed, then sample until one particle is accepted."""
        seed, cap = task
        simulate_one = self.unpickle(simulate_one)
        np.random.seed(seed)  # noqa: NPY002 - pyabc samples from the global generator
        random.seed(seed)
        n = 0
        sample = self._create_empty_sample()
        while True:
            particle = simulate_one()
            n += 1
            sample.append(particle)
            if particle.accepted:
                return sample, n
            if n >= cap:
                raise TooFewAccepted(
                    f"no particle accepted in {cap} simulations (this task's share of "
                    "abc.max_simulations); the data may be out of the prior's reach, or "
                    "raise abc.max_simulations"
                )

    def sample_until_n_accepted(
        self,
        n,
        simulate_one,
        t,
        *,
        max_eval=np.inf,  # noqa: ARG002
        all_accepted=False,
        ana_vars=None,
    ):  # noqa: ARG002
        from tqdm import tqdm

        fn = functools.partial(self.map_function, self.pickle(simulate_one))
        cap = max(1, self.max_simulations // max(n, 1))
        tasks = [((s, cap),) for s in task_seeds(self.seed, t, n)]
        desc = "prior sample" if t < 0 else f"generation {t}"
        bar = tqdm(
            total=n,
            unit="particle",
            desc=desc,
            file=sys.stderr,
            dynamic_ncols=True,
            disable=None if self.progress is None else not self.progress,
        )
        with bar:
            results = map_in_order(fn, tasks, executor=self.executor, on_done=bar.update)
        samples, evals = zip(*results, strict=True)
        self.nr_evaluations_ = int(sum(evals))
        sample = self._create_empty_sample()
        for s in samples:
            sample += s
        return sample


def prior(calibration: Calibration) -> pyabc.Distribution:
    """The prior of the fitted values (log10 for log-uniform parameters)."""
    rvs = {}
    for p in calibration.spec.parameters:
        name, args = p.scipy_args()
        rvs[p.fitted_name] = pyabc.RV(name, *args)
    return pyabc.Distribution(**rvs)


def _quiet_pyabc() -> None:
    """pyabc logs every generation at INFO; the command prints its own lines."""
    for name in (
        "ABC",
        "ABC.Sampler",
        "ABC.Distance",
        "ABC.Epsilon",
        "ABC.History",
        "ABC.Adaptation",
        "ABC.Transition",
        "ABC.Acceptor",
        "ABC.Population",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_abc(calibration: Calibration, sampler: SeededSampler) -> pyabc.ABCSMC:
    """The pyabc ABCSMC object of a calibration (not yet bound to a database)."""
    settings = calibration.spec.abc
    weights = distance_weights(calibration)
    _quiet_pyabc()
    if settings.distance == "gaussian":
        keys = [pt.key for pt in calibration.data]
        distance = pyabc.IndependentNormalKernel(
            var=[1.0 / weights[k] ** 2 for k in keys], keys=keys
        )
        sampling = {"eps": pyabc.Temperature(), "acceptor": pyabc.StochasticAcceptor()}
    else:
        norm = (
            pyabc.AdaptivePNormDistance if settings.distance == "adaptive" else pyabc.PNormDistance
        )
        distance = norm(p=2, fixed_weights=weights)
        sampling = {"eps": pyabc.QuantileEpsilon(alpha=settings.epsilon_quantile)}
    return pyabc.ABCSMC(
        ABCModel(calibration),
        prior(calibration),
        distance,
        population_size=settings.population,
        sampler=sampler,
        **sampling,
    )


def run_generations(
    calibration: Calibration,
    db: Path,
    *,
    executor: Executor | None,
    progress: bool | None,
    on_generation: Callable[[pyabc.History, range], None] | None = None,
) -> tuple[pyabc.History, str]:
    """Run (or continue) the ABC-SMC into ``db``; returns the history and why it stopped.

    Generations already in ``db`` are kept; each further generation is run
    with its own ``abc.run`` call on an ABCSMC freshly loaded from ``db``, so
    an uninterrupted run takes the same path as a resumed one (the same
    result, bit for bit) and ``on_generation`` reports each generation.  The
    ``gaussian`` likelihood is the exception: pyabc's temperature schedule
    plans over the generations left, so they run in one call, and a resumed
    run, though valid, is not bit-identical to an uninterrupted one.
    """
    s = calibration.spec.abc
    sampler = SeededSampler(calibration.spec.seed, executor, progress, s.max_simulations)
    url = f"sqlite:///{db}"
    abc = build_abc(calibration, sampler)
    if db.exists():
        history = abc.load(url, 1)
    else:
        history = abc.new(url, observed(calibration))
    reason = ""
    while True:
        done = history.max_t + 1
        if done >= s.generations:
            reason = f"{s.generations} generations"
            break
        if done > 0:
            pops = history.get_all_populations()
            last = pops[pops.t == history.max_t].iloc[0]
            if s.distance == "gaussian" and last.epsilon <= 1.0:
                reason = "temperature 1 reached (a sample of the posterior)"
                break
            if last.epsilon <= s.min_epsilon:
                reason = f"epsilon {last.epsilon:.4g} <= min_epsilon {s.min_epsilon:g}"
                break
            rate = history.get_nr_particles_per_population()[history.max_t] / last.samples
            if rate < s.min_acceptance_rate:
                reason = (
                    f"acceptance rate {rate:.3g} < min_acceptance_rate {s.min_acceptance_rate:g}"
                )
                break
            if history.total_nr_simulations >= s.max_simulations:
                reason = f"{history.total_nr_simulations} simulations >= max_simulations"
                break
            # a fresh ABCSMC continues from the database exactly as a resumed run does
            abc = build_abc(calibration, sampler)
            history = abc.load(url, 1)
        if s.distance == "gaussian":
            # the temperature schedule plans over the generations left, so they run in
            # one call (a resumed run continues validly, but not bit for bit)
            abc.run(max_nr_populations=s.generations - done)
        else:
            abc.run(max_nr_populations=1)
        history = abc.history
        if on_generation is not None:
            on_generation(history, range(done, history.max_t + 1))
    return history, reason
