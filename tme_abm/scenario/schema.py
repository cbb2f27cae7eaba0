"""The scenario file's schema: pydantic models, unknown keys forbidden.

Units are in key names (``site_um``, ``half_life_min``,
``diffusion_um2_per_min``).  Field-level checks (types, ranges) live on the
models.  Checks that need the whole file return every problem with its key
path instead of stopping at the first: :func:`name_problems` (a rule naming
an unknown field or cell type, ...) reads the raw data, so it reports even
when values elsewhere are invalid; :func:`consistency_problems` (a snapshot
interval longer than the run, ...) needs a validated scenario.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tme_abm.core.rules import FIXED_SIGNALS, behaviour_names, signal_names

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=32)]
NonNeg = Annotated[float, Field(ge=0)]
Pos = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    # inf and nan are never meaningful parameters: refuse them at the key
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: Field names that would clash with the run file's coordinates or with the
#: built-in signals of rules (``stat3``, ``crowding``, ...).
RESERVED_FIELD_NAMES: tuple[str, ...] = ("time", "x", "y", "z", *FIXED_SIGNALS)
#: The run file labels an empty site with this name (code -1).
RESERVED_TYPE_NAMES: tuple[str, ...] = ("empty",)

#: Most lattice sites: site and cell indices are 32-bit in the kernels.
MAX_SITES = 2**31 - 1
#: Most ticks a scenario may ask for at all (the tick counter and the random
#: streams' keys stay far inside 32 bits); :mod:`tme_abm.scenario.budget`
#: refuses far fewer unless a large run is asked for explicitly.
MAX_TICKS_HARD = 2**31 - 1
#: Largest diffusion number ``D dt / dx**2`` per tick.  The implicit solver's
#: last pivot on a no-flux line is O(1) computed from O(r) terms, so its
#: relative rounding error is ~r * 2.2e-16; at 1e8 that is 2e-8 (mass kept to
#: that), and beyond ~1e16 the pivot is lost entirely (division by zero).
#: A field with r = 1e8 spreads ~1.4e4 sites per tick: uniform on any lattice.
MAX_DIFFUSION_NUMBER = 1e8


class Domain(_Strict):
    """Lattice and clock."""

    shape: list[Annotated[int, Field(ge=3, le=100_000)]] = Field(
        min_length=2, max_length=3, description="[ny, nx] or [nz, ny, nx] sites"
    )
    site_um: Pos = Field(description="lattice spacing (µm)")
    dt_min: Pos = Field(description="time step (minutes)")
    duration_days: Pos = Field(description="simulated time (days)")
    field_solver: Literal["exact", "lod"] = Field(
        default="exact",
        description='"exact": diffusion, decay and secretion solved exactly in time over '
        'each tick (discrete cosine/sine transforms; any dt); "lod": the older, '
        "5-10x faster backward-Euler splitting, which reads 20-50% low at and next to "
        "a single secreting cell at dt = 5 min (see docs/numerics.md)",
    )

    @model_validator(mode="after")
    def _bounded(self) -> Domain:
        n_sites = math.prod(self.shape)
        if n_sites > MAX_SITES:
            raise ValueError(f"shape: {n_sites:.3g} sites; at most {MAX_SITES:,} (2**31 - 1) "
                             "are possible")
        ticks = self.duration_days * 1440.0 / self.dt_min
        if not ticks <= MAX_TICKS_HARD:  # also inf
            raise ValueError(f"duration_days / dt_min: {ticks:.3g} ticks; at most "
                             f"{MAX_TICKS_HARD:,} are possible")
        return self


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
    """Entry of new cells of this type at vessel sites.

    The rate is scaled by the local ``signal`` at the vessel and, optionally,
    by systemic priming: the lagged density (cells per site, averaged with
    time constant ``priming_delay_days``) of the ``primed_by`` cell type, e.g.
    mature DCs priming CD8 T cells in the draining lymph node.  The primed
    part of the rate may be held back by the lagged density (same time
    constant) of a ``priming_suppressed_by`` type, e.g. Tregs down-regulating
    CD80/CD86 on the priming DCs.
    """

    rate_per_vessel_per_min: NonNeg
    signal: Name | None = None
    half_max_ng_per_ml: Pos = 1.0
    hill_power: Pos = 1.0
    basal_fraction: Fraction = 0.0
    primed_by: Name | None = None
    priming_half_max_per_site: Pos = 1e-4
    priming_hill_power: Pos = 1.0
    priming_basal_fraction: Fraction = 0.0
    priming_delay_days: NonNeg = 0.0
    priming_suppressed_by: Name | None = None
    priming_suppression_half_max_per_site: Pos = 1e-4
    priming_suppression_hill_power: Pos = 1.0


class CellType(_Strict):
    """Base behaviour of one cell type (rules then modulate it)."""

    label: str = ""
    colour: str = Field(default="#808080", pattern=r"^#[0-9a-fA-F]{6}$")
    division_rate_per_min: NonNeg = 0.0
    division_push_sites: Annotated[int, Field(ge=1, le=3)] = 1
    death_rate_per_min: NonNeg = 0.0
    migration_speed_um_per_min: NonNeg = 0.0
    chemotaxis_field: Name | None = None
    chemotaxis_bias: Fraction = 0.0
    kill_rate_per_min: NonNeg = 0.0
    kill_targets: list[Name] = []
    kill_capacity: Annotated[int, Field(ge=0, le=30000)] = 0
    kill_resistance: Fraction = 0.0
    infiltrates: list[Name] = []
    transform_rate_per_min: dict[Name, NonNeg] = {}
    secretion_ng_per_ml_per_min: dict[Name, NonNeg] = {}
    uptake_per_min: dict[Name, NonNeg] = {}
    death_release_ng_per_ml: dict[Name, NonNeg] = {}
    stat3: Stat3Spec = Stat3Spec()
    recruitment: Recruitment | None = None


class Rule(_Strict):
    """In ``cell_type``, ``signal`` increases/decreases ``behaviour``.

    An optional ``id`` names the rule: a composing file (``extends``) that
    lists a rule with the same id replaces that rule's keys instead of adding
    a rule, which is how a contested effect is flipped.
    """

    id: Name | None = None
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


class Tissue(_Strict):
    """The initial cells (and vessels) from a cell table of a real sample.

    See :mod:`tme_abm.tissue` and the README's "Start from a tissue" section.
    """

    file: str = Field(min_length=1, description="CSV/TSV, Parquet or .h5ad; relative to the "
                      "scenario file's folder")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    x_column: str = "x"
    y_column: str = "y"
    z_column: str | None = None
    type_column: str = "cell_type"
    spatial_key: str = "spatial"
    labels: dict[str, Name] = {}
    vessel_labels: list[str] = []
    vessel_column: str | None = None
    ignore_labels: list[str] = []
    stat3_column: str | None = None
    stat3_range: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    scale_um: Pos = 1.0
    rotate_deg: float = 0.0
    flip_y: bool = False
    window: Annotated[list[float], Field(min_length=4, max_length=6)] | None = None
    centre_um: list[float] | None = None
    keep_coordinates: bool = False
    z_slab: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    z_um: NonNeg | None = None
    outside: Literal["error", "drop"] = "error"
    max_shift_um: NonNeg | None = None
    add_placements: bool = False


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


class _Timed(_Strict):
    """A therapy active from ``start_day`` until ``end_day`` (default: the end)."""

    start_day: NonNeg = 0.0
    end_day: Pos | None = None


class Stat3KnockoutTherapy(_Timed):
    """Genetic STAT3 knockout: ``s = 0`` in these cell types (or groups)."""

    kind: Literal["stat3_knockout"]
    cell_types: list[Name] = Field(min_length=1)


class Stat3KnockdownTherapy(_Timed):
    """Partial STAT3 loss (siRNA): activation rate times ``1 - efficiency``."""

    kind: Literal["stat3_knockdown"]
    cell_types: list[Name] = Field(min_length=1)
    efficiency: Fraction


class DrugTherapy(_Strict):
    """A systemic drug dosed into plasma, entering the tissue.

    Plasma concentration after each dose decays with ``plasma_half_life_min``.
    ``entry = "tissue"`` (default): every site relaxes towards the plasma level
    at ``exchange_per_min``, the tissue-averaged permeability-surface product
    PS/V (capillaries are denser than lattice vessels).  ``entry =
    "vessels"``: only vessel sites do; as they are refilled once per tick this
    underestimates the influx when the diffusion length per tick exceeds the
    vessel spacing.  The tissue half-life is that of the drug's field.
    """

    kind: Literal["drug"]
    field: Name
    dose_ng_per_ml: Pos
    first_dose_day: NonNeg = 0.0
    every_days: Pos | None = None
    doses: Annotated[int, Field(ge=1, le=100_000)] = 1
    plasma_half_life_min: Pos
    entry: Literal["tissue", "vessels"] = "tissue"
    exchange_per_min: Pos = Field(description="per site: PS/V (tissue) or per vessel site")


class ScaleBehaviourTherapy(_Timed):
    """Multiply a behaviour of these cell types by ``factor`` (e.g. anti-PD-1:
    tumour ``kill_resistance`` times 0)."""

    kind: Literal["scale_behaviour"]
    cell_types: list[Name] = Field(min_length=1)
    behaviour: str
    factor: NonNeg


class FieldBlockadeTherapy(_Timed):
    """A neutralising antibody: extra first-order decay of one field."""

    kind: Literal["field_blockade"]
    field: Name
    extra_decay_per_min: Pos


class TransferTherapy(_Strict):
    """Adoptive transfer: ``count`` cells enter at random vessels on ``day``."""

    kind: Literal["transfer"]
    cell_type: Name
    count: Annotated[int, Field(ge=1, le=10_000_000)]
    day: NonNeg = 0.0
    stat3_knockout: bool = False


class DepletionTherapy(_Timed):
    """Antibody depletion: removes ``fraction`` of these cells at the start and
    scales their recruitment by ``1 - fraction`` while active."""

    kind: Literal["depletion"]
    cell_types: list[Name] = Field(min_length=1)
    fraction: Fraction = 1.0


Therapy = Annotated[
    Stat3KnockoutTherapy
    | Stat3KnockdownTherapy
    | DrugTherapy
    | ScaleBehaviourTherapy
    | FieldBlockadeTherapy
    | TransferTherapy
    | DepletionTherapy,
    Field(discriminator="kind"),
]


#: therapy ``kind`` -> the model that validates it
THERAPY_MODELS: dict[str, type[_Strict]] = {
    "stat3_knockout": Stat3KnockoutTherapy,
    "stat3_knockdown": Stat3KnockdownTherapy,
    "drug": DrugTherapy,
    "scale_behaviour": ScaleBehaviourTherapy,
    "field_blockade": FieldBlockadeTherapy,
    "transfer": TransferTherapy,
    "depletion": DepletionTherapy,
}


class Output(_Strict):
    """What the run file records."""

    snapshot_every_min: Pos
    fields: list[Name] | None = None
    cells: bool = True
    compression_level: Annotated[int, Field(ge=0, le=9)] = 1
    #: days whose snapshot (the nearest one) keeps its restart checkpoint, so
    #: that ``tme-abm fork`` can branch there later; the latest checkpoint is
    #: always kept
    checkpoint_days: list[NonNeg] = []

    @field_validator("fields")
    @classmethod
    def _each_field_once(cls, fields: list[str] | None) -> list[str] | None:
        if fields is not None:
            twice = sorted({f for f in fields if fields.count(f) > 1})
            if twice:
                raise ValueError(f"lists {', '.join(map(repr, twice))} more than once")
        return fields


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
    tissue: Tissue | None = None
    stat3_inhibitor: Stat3Inhibitor | None = None
    groups: dict[Name, list[Name]] = {}
    therapy: list[Therapy] = []
    output: Output

    @property
    def n_ticks(self) -> int:
        """Number of ticks in the run (duration / dt, rounded)."""
        return max(1, round(self.domain.duration_days * 1440.0 / self.domain.dt_min))


def _one_of(names) -> str:
    names = list(names)
    return ", ".join(names) if names else "(none defined)"


def _table(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _array(value: Any) -> list:
    return value if isinstance(value, list) else []


def name_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Unknown names referenced anywhere in raw scenario data.

    Works on the raw (unvalidated) data so that a bad value elsewhere does not
    hide these; entries of the wrong type are left to the schema's own errors.
    """
    problems: list[tuple[str, str]] = []
    field_names = tuple(k for k in _table(data.get("fields")))
    type_names = tuple(k for k in _table(data.get("cell_types")))

    def need(kind: str, known: tuple[str, ...], listed_as: str, path: str, name: Any) -> None:
        if isinstance(name, str) and name not in known:
            problems.append((path, f"unknown {kind} {name!r}; {listed_as}: {_one_of(known)}"))

    def need_field(path: str, name: Any) -> None:
        need("field", field_names, "defined fields", path, name)

    def need_type(path: str, name: Any) -> None:
        need("cell type", type_names, "defined types", path, name)

    for fname in field_names:
        if fname in RESERVED_FIELD_NAMES:
            problems.append((f"fields.{fname}", "this name is reserved for a field; reserved: "
                             f"{', '.join(RESERVED_FIELD_NAMES)}"))
    for tname in type_names:
        if tname in RESERVED_TYPE_NAMES:
            problems.append((f"cell_types.{tname}",
                             "'empty' is reserved: the run file labels empty sites with it"))
    for tname, ct in _table(data.get("cell_types")).items():
        ct = _table(ct)
        p = f"cell_types.{tname}"
        need_field(f"{p}.chemotaxis_field", ct.get("chemotaxis_field"))
        for k, target in enumerate(_array(ct.get("kill_targets"))):
            need_type(f"{p}.kill_targets.{k}", target)
        for k, other in enumerate(_array(ct.get("infiltrates"))):
            need_type(f"{p}.infiltrates.{k}", other)
            if other == tname:
                problems.append((f"{p}.infiltrates.{k}", "a type cannot infiltrate itself"))
        for target in _table(ct.get("transform_rate_per_min")):
            need_type(f"{p}.transform_rate_per_min.{target}", target)
            if target == tname:
                problems.append(
                    (f"{p}.transform_rate_per_min.{target}", "a type cannot transform into itself")
                )
        for key in ("secretion_ng_per_ml_per_min", "uptake_per_min", "death_release_ng_per_ml"):
            for fname in _table(ct.get(key)):
                need_field(f"{p}.{key}.{fname}", fname)
        for k, inp in enumerate(_array(_table(ct.get("stat3")).get("inputs"))):
            need_field(f"{p}.stat3.inputs.{k}.field", _table(inp).get("field"))
        need_field(f"{p}.recruitment.signal", _table(ct.get("recruitment")).get("signal"))
        rec = _table(ct.get("recruitment"))
        need_type(f"{p}.recruitment.primed_by", rec.get("primed_by"))
        need_type(f"{p}.recruitment.priming_suppressed_by", rec.get("priming_suppressed_by"))
        if rec.get("priming_suppressed_by") is not None and rec.get("primed_by") is None:
            problems.append((
                f"{p}.recruitment.priming_suppressed_by",
                "suppresses systemic priming, so it needs recruitment.primed_by",
            ))  # fmt: skip
    behaviours = behaviour_names(field_names, type_names)
    signals = signal_names(field_names, type_names)
    for k, rule in enumerate(_array(data.get("rules"))):
        rule = _table(rule)
        need_type(f"rules.{k}.cell_type", rule.get("cell_type"))
        need("signal", tuple(signals), "allowed", f"rules.{k}.signal", rule.get("signal"))
        need(
            "behaviour", tuple(behaviours), "allowed", f"rules.{k}.behaviour", rule.get("behaviour")
        )
    for k, pl in enumerate(_array(data.get("placement"))):
        need_type(f"placement.{k}.cell_type", _table(pl).get("cell_type"))
    for label, tname in _table(_table(data.get("tissue")).get("labels")).items():
        need_type(f"tissue.labels.{label}", tname)
    need_field("stat3_inhibitor.field", _table(data.get("stat3_inhibitor")).get("field"))
    groups = _table(data.get("groups"))
    for gname, members in groups.items():
        if gname in type_names:
            problems.append((f"groups.{gname}", "a group cannot have the name of a cell type"))
        for k, member in enumerate(_array(members)):
            need_type(f"groups.{gname}.{k}", member)
    types_or_groups = type_names + tuple(groups)
    for k, th in enumerate(_array(data.get("therapy"))):
        th = _table(th)
        p = f"therapy.{k}"
        for j, name in enumerate(_array(th.get("cell_types"))):
            need(
                "cell type or group",
                types_or_groups,
                "defined types and groups",
                f"{p}.cell_types.{j}",
                name,
            )
        need_type(f"{p}.cell_type", th.get("cell_type"))
        need_field(f"{p}.field", th.get("field"))
        need("behaviour", tuple(behaviours), "allowed", f"{p}.behaviour", th.get("behaviour"))
    for k, fname in enumerate(_array(_table(data.get("output")).get("fields"))):
        need_field(f"output.fields.{k}", fname)
    return problems


