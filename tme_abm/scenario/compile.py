"""Compile a validated :class:`Scenario` into the engine's numeric tables.

Names become codes (fields and cell types in file order), rules are sorted
by (cell type, behaviour) as :func:`tme_abm.core.rules.evaluate_cell` needs,
and units are converted (half-lives to decay rates, days to ticks).
"""

from __future__ import annotations

import math

import numpy as np

from tme_abm.core.lattice import lattice_dims
from tme_abm.core.params import EngineParams, InitialCells, Placement
from tme_abm.core.rules import (
    B_CHEMOTAXIS,
    B_DEATH,
    B_DIVISION,
    B_KILL,
    B_RESISTANCE,
    B_SPEED,
    B_STAT3,
    behaviour_names,
    secretion_column,
    signal_names,
    transform_column,
    uptake_column,
)
from tme_abm.core.therapy import NEVER, DrugSchedule, TimedEffect, Transfer
from tme_abm.scenario.schema import (
    DrugTherapy,
    Scenario,
    TransferTherapy,
)
from tme_abm.scenario.tissue import placed_tissue

MIN_PER_DAY = 1440.0


def _therapies(
    sc: Scenario, fidx: dict[str, int], tidx: dict[str, int], bidx: dict[str, int]
) -> tuple[tuple[TimedEffect, ...], tuple[DrugSchedule, ...], tuple[Transfer, ...]]:
    """Therapies with names resolved: groups expand to their cell types."""

    def types_of(names: list[str]) -> tuple[int, ...]:
        out: list[int] = []
        for name in names:
            for member in sc.groups.get(name, [name]):
                if tidx[member] not in out:
                    out.append(tidx[member])
        return tuple(sorted(out))

    effects, drugs, transfers = [], [], []
    for th in sc.therapy:
        if isinstance(th, DrugTherapy):
            drugs.append(
                DrugSchedule(
                    field=fidx[th.field],
                    dose_ng_per_ml=th.dose_ng_per_ml,
                    first_dose_min=th.first_dose_day * MIN_PER_DAY,
                    every_min=(th.every_days or 0.0) * MIN_PER_DAY,
                    doses=th.doses,
                    plasma_half_life_min=th.plasma_half_life_min,
                    exchange_per_min=th.exchange_per_min,
                    at_vessels=th.entry == "vessels",
                )
            )
        elif isinstance(th, TransferTherapy):
            transfers.append(
                Transfer(tidx[th.cell_type], th.count, th.day * MIN_PER_DAY, th.stat3_knockout)
            )
        else:
            value = {
                "stat3_knockout": 1.0,
                "stat3_knockdown": getattr(th, "efficiency", 0.0),
                "scale_behaviour": getattr(th, "factor", 0.0),
                "field_blockade": getattr(th, "extra_decay_per_min", 0.0),
                "depletion": getattr(th, "fraction", 0.0),
            }[th.kind]
            effects.append(
                TimedEffect(
                    kind=th.kind,
                    start_min=th.start_day * MIN_PER_DAY,
                    end_min=NEVER if th.end_day is None else th.end_day * MIN_PER_DAY,
                    cell_types=types_of(getattr(th, "cell_types", [])),
                    field=fidx.get(getattr(th, "field", ""), -1),
                    behaviour=bidx.get(getattr(th, "behaviour", ""), -1),
                    value=value,
                )
            )
    return tuple(effects), tuple(drugs), tuple(transfers)


