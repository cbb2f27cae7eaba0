"""The scenario file's schema: pydantic models, unknown keys forbidden.

Units are in key names (``site_um``, ``half_life_min``,
``diffusion_um2_per_min``).  Field-level checks (types, ranges) live on the
models; checks that need the whole file (a rule naming an unknown field or
cell type, a snapshot interval longer than the run) live in
:func:`cross_check`, which returns every problem with its key path instead
of stopping at the first.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tme_abm.core.rules import FIXED_BEHAVIOURS, FIXED_SIGNALS

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)]
NonNeg = Annotated[float, Field(ge=0)]
Pos = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Domain(_Strict):
    """Lattice and clock."""

    shape: list[Annotated[int, Field(ge=3, le=100_000)]] = Field(
        min_length=2, max_length=3, description="[ny, nx] or [nz, ny, nx] sites"
    )
    site_um: Pos = Field(description="lattice spacing (µm)")
    dt_min: Pos = Field(description="time step (minutes)")
    duration_days: Pos = Field(description="simulated time (days)")


class FieldSpec(_Strict):
    """One diffusing substance (cytokine, chemokine, drug)."""

    label: str = ""
    units: str = "ng/mL"
    diffusion_um2_per_min: NonNeg
    half_life_min: Pos | None = Field(default=None, description="omit for no decay")
    initial_ng_per_ml: NonNeg = 0.0
    boundary: Literal["no_flux", "dirichlet"] = "no_flux"
    boundary_ng_per_ml: NonNeg = 0.0


class Stat3Input(_Strict):
    """A field that switches STAT3 on through a Hill response."""

    field: Name
    weight: NonNeg = 1.0
    half_max_ng_per_ml: Pos
    hill_power: Pos = 1.0
    socs3_sensitive: bool = False


class Stat3Spec(_Strict):
    """STAT3 and SOCS3 parameters of one cell type."""

    constitutive: NonNeg = 0.0
    activation_rate_per_min: NonNeg = 0.0
    deactivation_rate_per_min: Pos = 0.01
    socs3_production_per_min: NonNeg = 0.0
    socs3_decay_per_min: NonNeg = 0.01
    socs3_half_max: Pos = 1.0
    inputs: list[Stat3Input] = []
    knockout: bool = False
    initial: Fraction = 0.0


class Recruitment(_Strict):
    """Entry of new cells of this type at vessel sites."""

    rate_per_vessel_per_min: NonNeg
    signal: Name | None = None
    half_max_ng_per_ml: Pos = 1.0
    hill_power: Pos = 1.0
    basal_fraction: Fraction = 0.0


class CellType(_Strict):
    """Base behaviour of one cell type (rules then modulate it)."""

    label: str = ""
    colour: str = Field(default="#808080", pattern=r"^#[0-9a-fA-F]{6}$")
    division_rate_per_min: NonNeg = 0.0
    death_rate_per_min: NonNeg = 0.0
    migration_speed_um_per_min: NonNeg = 0.0
    chemotaxis_field: Name | None = None
    chemotaxis_bias: Fraction = 0.0
    kill_rate_per_min: NonNeg = 0.0
    kill_targets: list[Name] = []
    kill_capacity: Annotated[int, Field(ge=0, le=30000)] = 0
    kill_resistance: Fraction = 0.0
    transform_rate_per_min: dict[Name, NonNeg] = {}
    secretion_ng_per_ml_per_min: dict[Name, NonNeg] = {}
    uptake_per_min: dict[Name, NonNeg] = {}
    stat3: Stat3Spec = Stat3Spec()
    recruitment: Recruitment | None = None


class Rule(_Strict):
    """In ``cell_type``, ``signal`` increases/decreases ``behaviour``."""

    cell_type: Name
    signal: str
    direction: Literal["increases", "decreases"]
    behaviour: str
    saturation: NonNeg
    half_max: Pos
    hill_power: Pos = 1.0
    note: str = ""


class Placement(_Strict):
    """Initial cells of one type in a region around a centre (default: the middle)."""

    cell_type: Name
    region: Literal["disc", "annulus", "everywhere"]
    radius_um: NonNeg = 0.0
    inner_radius_um: NonNeg = 0.0
    centre_um: list[float] | None = None
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0


class Vessels(_Strict):
    """Vessel sites, where immune cells enter."""

    fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    min_distance_from_centre_um: NonNeg = 0.0


class Stat3Inhibitor(_Strict):
    """A field that inhibits STAT3 activation in every cell it reaches."""

    field: Name
    half_max_ng_per_ml: Pos
    hill_power: Pos = 1.0
    max_inhibition: Fraction = 1.0


class Output(_Strict):
    """What the run file records."""

    snapshot_every_min: Pos
    fields: list[Name] | None = None
    cells: bool = True
    compression_level: Annotated[int, Field(ge=0, le=9)] = 1


class Scenario(_Strict):
    """A whole scenario file."""

    name: Name
    description: str = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    domain: Domain
    fields: dict[Name, FieldSpec] = {}
    cell_types: dict[Name, CellType] = Field(min_length=1)
    rules: list[Rule] = []
    placement: list[Placement] = []
    vessels: Vessels = Vessels()
    stat3_inhibitor: Stat3Inhibitor | None = None
    output: Output

    @property
    def n_ticks(self) -> int:
        """Number of ticks in the run (duration / dt, rounded)."""
        return max(1, round(self.domain.duration_days * 1440.0 / self.domain.dt_min))


def allowed_behaviours(scenario: Scenario) -> list[str]:
    """Every behaviour name a rule may use in this scenario."""
    return (
        list(FIXED_BEHAVIOURS)
        + [f"secretion:{f}" for f in scenario.fields]
        + [f"uptake:{f}" for f in scenario.fields]
        + [f"transform:{t}" for t in scenario.cell_types]
    )


def allowed_signals(scenario: Scenario) -> list[str]:
    """Every signal name a rule may use in this scenario."""
    return (
        list(scenario.fields) + list(FIXED_SIGNALS) + [f"contact:{t}" for t in scenario.cell_types]
    )


def _one_of(names) -> str:
    names = list(names)
    return ", ".join(names) if names else "(none defined)"


def cross_check(sc: Scenario) -> list[tuple[str, str]]:
    """Problems that need the whole file, as (key path, message) pairs."""
    problems: list[tuple[str, str]] = []
    fields = set(sc.fields)
    types = set(sc.cell_types)

    def need_field(path: str, name: str | None) -> None:
        if name is not None and name not in fields:
            problems.append((path, f"unknown field {name!r}; defined fields: {_one_of(sc.fields)}"))

    def need_type(path: str, name: str) -> None:
        if name not in types:
            problems.append(
                (path, f"unknown cell type {name!r}; defined types: {_one_of(sc.cell_types)}")
            )

    if len(sc.cell_types) > 127:
        problems.append(("cell_types", "at most 127 cell types are allowed"))
    ndim = len(sc.domain.shape)
    for name, f in sc.fields.items():
        if f.boundary == "no_flux" and f.boundary_ng_per_ml != 0:
            problems.append(
                (f"fields.{name}.boundary_ng_per_ml", 'only used with boundary = "dirichlet"')
            )
    for tname, ct in sc.cell_types.items():
        p = f"cell_types.{tname}"
        need_field(f"{p}.chemotaxis_field", ct.chemotaxis_field)
        if ct.chemotaxis_bias > 0 and ct.chemotaxis_field is None:
            problems.append((f"{p}.chemotaxis_bias", "needs chemotaxis_field to be set"))
        for k, target in enumerate(ct.kill_targets):
            need_type(f"{p}.kill_targets.{k}", target)
        for target in ct.transform_rate_per_min:
            need_type(f"{p}.transform_rate_per_min.{target}", target)
            if target == tname:
                problems.append(
                    (f"{p}.transform_rate_per_min.{target}", "a type cannot transform into itself")
                )
        for key in ("secretion_ng_per_ml_per_min", "uptake_per_min"):
            for fname in getattr(ct, key):
                need_field(f"{p}.{key}.{fname}", fname)
        for k, inp in enumerate(ct.stat3.inputs):
            need_field(f"{p}.stat3.inputs.{k}.field", inp.field)
        if ct.recruitment is not None:
            need_field(f"{p}.recruitment.signal", ct.recruitment.signal)
    behaviours = set(allowed_behaviours(sc))
    signals = set(allowed_signals(sc))
    saturations: dict[tuple[str, str, str], tuple[int, float]] = {}
    for k, rule in enumerate(sc.rules):
        p = f"rules.{k}"
        need_type(f"{p}.cell_type", rule.cell_type)
        if rule.signal not in signals:
            problems.append(
                (
                    f"{p}.signal",
                    f"unknown signal {rule.signal!r}; allowed: {_one_of(allowed_signals(sc))}",
                )
            )
        if rule.behaviour not in behaviours:
            problems.append(
                (
                    f"{p}.behaviour",
                    f"unknown behaviour {rule.behaviour!r}; "
                    f"allowed: {_one_of(allowed_behaviours(sc))}",
                )
            )
        if rule.behaviour in ("chemotaxis_bias", "kill_resistance") and rule.saturation > 1:
            problems.append((f"{p}.saturation", f"{rule.behaviour} is a fraction: must be <= 1"))
        key = (rule.cell_type, rule.behaviour, rule.direction)
        if key in saturations and saturations[key][1] != rule.saturation:
            first = saturations[key][0]
            problems.append(
                (
                    f"{p}.saturation",
                    f"rules {first} and {k} both {rule.direction[:-1]} {rule.behaviour} of "
                    f"{rule.cell_type} but saturate at different values "
                    f"({saturations[key][1]} and {rule.saturation}); use one value",
                )
            )
        saturations.setdefault(key, (k, rule.saturation))
    for k, pl in enumerate(sc.placement):
        p = f"placement.{k}"
        need_type(f"{p}.cell_type", pl.cell_type)
        if pl.region in ("disc", "annulus") and pl.radius_um <= 0:
            problems.append((f"{p}.radius_um", f"must be > 0 for region {pl.region!r}"))
        if pl.region == "annulus" and pl.inner_radius_um >= pl.radius_um:
            problems.append((f"{p}.inner_radius_um", "must be smaller than radius_um"))
        if pl.centre_um is not None and len(pl.centre_um) != ndim:
            problems.append(
                (f"{p}.centre_um", f"needs {ndim} coordinates (µm, in the order of domain.shape)")
            )
    if sc.stat3_inhibitor is not None:
        need_field("stat3_inhibitor.field", sc.stat3_inhibitor.field)
    for k, fname in enumerate(sc.output.fields or []):
        need_field(f"output.fields.{k}", fname)
    duration_min = sc.domain.duration_days * 1440.0
    if sc.output.snapshot_every_min > duration_min:
        problems.append(
            (
                "output.snapshot_every_min",
                f"{sc.output.snapshot_every_min:g} min is longer than the run "
                f"({duration_min:g} min = domain.duration_days {sc.domain.duration_days:g})",
            )
        )
    if sc.domain.dt_min > duration_min:
        problems.append(("domain.dt_min", "longer than the run (domain.duration_days)"))
    if sc.output.snapshot_every_min < sc.domain.dt_min:
        problems.append(
            (
                "output.snapshot_every_min",
                f"shorter than one tick (domain.dt_min = {sc.domain.dt_min:g})",
            )
        )
    return problems
