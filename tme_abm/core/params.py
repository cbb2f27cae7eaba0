"""The numeric tables a run is compiled into (``tme_abm.scenario`` fills them).

Everything the engine needs is here as plain numbers and numpy arrays indexed
by field and cell-type codes, so the kernels never see names or dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tme_abm.core.therapy import DrugSchedule, TimedEffect, Transfer


@dataclass(frozen=True)
class Placement:
    """Initial cells of one type in a region.

    ``region`` is ``"disc"`` (a ball in 3D: distance <= outer_um),
    ``"annulus"`` (inner_um < distance <= outer_um) or ``"everywhere"``;
    each free site of the region is filled with probability ``fraction``.
    """

    cell_type: int
    region: str
    centre_um: tuple[float, float, float]
    inner_um: float
    outer_um: float
    fraction: float


@dataclass(frozen=True)
class InitialCells:
    """Cells given one by one (from a tissue table): flat sites, type codes, STAT3.

    ``stat3`` None: each type's initial STAT3.  Sites are distinct.
    """

    sites: np.ndarray
    types: np.ndarray
    stat3: np.ndarray | None = None


@dataclass(frozen=True)
class EngineParams:
    """All numbers of one run, with field and cell-type names resolved to codes."""

    # domain
    dims: tuple[int, int, int]  # (nz, ny, nx); nz == 1 in 2D
    ndim: int
    site_um: float
    dt_min: float
    n_ticks: int
    seed: int
    # fields
    field_names: tuple[str, ...]
    diffusion_um2_per_min: np.ndarray
    decay_per_min: np.ndarray
    bc_dirichlet: np.ndarray
    bc_value: np.ndarray
    initial_conc: np.ndarray
    # cell types and rules
    type_names: tuple[str, ...]
    base: np.ndarray  # (nt, nb) behaviour base values
    sat_up: np.ndarray
    sat_down: np.ndarray
    rule_offset: np.ndarray
    rule_signal: np.ndarray
    rule_behaviour: np.ndarray
    rule_up: np.ndarray
    rule_half_max: np.ndarray
    rule_hill: np.ndarray
    need_contacts: np.ndarray  # bool per type: its rules read crowding/contacts
    n_signals: int
    # STAT3
    k_on: np.ndarray
    k_off: np.ndarray
    socs3_production: np.ndarray
    socs3_decay: np.ndarray
    socs3_half_max: np.ndarray
    knockout: np.ndarray
    initial_stat3: np.ndarray
    input_offset: np.ndarray
    input_field: np.ndarray
    input_weight: np.ndarray
    input_half_max: np.ndarray
    input_hill: np.ndarray
    input_socs3_sensitive: np.ndarray
    inhibitor_field: int
    inhibitor_half_max: float
    inhibitor_hill: float
    inhibitor_max: float
    # actions
    kill_target: np.ndarray  # (nt, nt) uint8: killer type x target type
    kill_capacity: np.ndarray
    chemotaxis_field: np.ndarray
    infiltrates: np.ndarray  # (nt, nt) bool: a moving type may swap into a site of this type
    push_sites: np.ndarray  # (nt) int64: how far a dividing cell may push (1: contact inhibition)
    death_release: np.ndarray  # (nt, nf) ng/mL added to the site of a dying cell
    recruit_rate: np.ndarray
    recruit_signal: np.ndarray
    recruit_half_max: np.ndarray
    recruit_hill: np.ndarray
    recruit_basal: np.ndarray
    priming_type: np.ndarray  # (nt) int, -1: no systemic priming
    priming_half_max: np.ndarray  # cells per site
    priming_hill: np.ndarray
    priming_basal: np.ndarray
    priming_delay_min: np.ndarray
    priming_suppressor_type: np.ndarray  # (nt) int, -1: priming not suppressed
    priming_suppression_half_max: np.ndarray  # cells per site
    priming_suppression_hill: np.ndarray
    # initial state: listed cells first, then the placements on free sites
    initial_cells: InitialCells | None = None
    placements: tuple[Placement, ...] = ()
    fixed_vessel_sites: np.ndarray | None = None  # sorted flat sites; None: random vessels
    vessel_fraction: float = 0.0
    vessel_min_distance_um: float = 0.0
    centre_um: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # therapies
    effects: tuple[TimedEffect, ...] = ()
    drugs: tuple[DrugSchedule, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    # numerics
    field_solver: str = "exact"  # "exact" (spectral, exact in time) or "lod"

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    @property
    def n_types(self) -> int:
        return len(self.type_names)

    @property
    def shape(self) -> tuple[int, ...]:
        """Lattice shape as users see it: (ny, nx) or (nz, ny, nx)."""
        return self.dims[1:] if self.ndim == 2 else self.dims