def compile_scenario(sc: Scenario, seed: int | None = None) -> EngineParams:
    """Turn a scenario into :class:`EngineParams`.

    Parameters
    ----------
    sc
        A scenario that passed :func:`tme_abm.scenario.load.validate_data`.
    seed
        Overrides ``sc.seed`` when given.
    """
    fields = tuple(sc.fields)
    types = tuple(sc.cell_types)
    fidx = {f: i for i, f in enumerate(fields)}
    tidx = {t: i for i, t in enumerate(types)}
    nf, nt = len(fields), len(types)
    dims = lattice_dims(tuple(sc.domain.shape))
    ndim = len(sc.domain.shape)

    # fields
    fs = list(sc.fields.values())
    diffusion = np.array([f.diffusion_um2_per_min for f in fs], dtype=np.float64)
    decay = np.array(
        [0.0 if f.half_life_min is None else math.log(2) / f.half_life_min for f in fs],
        dtype=np.float64,
    )
    bc_dirichlet = np.array([f.boundary == "dirichlet" for f in fs], dtype=np.bool_)
    bc_value = np.array([f.boundary_ng_per_ml for f in fs], dtype=np.float64)
    initial = np.array([f.initial_ng_per_ml for f in fs], dtype=np.float64)

    # behaviour base values
    bnames = behaviour_names(fields, types)
    bidx = {b: i for i, b in enumerate(bnames)}
    nb = len(bnames)
    base = np.zeros((nt, nb), dtype=np.float64)
    sec0, upt0, tr0 = secretion_column(nf), uptake_column(nf), transform_column(nf)
    kill_target = np.zeros((nt, nt), dtype=np.uint8)
    kill_capacity = np.zeros(nt, dtype=np.int64)
    chemotaxis_field = np.full(nt, -1, dtype=np.int64)
    infiltrates = np.zeros((nt, nt), dtype=np.bool_)
    push_sites = np.ones(nt, dtype=np.int64)
    death_release = np.zeros((nt, nf), dtype=np.float64)
    for t, ct in enumerate(sc.cell_types.values()):
        base[t, B_DIVISION] = ct.division_rate_per_min
        base[t, B_DEATH] = ct.death_rate_per_min
        base[t, B_SPEED] = ct.migration_speed_um_per_min
        base[t, B_CHEMOTAXIS] = ct.chemotaxis_bias
        base[t, B_KILL] = ct.kill_rate_per_min
        base[t, B_RESISTANCE] = ct.kill_resistance
        base[t, B_STAT3] = ct.stat3.constitutive
        for f, v in ct.secretion_ng_per_ml_per_min.items():
            base[t, sec0 + fidx[f]] = v
        for f, v in ct.uptake_per_min.items():
            base[t, upt0 + fidx[f]] = v
        for u, v in ct.transform_rate_per_min.items():
            base[t, tr0 + tidx[u]] = v
        for f, v in ct.death_release_ng_per_ml.items():
            death_release[t, fidx[f]] = v
        for target in ct.kill_targets:
            kill_target[t, tidx[target]] = 1
        kill_capacity[t] = ct.kill_capacity
        if ct.chemotaxis_field is not None:
            chemotaxis_field[t] = fidx[ct.chemotaxis_field]
        for other in ct.infiltrates:
            infiltrates[t, tidx[other]] = True
        push_sites[t] = ct.division_push_sites

    # rules, sorted by (type, behaviour); stable so file order is kept within a group
    snames = signal_names(fields, types)
    sidx = {s: i for i, s in enumerate(snames)}
    rules = sorted(sc.rules, key=lambda r: (tidx[r.cell_type], bidx[r.behaviour]))
    sat_up = base.copy()
    sat_down = base.copy()
    for r in rules:
        target = sat_up if r.direction == "increases" else sat_down
        target[tidx[r.cell_type], bidx[r.behaviour]] = r.saturation
    rule_offset = np.zeros(nt + 1, dtype=np.int64)
    for r in rules:
        rule_offset[tidx[r.cell_type] + 1] += 1
    rule_offset = np.cumsum(rule_offset)
    # per type: only types with a crowding or contact rule scan their neighbours
    need_contacts = np.zeros(nt, dtype=np.bool_)
    for r in rules:
        if r.signal == "crowding" or r.signal.startswith("contact:"):
            need_contacts[tidx[r.cell_type]] = True

    # STAT3
    st = [ct.stat3 for ct in sc.cell_types.values()]
    inputs = [(t, inp) for t, s in enumerate(st) for inp in s.inputs]
    input_offset = np.cumsum([0] + [len(s.inputs) for s in st]).astype(np.int64)
    inh = sc.stat3_inhibitor

    # recruitment
    recs = [ct.recruitment for ct in sc.cell_types.values()]

    centre = tuple(0.5 * n * sc.domain.site_um for n in dims)
    placements = []
    for pl in sc.placement:
        c = centre
        if pl.centre_um is not None:
            c = (0.0, *pl.centre_um) if ndim == 2 else tuple(pl.centre_um)
            if ndim == 2:
                c = (centre[0], c[1], c[2])
        placements.append(
            Placement(
                cell_type=tidx[pl.cell_type],
                region=pl.region,
                centre_um=tuple(float(x) for x in c),
                inner_um=pl.inner_radius_um,
                outer_um=pl.radius_um,
                fraction=pl.fraction,
            )
        )

    initial_cells, fixed_vessels = None, None
    if sc.tissue is not None:
        placed = placed_tissue(sc)
        initial_cells = InitialCells(placed.sites, placed.types, placed.stat3)
        fixed_vessels = placed.vessel_sites
        if not sc.tissue.add_placements:
            placements = []

    effects, drugs, transfers = _therapies(sc, fidx, tidx, bidx)
    return EngineParams(
        dims=dims,
        ndim=ndim,
        site_um=sc.domain.site_um,
        dt_min=sc.domain.dt_min,
        field_solver=sc.domain.field_solver,
        n_ticks=sc.n_ticks,
        seed=sc.seed if seed is None else int(seed),
        field_names=fields,
        diffusion_um2_per_min=diffusion,
        decay_per_min=decay,
        bc_dirichlet=bc_dirichlet,
        bc_value=bc_value,
        initial_conc=initial,
        type_names=types,
        base=base,
        sat_up=sat_up,
        sat_down=sat_down,
        rule_offset=rule_offset,
        rule_signal=np.array([sidx[r.signal] for r in rules], dtype=np.int64),
        rule_behaviour=np.array([bidx[r.behaviour] for r in rules], dtype=np.int64),
        rule_up=np.array([r.direction == "increases" for r in rules], dtype=np.bool_),
        rule_half_max=np.array([r.half_max for r in rules], dtype=np.float64),
        rule_hill=np.array([r.hill_power for r in rules], dtype=np.float64),
        need_contacts=need_contacts,
        n_signals=len(snames),
        k_on=np.array([s.activation_rate_per_min for s in st], dtype=np.float64),
        k_off=np.array([s.deactivation_rate_per_min for s in st], dtype=np.float64),
        socs3_production=np.array([s.socs3_production_per_min for s in st], dtype=np.float64),
        socs3_decay=np.array([s.socs3_decay_per_min for s in st], dtype=np.float64),
        socs3_half_max=np.array([s.socs3_half_max for s in st], dtype=np.float64),
        knockout=np.array([s.knockout for s in st], dtype=np.uint8),
        initial_stat3=np.array([s.initial for s in st], dtype=np.float64),
        input_offset=input_offset,
        input_field=np.array([fidx[i.field] for _, i in inputs], dtype=np.int64),
        input_weight=np.array([i.weight for _, i in inputs], dtype=np.float64),
        input_half_max=np.array([i.half_max_ng_per_ml for _, i in inputs], dtype=np.float64),
        input_hill=np.array([i.hill_power for _, i in inputs], dtype=np.float64),
        input_socs3_sensitive=np.array([i.socs3_sensitive for _, i in inputs], dtype=np.bool_),
        inhibitor_field=-1 if inh is None else fidx[inh.field],
        inhibitor_half_max=1.0 if inh is None else inh.half_max_ng_per_ml,
        inhibitor_hill=1.0 if inh is None else inh.hill_power,
        inhibitor_max=0.0 if inh is None else inh.max_inhibition,
        kill_target=kill_target,
        kill_capacity=kill_capacity,
        chemotaxis_field=chemotaxis_field,
        infiltrates=infiltrates,
        push_sites=push_sites,
        death_release=death_release,
        recruit_rate=np.array([0.0 if r is None else r.rate_per_vessel_per_min for r in recs]),
        recruit_signal=np.array(
            [-1 if r is None or r.signal is None else fidx[r.signal] for r in recs], dtype=np.int64
        ),
        recruit_half_max=np.array([1.0 if r is None else r.half_max_ng_per_ml for r in recs]),
        recruit_hill=np.array([1.0 if r is None else r.hill_power for r in recs]),
        recruit_basal=np.array([0.0 if r is None else r.basal_fraction for r in recs]),
        priming_type=np.array(
            [-1 if r is None or r.primed_by is None else tidx[r.primed_by] for r in recs],
            dtype=np.int64,
        ),
        priming_half_max=np.array(
            [1.0 if r is None else r.priming_half_max_per_site for r in recs]
        ),
        priming_hill=np.array([1.0 if r is None else r.priming_hill_power for r in recs]),
        priming_basal=np.array([0.0 if r is None else r.priming_basal_fraction for r in recs]),
        priming_delay_min=np.array(
            [0.0 if r is None else r.priming_delay_days * MIN_PER_DAY for r in recs]
        ),
        priming_suppressor_type=np.array(
            [
                -1 if r is None or r.priming_suppressed_by is None
                else tidx[r.priming_suppressed_by]
                for r in recs
            ],
            dtype=np.int64,
        ),
        priming_suppression_half_max=np.array(
            [1.0 if r is None else r.priming_suppression_half_max_per_site for r in recs]
        ),
        priming_suppression_hill=np.array(
            [1.0 if r is None else r.priming_suppression_hill_power for r in recs]
        ),
        initial_cells=initial_cells,
        placements=tuple(placements),
        fixed_vessel_sites=fixed_vessels,
        vessel_fraction=sc.vessels.fraction,
        vessel_min_distance_um=sc.vessels.min_distance_from_centre_um,
        centre_um=centre,
        effects=effects,
        drugs=drugs,
        transfers=transfers,
    )
