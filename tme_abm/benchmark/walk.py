"""The same simple rules in plain Mesa and in tme_abm's engine.

Rules (one cell type, one cell per site, bounded 2D Moore lattice): every
tick, each cell in a random order

1. with probability ``p_divide`` puts a daughter on a random empty
   neighbouring site (none empty: no division); the daughter does not act
   until the next tick;
2. then with probability ``p_move`` moves to a random empty neighbouring
   site (none empty: it stays).

:class:`MesaWalkModel` is a plain Mesa 3.3 model of these rules
(:class:`mesa.discrete_space.CellAgent` on an
:class:`~mesa.discrete_space.OrthogonalMooreGrid` of capacity 1, activated
with ``shuffle_do``).  :func:`walk_scenario` writes the same rules as a
scenario for the engine: a division rate ``r`` gives the per-tick
probability ``1 - exp(-r dt)`` and a migration speed ``v`` the probability
``v dt / mean Moore step`` (see :mod:`tme_abm.core.behaviours`), so
:func:`walk_rates` inverts those.  The engine also runs its whole tick
(STAT3, rules, act, compaction) on these cells; the comparison is of
agent-steps per second of the whole model step.
"""

from __future__ import annotations

import gc
import math
import time
from typing import Any

import mesa
import numba
import numpy as np
from mesa.discrete_space import CellAgent, OrthogonalMooreGrid

from tme_abm.benchmark.ticks import settle_thread_policy, thread_policy_report
from tme_abm.benchmark.timing import median
from tme_abm.core.engine import Engine
from tme_abm.core.lattice import moore_offsets
from tme_abm.scenario import compile_scenario, validate_data

SITE_UM = 20.0
DT_MIN = 1.0


def mean_moore_step_um(site_um: float = SITE_UM, ndim: int = 2) -> float:
    """Mean length of one Moore step (µm), as the engine computes it."""
    off = moore_offsets(ndim).astype(np.float64)
    return float(np.sqrt((off**2).sum(axis=1)).mean()) * site_um


def walk_rates(p_move: float, p_divide: float, dt_min: float = DT_MIN) -> tuple[float, float]:
    """Engine parameters giving these per-tick probabilities.

    Returns
    -------
    speed_um_per_min, division_rate_per_min
        ``p_move * mean_step / dt`` and ``-log(1 - p_divide) / dt``.
    """
    if not (0.0 <= p_move <= 1.0 and 0.0 <= p_divide < 1.0):
        raise ValueError("p_move must be in [0, 1] and p_divide in [0, 1)")
    speed = p_move * mean_moore_step_um() / dt_min
    rate = -math.log1p(-p_divide) / dt_min
    return speed, rate


def walk_scenario(
    shape: tuple[int, int], density: float, p_move: float, p_divide: float, seed: int = 1
) -> dict[str, Any]:
    """A scenario dict (no fields) of the walk-and-divide rules for the engine."""
    speed, rate = walk_rates(p_move, p_divide)
    return {
        "name": "bench_walk",
        "description": "random walk + division, for the Mesa comparison",
        "seed": seed,
        "domain": {
            "shape": list(shape), "site_um": SITE_UM, "dt_min": DT_MIN, "duration_days": 1.0,
        },
        "output": {"snapshot_every_min": 60.0, "cells": False},
        "cell_types": {
            "walker": {"division_rate_per_min": rate, "migration_speed_um_per_min": speed},
        },
        "placement": [{"cell_type": "walker", "region": "everywhere", "fraction": density}],
    }


def walk_engine(
    shape: tuple[int, int], density: float, p_move: float, p_divide: float, seed: int = 1
) -> Engine:
    """An engine running the walk-and-divide rules."""
    data = walk_scenario(shape, density, p_move, p_divide, seed)
    return Engine(compile_scenario(validate_data(data, "bench_walk"), seed=seed))


class WalkAgent(CellAgent):
    """A cell that divides into and moves to random empty neighbouring sites."""

    def __init__(self, model: MesaWalkModel, cell: Any) -> None:
        super().__init__(model)
        self.cell = cell

    def _empty_neighbour(self) -> Any:
        free = [c for c in self.cell.neighborhood if c.is_empty]
        return self.random.choice(free) if free else None

    def step(self) -> None:
        """Divide with ``p_divide``, then move with ``p_move``."""
        model = self.model
        if self.random.random() < model.p_divide:
            target = self._empty_neighbour()
            if target is not None:
                WalkAgent(model, target)
        if self.random.random() < model.p_move:
            target = self._empty_neighbour()
            if target is not None:
                self.cell = target