def consistency_problems(sc: Scenario) -> list[tuple[str, str]]:
    """Problems between values of a scenario that passed the schema and name checks."""
    problems: list[tuple[str, str]] = []
    if len(sc.cell_types) > 127:
        problems.append(("cell_types", "at most 127 cell types are allowed"))
    ndim = len(sc.domain.shape)
    per_um2 = sc.domain.dt_min / sc.domain.site_um / sc.domain.site_um  # inf, never 1/0
    too_fast = []
    for name, f in sc.fields.items():
        if f.boundary == "no_flux" and f.boundary_ng_per_ml != 0:
            problems.append(
                (f"fields.{name}.boundary_ng_per_ml", 'only used with boundary = "dirichlet"')
            )
        r = f.diffusion_um2_per_min * per_um2
        if not r <= MAX_DIFFUSION_NUMBER:  # also catches an overflow to inf
            too_fast.append((r, name))
    if too_fast:
        r, name = max(too_fast)
        others = f" (and {len(too_fast) - 1} more fields)" if len(too_fast) > 1 else ""
        problems.append((
            f"fields.{name}.diffusion_um2_per_min",
            f"D * dt / site_um**2 = {r:.3g} per tick{others} (D = "
            f"{sc.fields[name].diffusion_um2_per_min:g} um2/min, domain.dt_min = "
            f"{sc.domain.dt_min:g}, domain.site_um = {sc.domain.site_um:g}); at most "
            f"{MAX_DIFFUSION_NUMBER:g}: the field would be uniform within one tick, and the "
            "solver loses precision beyond it",
        ))
    for tname, ct in sc.cell_types.items():
        if ct.chemotaxis_bias > 0 and ct.chemotaxis_field is None:
            problems.append(
                (f"cell_types.{tname}.chemotaxis_bias", "needs chemotaxis_field to be set")
            )
    saturations: dict[tuple[str, str, str], tuple[int, float]] = {}
    seen_ids: dict[str, int] = {}
    for k, rule in enumerate(sc.rules):
        if rule.id is not None:
            if rule.id in seen_ids:
                problems.append((f"rules.{k}.id", f"same id as rules.{seen_ids[rule.id]}"))
            seen_ids.setdefault(rule.id, k)
        p = f"rules.{k}"
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
        if pl.region in ("disc", "annulus") and pl.radius_um <= 0:
            problems.append((f"{p}.radius_um", f"must be > 0 for region {pl.region!r}"))
        if pl.region == "annulus" and pl.inner_radius_um >= pl.radius_um:
            problems.append((f"{p}.inner_radius_um", "must be smaller than radius_um"))
        if pl.centre_um is not None and len(pl.centre_um) != ndim:
            problems.append(
                (f"{p}.centre_um", f"needs {ndim} coordinates (µm, in the order of domain.shape)")
            )
    if sc.tissue is not None:
        problems.extend(_tissue_problems(sc.tissue, ndim))
    duration_min = sc.domain.duration_days * 1440.0
    for k, day in enumerate(sc.output.checkpoint_days):
        if day * 1440.0 > duration_min:
            problems.append((
                f"output.checkpoint_days.{k}",
                f"day {day:g} is after the end of the run (domain.duration_days "
                f"{sc.domain.duration_days:g})",
            ))
    for k, th in enumerate(sc.therapy):
        end = getattr(th, "end_day", None)
        if end is not None and end <= th.start_day:
            problems.append((f"therapy.{k}.end_day", "must be later than start_day"))
        if isinstance(th, DrugTherapy) and th.doses > 1 and th.every_days is None:
            problems.append((f"therapy.{k}.every_days", "needed when doses > 1"))
        if (
            isinstance(th, ScaleBehaviourTherapy)
            and th.behaviour in ("chemotaxis_bias", "kill_resistance")
            and th.factor > 1
        ):
            problems.append((f"therapy.{k}.factor", f"{th.behaviour} is a fraction: must be <= 1"))
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


