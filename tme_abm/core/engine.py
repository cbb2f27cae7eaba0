"""One run's state and the tick that advances it, with no Mesa in sight.

:class:`Engine` owns the cell table, the field array and the vessel sites,
builds the initial state from :class:`~tme_abm.core.params.EngineParams`, and
advances one tick in this order (described for users in ``docs/ODD.md``,
section 3, "Process overview and scheduling"):

0. therapies: rebuild the per-type tables for the therapies active now,
   run this tick's one-off events (transfers, depletions), let dosed drugs
   enter from plasma, at every site or at vessels (:mod:`tme_abm.core.therapy`);
1. fields: secretion and uptake by cells, then implicit diffusion and decay;
2. sense + STAT3: each cell reads the fields at its site and updates STAT3
   and SOCS3;
3. rules: behaviour values from the signals;
4. act, colour by colour in a random order of colours: die, kill, divide,
   transform, move (parallel within a colour);
5. recruit immune cells at vessel sites;
6. drop dead cells and count.
``TMEModel`` wraps an Engine as a Mesa model; benchmarks and tests may use
the Engine directly.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from scipy.ndimage import distance_transform_edt

from tme_abm.core.behaviours import (
    EV_RECRUIT,
    EVENTS,
    act,
    colour_count,
    colour_period,
    recruit,
)
from tme_abm.core.cells import CELL_COLUMNS, CellTable, count_types
from tme_abm.core.fields import (
    apply_sources,
    diffuse_decay,
    diffusion_coefficients,
    field_means,
)
from tme_abm.core.lattice import distance_from_point_um, moore_offsets
from tme_abm.core.params import EngineParams
from tme_abm.core.random import (
    PURPOSE_DEPLETE,
    PURPOSE_ORDER,
    PURPOSE_PLACE,
    PURPOSE_TRANSFER,
    PURPOSE_VESSEL_PLACE,
    uniform_array,
)
from tme_abm.core.rules import B_STAT3, evaluate_rules, secretion_column, uptake_column
from tme_abm.core.spectral import ExactFieldStep, apply_uptake, scatter_sources
from tme_abm.core.stat3 import FLAG_STAT3_KNOCKOUT, update_stat3
from tme_abm.core.therapy import (
    Transfer,
    effective_tables,
    tissue_exchange,
    vessel_exchange,
)
from tme_abm.core.threads import ThreadPolicy

#: From these sizes a parallel kernel always runs on all of numba's threads.
#: Below them it runs on one thread or on all, as the engine's
#: :class:`~tme_abm.core.threads.ThreadPolicy` measures to be faster; below
#: the ``SERIAL_BELOW_*`` sizes always on one thread.  Results do not depend
#: on any of these (read at every call).
PARALLEL_MIN_FIELD_VOXELS = 1_000_000
PARALLEL_MIN_CELLS = 100_000
SERIAL_BELOW_FIELD_VOXELS = 50_000
SERIAL_BELOW_CELLS = 1_000


@contextmanager
def threads_for(work: int, kind: str, mid_threads: int = 1) -> Iterator[None]:
    """Run the enclosed kernels on all of numba's threads when ``work`` is at
    least ``PARALLEL_MIN_CELLS`` (kind "cells") or
    ``PARALLEL_MIN_FIELD_VOXELS`` (kind "fields"); on one thread below
    ``SERIAL_BELOW_CELLS`` or ``SERIAL_BELOW_FIELD_VOXELS``; otherwise on
    ``mid_threads`` (at most numba's setting)."""
    cells = kind == "cells"
    threshold = PARALLEL_MIN_CELLS if cells else PARALLEL_MIN_FIELD_VOXELS
    floor = SERIAL_BELOW_CELLS if cells else SERIAL_BELOW_FIELD_VOXELS
    before = numba.get_num_threads()
    want = before if work >= threshold else 1 if work < floor else min(mid_threads, before)
    if want == before:
        yield
        return
    numba.set_num_threads(want)
    try:
        yield
    finally:
        numba.set_num_threads(before)


class Engine:
    """The arrays of one run and the kernels that advance them.

    Parameters
    ----------
    params
        Compiled scenario.
    """

    def __init__(self, params: EngineParams) -> None:
        self.params = params
        p = params
        nz, ny, nx = p.dims
        self.n_sites = nz * ny * nx
        self.offsets = moore_offsets(p.ndim)
        steps = np.sqrt((self.offsets.astype(np.float64) ** 2).sum(axis=1))
        #: mean length of one Moore step (µm), so migration speeds come out right
        self.mean_step_um = float(steps.mean()) * p.site_um
        self.geom = (nz, ny, nx, self.offsets)
        nf = p.n_fields
        self.conc = np.empty((nz, ny, nx, nf), dtype=np.float32)
        self.conc[...] = p.initial_conc.astype(np.float32)
        self._diff_number = diffusion_coefficients(p.diffusion_um2_per_min, p.site_um, p.dt_min)
        #: the exact-in-time field step and its source array (None with "lod")
        self._exact: ExactFieldStep | None = None
        self._sources: np.ndarray | None = None
        if p.field_solver == "exact" and nf > 0:
            self._exact = ExactFieldStep(
                p.dims, p.diffusion_um2_per_min, p.site_um, p.dt_min, p.bc_dirichlet, p.bc_value
            )
            self._sources = np.zeros_like(self.conc)
        #: this tick's drug entry at vessels as (field, exchange rate, plasma level),
        #: for the exact field step (the LOD step applies it in step_therapies)
        self._vessel_entry: list[tuple[int, float, float]] = []
        n_behaviours = p.base.shape[1]
        self.cells = CellTable(self.n_sites, n_behaviours)
        self.tick = 0
        #: chooses the threads of mid-size kernels by timing ticks
        self.thread_policy = ThreadPolicy()
        self._mid_threads = 1  # this tick's choice
        #: lagged density (cells per site) of each type's priming type
        self.priming = np.zeros(p.n_types, dtype=np.float64)
        #: lagged density (cells per site) of each type's priming suppressor
        self.priming_suppression = np.zeros(p.n_types, dtype=np.float64)
        self._primed = np.flatnonzero(p.priming_type >= 0)  # types with systemic priming
        self._tables_for: tuple[bool, ...] | None = None  # active therapies of self.tables
        self._set_tables()
        self.events = np.zeros((len(EVENTS), p.n_types), dtype=np.int64)
        # act's scratch (about one int32 per site), kept so no tick re-faults it
        # (its middle axis is the colour period, from which act reads it too)
        per = colour_period(p.push_sites)
        self._act_listed = np.empty((nz * ny, per, (nx + per - 1) // per), dtype=np.int32)
        self._act_n_listed = np.empty((nz * ny, per), dtype=np.int32)
        self.vessel_sites = self._place_vessels()
        self._place_cells()
        self.evaluate_rules()

    # ------------------------------------------------------------------ setup
    def _distances(self, centre_um: tuple[float, float, float]) -> np.ndarray:
        return distance_from_point_um(
            self.params.dims, self.params.site_um, np.asarray(centre_um, dtype=np.float64)
        )

    def _place_vessels(self) -> np.ndarray:
        p = self.params
        if p.fixed_vessel_sites is not None:
            return np.asarray(p.fixed_vessel_sites, dtype=np.int64).copy()
        if p.vessel_fraction <= 0.0:
            return np.zeros(0, dtype=np.int64)
        sites = np.arange(self.n_sites, dtype=np.int64)
        u = uniform_array(p.seed, 0, sites, PURPOSE_VESSEL_PLACE, 0)
        far = self._distances(p.centre_um) >= p.vessel_min_distance_um
        return sites[(u < p.vessel_fraction) & far]

    def _place_cells(self) -> None:
        p = self.params
        all_sites = np.arange(self.n_sites, dtype=np.int64)
        given = p.initial_cells
        if given is not None:
            for t in np.unique(given.types):
                of_type = given.types == t
                stat3 = (given.stat3[of_type] if given.stat3 is not None
                         else float(p.initial_stat3[t]))
                self.cells.add(int(t), given.sites[of_type], stat3=stat3)
        for k, pl in enumerate(p.placements):
            if pl.region == "everywhere":
                region = np.ones(self.n_sites, dtype=bool)
            else:
                d = self._distances(pl.centre_um)
                region = (d <= pl.outer_um) & (d > pl.inner_um if pl.region == "annulus" else True)
            u = uniform_array(p.seed, k, all_sites, PURPOSE_PLACE, 0)
            chosen = all_sites[region & (u < pl.fraction) & (self.cells.site_cell < 0)]
            self.cells.add(pl.cell_type, chosen, stat3=float(p.initial_stat3[pl.cell_type]))

    # -------------------------------------------------------------- therapies
    def _set_tables(self) -> None:
        """Per-type tables with the therapies active at the current time
        (rebuilt only when the set of active therapies changes)."""
        p = self.params
        active = tuple(e.active(self.time_min) for e in p.effects)
        if active == self._tables_for:
            return
        self._tables_for = active
        self.tables = effective_tables(
            p.effects,
            self.time_min,
            p.knockout,
            p.k_on,
            p.decay_per_min,
            p.base.shape[1],
            p.recruit_rate,
        )
        scale = self.tables.behaviour_scale
        self.rules = (
            p.base * scale,
            p.sat_up * scale,
            p.sat_down * scale,
            p.rule_offset,
            p.rule_signal,
            p.rule_behaviour,
            p.rule_up,
            p.rule_half_max,
            p.rule_hill,
        )

    def _in_this_tick(self, t_min: float) -> bool:
        return self.time_min <= t_min < self.time_min + self.params.dt_min

    def step_therapies(self) -> None:
        """Therapy tables for now, this tick's one-off events, drug entry from plasma."""
        p = self.params
        self._set_tables()
        changed = False
        for e in p.effects:
            if e.kind == "depletion" and self._in_this_tick(e.start_min):
                self._deplete(e.cell_types, e.value)
                changed = True
        for k, tr in enumerate(p.transfers):
            if self._in_this_tick(tr.time_min):
                self._transfer(k, tr)
                changed = True
        if changed:
            self.evaluate_rules()
        self._vessel_entry = []
        for drug in p.drugs:
            plasma = drug.plasma_ng_per_ml(self.time_min)
            if drug.at_vessels and self._exact is not None:
                # exchange q (P - c) at vessels: a source q P and an uptake q,
                # both applied by step_fields inside the exact step
                self._vessel_entry.append((drug.field, drug.exchange_per_min, plasma))
            elif not drug.at_vessels:
                tissue_exchange(
                    self.conc_flat(), drug.field, plasma, drug.exchange_per_min, p.dt_min
                )
            elif len(self.vessel_sites):
                vessel_exchange(
                    self.conc_flat(),
                    self.vessel_sites,
                    drug.field,
                    plasma,
                    drug.exchange_per_min,
                    p.dt_min,
                )

    def _deplete(self, cell_types: tuple[int, ...], fraction: float) -> None:
        c = self.cells
        n = c.n
        u = uniform_array(self.params.seed, self.tick, c.id[:n], PURPOSE_DEPLETE, 0)
        doomed = np.isin(c.type[:n], cell_types) & (u < fraction)
        c.site_cell[c.site[:n][doomed]] = -1
        c.site[:n][doomed] = -1
        c.compact()

    def _transfer(self, index: int, tr: Transfer) -> None:
        """Place ``tr.count`` cells on the free sites nearest to a vessel
        (vessel sites first, then outward ring by ring; ties broken by
        counter-based draws), or on random free sites if there are no vessels.
        Warns if the lattice has too few free sites."""
        p, c = self.params, self.cells
        free = np.flatnonzero(c.site_cell < 0)
        if len(self.vessel_sites):
            not_vessel = np.ones(self.n_sites, dtype=bool)
            not_vessel[self.vessel_sites] = False
            distance = distance_transform_edt(not_vessel.reshape(p.dims)).ravel()[free]
        else:
            distance = np.zeros(len(free))
        ties = uniform_array(p.seed, self.tick, free + index * self.n_sites, PURPOSE_TRANSFER, 0)
        chosen = free[np.lexsort((ties, distance))[: tr.count]]
        if len(chosen) < tr.count:
            warnings.warn(
                f"transfer of {tr.count} {p.type_names[tr.cell_type]} cells: only "
                f"{len(chosen)} free sites on the lattice",
                RuntimeWarning,
                stacklevel=2,
            )
        rows = c.add(
            tr.cell_type,
            np.sort(chosen),
            stat3=0.0 if tr.stat3_knockout else float(p.initial_stat3[tr.cell_type]),
        )
        if tr.stat3_knockout:
            c.flags[rows] |= FLAG_STAT3_KNOCKOUT
        self.events[EV_RECRUIT, tr.cell_type] += len(rows)

    # ------------------------------------------------------------------ steps
    @property
    def time_min(self) -> float:
        """Simulated time in minutes."""
        return self.tick * self.params.dt_min

    def conc_flat(self) -> np.ndarray:
        """The field array viewed as (sites, fields)."""
        return self.conc.reshape(self.n_sites, self.params.n_fields)

    def _state(self) -> tuple:
        c = self.cells
        return (c.id, c.type, c.site, c.stat3, c.socs3, c.kills, c.flags, c.behaviours, c.site_cell)

    def evaluate_rules(self) -> None:
        """Recompute every cell's behaviours from its current signals."""
        p, c = self.params, self.cells
        nz, ny, nx, offsets = self.geom
        with threads_for(c.n, "cells", self._mid_threads):
            evaluate_rules(
                c.n,
                c.type,
                c.site,
                c.stat3,
                c.socs3,
                c.kills,
                c.site_cell,
                self.conc_flat(),
                nz,
                ny,
                nx,
                offsets,
                p.need_contacts,
                p.n_signals,
                *self.rules,
                c.behaviours,
            )

    def step_fields(self) -> None:
        """Secretion and uptake by cells, diffusion and decay over dt.

        With the exact solver, uptake (cells, and drug exchange at vessels) is
        applied per site first, and secretion is a source held over the tick
        inside the exact step; with "lod", secretion and uptake are solved per
        site and then the fields are diffused and decayed.
        """
        p, c = self.params, self.cells
        nf = p.n_fields
        if nf == 0:
            return
        sec0, upt0 = secretion_column(nf), uptake_column(nf)
        secretion = c.behaviours[: c.n, sec0 : sec0 + nf]
        uptake = c.behaviours[: c.n, upt0 : upt0 + nf]
        if self._exact is None:
            if c.n > 0:
                with threads_for(c.n, "cells", self._mid_threads):
                    apply_sources(self.conc, c.site[: c.n], secretion, uptake, p.dt_min)
            with threads_for(self.conc.size, "fields", self._mid_threads):
                diffuse_decay(
                    self.conc,
                    self._diff_number,
                    self.tables.decay_per_min,
                    p.dt_min,
                    p.bc_dirichlet,
                    p.bc_value,
                )
            return
        sources = self._sources
        with threads_for(c.n, "cells", self._mid_threads):
            apply_uptake(self.conc, c.site[: c.n], uptake, p.dt_min)
            scatter_sources(sources, c.site[: c.n], secretion)
        if self._vessel_entry and len(self.vessel_sites):
            flat, src = self.conc_flat(), sources.reshape(self.n_sites, nf)
            for field, rate, plasma in self._vessel_entry:
                keep = np.float32(np.exp(-rate * p.dt_min))
                flat[self.vessel_sites, field] *= keep
                src[self.vessel_sites, field] += np.float32(rate * plasma)
        with threads_for(self.conc.size, "fields", self._mid_threads):
            self._exact.step(
                self.conc, self.tables.decay_per_min, sources, workers=numba.get_num_threads()
            )

    def step_stat3(self) -> None:
        """Every cell senses its site and updates STAT3 and SOCS3."""
        p, c = self.params, self.cells
        with threads_for(c.n, "cells", self._mid_threads):
            update_stat3(
                c.n,
                c.type,
                c.site,
                c.flags,
                c.stat3,
                c.socs3,
                c.behaviours[:, B_STAT3],
                self.conc_flat(),
                p.dt_min,
                self.tables.k_on,
                p.k_off,
                p.socs3_production,
                p.socs3_decay,
                p.socs3_half_max,
                self.tables.knockout,
                p.input_offset,
                p.input_field,
                p.input_weight,
                p.input_half_max,
                p.input_hill,
                p.input_socs3_sensitive,
                p.inhibitor_field,
                p.inhibitor_half_max,
                p.inhibitor_hill,
                p.inhibitor_max,
            )

    def _primed_recruit_rate(self) -> np.ndarray:
        """Recruitment rates after systemic priming; advances the lagged
        priming densities by one tick (exact for a first-order lag)."""
        p = self.params
        rate = self.tables.recruit_rate.copy()
        primed = self._primed
        if len(primed) == 0:
            return rate
        density = self.counts()[p.priming_type[primed]] / self.n_sites
        delay = p.priming_delay_min[primed]
        keep = np.zeros_like(delay)  # no delay: follow the density at once
        lagged = delay > 0
        keep[lagged] = np.exp(-p.dt_min / delay[lagged])
        self.priming[primed] = density + (self.priming[primed] - density) * keep
        x = (self.priming[primed] / p.priming_half_max[primed]) ** p.priming_hill[primed]
        basal = p.priming_basal[primed]
        primed_part = x / (1.0 + x)
        suppressor = p.priming_suppressor_type[primed]
        held = suppressor >= 0
        if held.any():
            which = primed[held]
            d = self.counts()[suppressor[held]] / self.n_sites
            lag = self.priming_suppression
            lag[which] = d + (lag[which] - d) * keep[held]
            y = (lag[which] / p.priming_suppression_half_max[which]) ** (
                p.priming_suppression_hill[which]
            )
            primed_part[held] /= 1.0 + y
        rate[primed] *= basal + (1.0 - basal) * primed_part
        return rate

    def step_act(self) -> None:
        """Cells act once each, colour by colour (see :func:`act`); then recruitment."""
        p, c = self.params, self.cells
        n0 = c.n
        n_colours = colour_count(p.dims[0], self._act_listed.shape[1])
        keys = uniform_array(p.seed, self.tick, np.arange(n_colours), PURPOSE_ORDER, 0)
        colours = np.argsort(keys, kind="stable").astype(np.int64)
        c.ensure_capacity(2 * n0 + 1)
        with threads_for(n0, "cells", self._mid_threads):
            n, c.next_id = act(
                n0,
                colours,
                numba.config.NUMBA_NUM_THREADS,
                p.seed,
                self.tick,
                p.dt_min,
                self.mean_step_um,
                c.next_id,
                self.geom,
                self._state(),
                self.rules,
                p.need_contacts,
                p.n_signals,
                p.kill_target,
                p.kill_capacity,
                p.chemotaxis_field,
                p.infiltrates,
                p.push_sites,
                p.death_release,
                self.conc_flat(),
                self.events,
                self._act_listed,
                self._act_n_listed,
            )
        c.n = n
        c.compact()  # before recruitment, whose priming counts the live cells
        c.ensure_capacity(c.n + len(self.vessel_sites) * p.n_types + 1)
        with threads_for(c.n, "cells", self._mid_threads):
            n, c.next_id = self._recruit()
        c.n = n

    def _recruit(self) -> tuple[int, int]:
        """Recruitment at the vessels (see :func:`recruit`): ``(n, next_id)``."""
        p, c = self.params, self.cells
        rate = self._primed_recruit_rate()  # advances the priming lag every tick
        if len(self.vessel_sites) == 0 or not np.any(rate > 0.0):
            return c.n, c.next_id  # nothing can enter: the kernel would draw nothing
        return recruit(
            c.n,
            p.seed,
            self.tick,
            p.dt_min,
            c.next_id,
            self.vessel_sites,
            self.geom,
            self._state(),
            self.rules,
            p.need_contacts,
            p.n_signals,
            rate,
            p.recruit_signal,
            p.recruit_half_max,
            p.recruit_hill,
            p.recruit_basal,
            p.initial_stat3,
            self.conc_flat(),
            self.events,
        )

    def step(self) -> None:
        """Advance one tick (events of this tick are left in ``self.events``)."""
        self._mid_threads = self.thread_policy.threads(numba.get_num_threads())
        start = time.perf_counter()
        self.events[...] = 0
        self.step_therapies()
        self.step_fields()
        self.step_stat3()
        self.evaluate_rules()
        self.step_act()
        self.tick += 1
        self.thread_policy.record(time.perf_counter() - start)

    # --------------------------------------------------------------- readouts
    def counts(self) -> np.ndarray:
        """Number of cells of each type."""
        c = self.cells
        with threads_for(c.n, "cells", self._mid_threads):
            return count_types(c.type, c.n, self.params.n_types)

    def mean_stat3(self, counts: np.ndarray | None = None) -> np.ndarray:
        """Mean STAT3 activation of each type (NaN where a type is absent);
        ``counts``: this tick's :meth:`counts`, if the caller has them."""
        c = self.cells
        nt = self.params.n_types
        total = np.bincount(c.type[: c.n], weights=c.stat3[: c.n], minlength=nt)
        if counts is None:
            counts = self.counts()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)

    def field_means(self) -> np.ndarray:
        """Mean concentration of each field over the lattice (ng/mL)."""
        return field_means(self.conc)

    def cell_type_grid(self) -> np.ndarray:
        """Lattice of cell-type codes (-1 empty) in the user-facing shape."""
        c = self.cells
        n = c.n  # read once: a viewer may call this while another thread steps
        grid = np.full(self.n_sites, -1, dtype=np.int8)
        grid[c.site[:n]] = c.type[:n]
        return grid.reshape(self.params.shape)

    def field_grid(self, index: int) -> np.ndarray:
        """One field as a float32 array in the user-facing shape."""
        return np.ascontiguousarray(self.conc[..., index]).reshape(self.params.shape)

    # ------------------------------------------------------------- checkpoint
    def checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Arrays and scalars that restore this exact state with :meth:`restore`."""
        c = self.cells
        arrays = {name: arr.copy() for name, arr in c.columns().items()}
        arrays["behaviours"] = c.behaviours[: c.n].copy()
        arrays["conc"] = self.conc.copy()
        arrays["priming"] = self.priming.copy()
        arrays["priming_suppression"] = self.priming_suppression.copy()
        arrays["vessel_sites"] = self.vessel_sites.copy()
        return arrays, {"tick": self.tick, "next_id": c.next_id, "n_cells": c.n}

    def _check_restorable(self, arrays: dict[str, np.ndarray], scalars: dict[str, int]) -> None:
        p = self.params
        need = [name for name, _, _ in CELL_COLUMNS] + ["behaviours", "conc", "priming"]
        missing = [k for k in need if k not in arrays]
        if missing:
            raise ValueError(f"checkpoint lacks {', '.join(missing)}")
        n = int(scalars["n_cells"])
        if arrays["conc"].shape != self.conc.shape:
            raise ValueError(
                f"checkpoint fields have shape {arrays['conc'].shape}, this scenario's "
                f"{self.conc.shape} (lattice z, y, x and number of fields)"
            )
        if arrays["behaviours"].shape != (n, self.cells.behaviours.shape[1]):
            raise ValueError(
                f"checkpoint behaviours have shape {arrays['behaviours'].shape}, expected "
                f"({n}, {self.cells.behaviours.shape[1]})"
            )
        if len(arrays["priming"]) != p.n_types:
            raise ValueError(
                f"checkpoint has {len(arrays['priming'])} cell types, this scenario {p.n_types}"
            )
        types = arrays["type"]
        if n and (types.min() < 0 or types.max() >= p.n_types):
            raise ValueError("checkpoint cell types do not fit this scenario")
        sites = arrays["site"]
        if n and (sites.min() < 0 or sites.max() >= self.n_sites):
            raise ValueError("checkpoint cell sites lie outside this lattice")
        vessels = arrays.get("vessel_sites")
        if vessels is not None and len(vessels) and (
            vessels.min() < 0 or vessels.max() >= self.n_sites
        ):
            raise ValueError("checkpoint vessel sites lie outside this lattice")

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict[str, int]) -> None:
        """Replace the state with one saved by :meth:`checkpoint`.

        Raises
        ------
        ValueError
            If the arrays do not fit this engine (another lattice, other
            fields or cell types, or a missing array); the state is then unchanged.
        """
        self._check_restorable(arrays, scalars)
        c = self.cells
        n = int(scalars["n_cells"])
        c.n = 0
        c.ensure_capacity(n + 1)
        for name, _, _ in CELL_COLUMNS:
            getattr(c, name)[:n] = arrays[name]
        c.behaviours[:n] = arrays["behaviours"]
        c.n = n
        c.next_id = int(scalars["next_id"])
        c.site_cell[:] = -1
        c.site_cell[c.site[:n]] = np.arange(n, dtype=np.int32)
        self.conc[...] = arrays["conc"]
        self.priming[:] = arrays["priming"]
        # absent from checkpoints written before priming suppression existed
        self.priming_suppression[:] = arrays.get("priming_suppression", 0.0)
        # absent from checkpoints written before format 1.2 (then placed as at the start)
        if "vessel_sites" in arrays:
            self.vessel_sites = np.asarray(arrays["vessel_sites"], dtype=np.int64).copy()
        self.tick = int(scalars["tick"])
        self._set_tables()