class MesaWalkModel(mesa.Model):
    """Plain-Mesa reference: :class:`WalkAgent` on a bounded Moore grid.

    Parameters
    ----------
    shape
        Grid ``(height, width)``.
    density
        Probability that each cell starts occupied.
    p_move, p_divide
        Per-step probabilities of the two rules.
    seed
        Passed to Mesa as ``rng``.
    """

    def __init__(
        self, shape: tuple[int, int], density: float, p_move: float, p_divide: float,
        seed: int = 1,
    ) -> None:
        super().__init__(rng=seed)
        self.p_move = p_move
        self.p_divide = p_divide
        self.grid = OrthogonalMooreGrid(shape, torus=False, capacity=1, random=self.random)
        for cell in self.grid.all_cells:
            if self.random.random() < density:
                WalkAgent(self, cell)

    def step(self) -> None:
        """Every agent acts once, in a random order."""
        self.agents.shuffle_do("step")


def release(model: mesa.Model) -> None:
    """Drop a Mesa model's agents and Mesa 3.3's class-level reference to it
    (``Agent._ids``, which otherwise keeps every model alive)."""
    model.remove_all_agents()
    ids = getattr(mesa.Agent, "_ids", None)
    if isinstance(ids, dict):
        ids.pop(model, None)


def _time_steps(step: Any, count: Any, ticks: int, repeats: int) -> dict[str, Any]:
    """Median agent-steps/s over ``repeats`` blocks of ``ticks`` steps."""
    rates, seconds, cells = [], [], []
    for _ in range(repeats):
        n_sum = 0
        t_sum = 0.0
        for _ in range(ticks):
            n = count()
            t0 = time.perf_counter()
            step()
            t_sum += time.perf_counter() - t0
            n_sum += n
        rates.append(n_sum / t_sum)
        seconds.append(t_sum / ticks)
        cells.append(n_sum / ticks)
    return {
        "agent_steps_per_s": median(rates),
        "seconds_per_tick": median(seconds),
        "mean_agents": float(np.mean(cells)),
        "samples_agent_steps_per_s": rates,
    }


def compare_with_mesa(
    n_agents: int,
    threads: list[int],
    repeats: int,
    ticks: int,
    density: float = 0.25,
    p_move: float = 0.5,
    p_divide: float = 0.001,
    seed: int = 1,
) -> dict[str, Any]:
    """Agent-steps/s of the rules in Mesa and in the engine, same run.

    The grid is square, sized so that ``density`` of it holds ``n_agents``.
    Each side runs one untimed warm-up step, then ``repeats`` blocks of
    ``ticks`` timed steps; agent-steps count the agents present at the start
    of each step.  The engine is timed at every thread count, after its
    thread policy (:mod:`tme_abm.core.threads`) has probed one thread
    against all and kept the faster (:func:`settle_thread_policy`).

    Returns
    -------
    dict
        ``mesa`` and ``engine`` (per thread count) timings, the rules'
        parameters and the grid shape.
    """
    side = max(8, round(math.sqrt(n_agents / density)))
    shape = (side, side)
    speed, rate = walk_rates(p_move, p_divide)
    out: dict[str, Any] = {
        "shape": list(shape),
        "density": density,
        "p_move": p_move,
        "p_divide": p_divide,
        "engine_speed_um_per_min": speed,
        "engine_division_rate_per_min": rate,
        "ticks_per_block": ticks,
        "repeats": repeats,
        "engine": {},
    }
    model = MesaWalkModel(shape, density, p_move, p_divide, seed)
    model.step()
    out["mesa"] = _time_steps(model.step, lambda m=model: len(m.agents), ticks, repeats)
    release(model)
    del model
    gc.collect()
    before = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            engine = walk_engine(shape, density, p_move, p_divide, seed)
            engine.step()
            settle_thread_policy(engine)
            out["engine"][t] = _time_steps(engine.step, lambda e=engine: e.cells.n, ticks, repeats)
            out["engine"][t]["thread_policy"] = thread_policy_report(engine)
    finally:
        numba.set_num_threads(before)
    return out