def _tissue_problems(ts: Tissue, ndim: int) -> list[tuple[str, str]]:
    """Problems between the keys of ``[tissue]`` that need no file."""
    problems: list[tuple[str, str]] = []
    if ts.centre_um is not None and len(ts.centre_um) != ndim:
        problems.append(
            ("tissue.centre_um", f"needs {ndim} coordinates (µm, in the order of domain.shape)")
        )
    if ts.window is not None:
        w = ts.window
        if len(w) not in (4, 6):
            problems.append(("tissue.window", "[x_min, x_max, y_min, y_max] (and z_min, z_max "
                             "for a 3D table), in table units"))
        elif any(w[k + 1] <= w[k] for k in range(0, len(w), 2)):
            problems.append(("tissue.window", "each max must be larger than its min"))
    for key in ("stat3_range", "z_slab"):
        pair = getattr(ts, key)
        if pair is not None and not pair[1] > pair[0]:
            problems.append((f"tissue.{key}", "[low, high] with high > low"))
    if ts.keep_coordinates:
        for key, default in (("centre_um", None), ("rotate_deg", 0.0), ("flip_y", False)):
            if getattr(ts, key) != default:
                problems.append((f"tissue.{key}", "not with keep_coordinates = true (the "
                                 "table's positions are used as they are)"))
    if ts.stat3_range is not None and ts.stat3_column is None:
        problems.append(("tissue.stat3_range", "needs stat3_column"))
    if ts.z_um is not None and ndim == 2:
        problems.append(("tissue.z_um", "only for a 3D domain (the plane of a 2D table)"))
    if ts.z_slab is not None and ndim == 3:
        problems.append(("tissue.z_slab", "only for a 2D domain (use window's z range in 3D)"))
    every = [*ts.labels, *ts.vessel_labels, *ts.ignore_labels]
    twice = sorted({label for label in every if every.count(label) > 1})
    if twice:
        problems.append(("tissue.labels", f"{', '.join(map(repr, twice))} listed more than "
                         "once among labels, vessel_labels and ignore_labels"))
    if not ts.labels:
        problems.append(("tissue.labels", "map at least one label to a cell type, e.g. "
                         'labels = { "CD8+ T cell" = "cd8" }'))
    return problems


