"""Therapy schedules: what changes in the engine at which time.

Effects that last (knockouts, knockdowns, behaviour scaling such as
checkpoint blockade, cytokine blockade, depletion) are a pure function of the
time: every tick :func:`effective_tables` rebuilds the per-type tables from the
scenario's base values and the therapies active at that tick's start, so a
run restarted from a checkpoint applies exactly the same ones.  One-off
events (an adoptive transfer, the removal at the start of a depletion) happen
in the tick whose interval ``[t, t + dt)`` contains their time.  A systemic
drug follows one-compartment plasma kinetics (bolus doses decaying with the
plasma half-life) and enters the tissue either at every site (relaxing
towards the plasma level at the tissue-averaged permeability-surface product)
or at vessel sites only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

NEVER = math.inf


@dataclass(frozen=True)
class TimedEffect:
    """An effect active while ``start_min <= t < end_min``.

    ``kind`` is one of ``stat3_knockout``, ``stat3_knockdown`` (``value`` =
    efficiency), ``scale_behaviour`` (``behaviour``, ``value`` = factor),
    ``field_blockade`` (``field``, ``value`` = extra decay per min) or
    ``depletion`` (``value`` = fraction).
    """

    kind: str
    start_min: float
    end_min: float
    cell_types: tuple[int, ...] = ()
    field: int = -1
    behaviour: int = -1
    value: float = 0.0

    def active(self, t_min: float) -> bool:
        """Whether the effect applies in the tick starting at ``t_min``."""
        return self.start_min <= t_min < self.end_min


@dataclass(frozen=True)
class DrugSchedule:
    """Bolus doses into plasma, entering the tissue at every site or at vessels."""

    field: int
    dose_ng_per_ml: float
    first_dose_min: float
    every_min: float
    doses: int
    plasma_half_life_min: float
    exchange_per_min: float
    at_vessels: bool

    def plasma_ng_per_ml(self, t_min: float) -> float:
        """Plasma concentration at ``t_min``: the sum of decaying past doses."""
        total = 0.0
        k = math.log(2.0) / self.plasma_half_life_min
        for i in range(self.doses):
            t_dose = self.first_dose_min + i * self.every_min
            if t_dose > t_min:
                break
            total += self.dose_ng_per_ml * math.exp(-k * (t_min - t_dose))
        return total


@dataclass(frozen=True)
class Transfer:
    """Adoptive transfer of ``count`` cells of one type at ``time_min``."""

    cell_type: int
    count: int
    time_min: float
    stat3_knockout: bool


@dataclass
class EffectiveTables:
    """Per-type tables after the therapies active at one time."""

    knockout: np.ndarray
    k_on: np.ndarray
    decay_per_min: np.ndarray
    behaviour_scale: np.ndarray
    recruit_rate: np.ndarray


def effective_tables(
    effects: tuple[TimedEffect, ...],
    t_min: float,
    knockout: np.ndarray,
    k_on: np.ndarray,
    decay_per_min: np.ndarray,
    n_behaviours: int,
    recruit_rate: np.ndarray,
) -> EffectiveTables:
    """Apply the effects active at ``t_min`` to copies of the base tables."""
    out = EffectiveTables(
        knockout=knockout.copy(),
        k_on=k_on.copy(),
        decay_per_min=decay_per_min.copy(),
        behaviour_scale=np.ones((len(k_on), n_behaviours), dtype=np.float64),
        recruit_rate=recruit_rate.copy(),
    )
    for e in effects:
        if not e.active(t_min):
            continue
        types = list(e.cell_types)
        if e.kind == "stat3_knockout":
            out.knockout[types] = 1
        elif e.kind == "stat3_knockdown":
            out.k_on[types] *= 1.0 - e.value
        elif e.kind == "scale_behaviour":
            out.behaviour_scale[types, e.behaviour] *= e.value
        elif e.kind == "field_blockade":
            out.decay_per_min[e.field] += e.value
        elif e.kind == "depletion":
            out.recruit_rate[types] *= 1.0 - e.value
        else:  # pragma: no cover - the scenario compiler only emits the kinds above
            raise ValueError(f"unknown therapy kind {e.kind!r}")
    return out


@numba.njit(cache=True)
def tissue_exchange(
    conc_flat: np.ndarray, field: int, plasma: float, rate_per_min: float, dt_min: float
) -> None:
    """Relax the drug at every site towards the plasma level, exactly over dt."""
    keep = math.exp(-rate_per_min * dt_min)
    for s in range(conc_flat.shape[0]):
        conc_flat[s, field] = plasma + (conc_flat[s, field] - plasma) * keep


@numba.njit(cache=True)
def vessel_exchange(
    conc_flat: np.ndarray,
    vessel_sites: np.ndarray,
    field: int,
    plasma: float,
    rate_per_min: float,
    dt_min: float,
) -> None:
    """Relax the drug at each vessel site towards the plasma level, exactly over dt."""
    keep = math.exp(-rate_per_min * dt_min)
    for v in range(vessel_sites.shape[0]):
        s = vessel_sites[v]
        conc_flat[s, field] = plasma + (conc_flat[s, field] - plasma) * keep