def scenario_notes(sc: Scenario) -> list[tuple[str, str]]:
    """Things a valid scenario does that its author may not expect (key, message).

    Not errors: ``validate`` and ``run`` print them as notes.
    """
    notes: list[tuple[str, str]] = []
    every = sc.output.snapshot_every_min / sc.domain.dt_min
    ticks = max(1, round(every))
    if not math.isclose(every, ticks, rel_tol=1e-9, abs_tol=1e-9):
        notes.append((
            "output.snapshot_every_min",
            f"{sc.output.snapshot_every_min:g} min is not a multiple of domain.dt_min = "
            f"{sc.domain.dt_min:g}: snapshots are taken every {ticks} ticks "
            f"({ticks * sc.domain.dt_min:g} min), and at the last tick",
        ))
    duration_min = sc.domain.duration_days * 1440.0
    if not math.isclose(sc.n_ticks * sc.domain.dt_min, duration_min, rel_tol=1e-9):
        notes.append((
            "domain.duration_days",
            f"{sc.domain.duration_days:g} days is not a whole number of ticks of "
            f"{sc.domain.dt_min:g} min: the run takes {sc.n_ticks} ticks "
            f"({sc.n_ticks * sc.domain.dt_min / 1440.0:g} days)",
        ))
    notes.extend(_slow_transform_notes(sc))
    return notes


def _slow_transform_notes(sc: Scenario) -> list[tuple[str, str]]:
    """Sides on which the exact field step's transforms are slow (large prime factors)."""
    from tme_abm.core.fft_sizes import (
        FAST_PRIME_LIMIT,
        largest_prime_factor,
        nearest_fast_sides,
        transform_length,
    )

    if sc.domain.field_solver != "exact" or not sc.fields:
        return []
    kinds = sorted({f.boundary == "dirichlet" for f in sc.fields.values()})
    axes = "zyx"[3 - len(sc.domain.shape) :]
    notes: list[tuple[str, str]] = []
    for axis, n in zip(axes, sc.domain.shape, strict=True):
        for dirichlet in kinds:
            length = transform_length(n, dirichlet)
            prime = largest_prime_factor(length)
            if n < 2 or prime <= FAST_PRIME_LIMIT:
                continue
            below, above = nearest_fast_sides(n, dirichlet)
            kind = "Dirichlet" if dirichlet else "no-flux"
            sizes = " or ".join(str(m) for m in (below, above) if m is not None)
            notes.append((
                "domain.shape",
                f"{n} sites along {axis}: the exact field step transforms the {kind} fields "
                f"along it with an FFT of length {length}, whose prime factor {prime} makes "
                f"it slow (up to ~4x: 449 sites took 4x as long per step as 450); "
                f"{sizes} sites would be fast",
            ))
    return notes
