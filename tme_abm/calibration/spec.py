"""The calibration file: its schema, its observed data, and every check made before a run.

A calibration file (TOML) names the model (a base scenario and overrides),
the parameters to fit with their priors, the observed data, the summary
statistics that map a run file onto the data's quantities, and the settings
of the ABC-SMC inference.  :func:`load_calibration` reads and validates it
and raises :class:`CalibrationError` (a :class:`~tme_abm.scenario.ScenarioError`)
listing every problem with its key, so the command exits with code 2 before
any simulation starts.  The base scenario is loaded with the parameters at
their prior medians, so a key that does not exist in the scenario, or a value
it rejects, is reported here too.

Only pydantic, numpy and :mod:`tme_abm.scenario` are imported: checking a
file does not load numba or pyabc.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tme_abm.scenario import LoadedScenario, ScenarioError, load_scenario
from tme_abm.scenario.load import MAX_FILE_BYTES, read_toml, toml_value

__all__ = [
    "ABCSettings",
    "Calibration",
    "CalibrationError",
    "CalibrationFile",
    "CheckSettings",
    "DataPoint",
    "EmulatorSettings",
    "ModelSpec",
    "ParameterSpec",
    "SummarySpec",
    "load_calibration",
    "read_observed",
]


class CalibrationError(ScenarioError):
    """A calibration file that cannot be used; ``problems`` lists (key path, message)."""


Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """The simulated system: one base scenario, overrides, and runs per particle."""

    scenario: str = Field(min_length=1)
    overrides: dict[str, Any] = {}
    replicates: Annotated[int, Field(ge=1, le=1000)] = 1


class ParameterSpec(_Strict):
    """One fitted parameter and its prior.

    ``prior`` is ``uniform`` (``low``, ``high``), ``log-uniform`` (``low``,
    ``high`` > 0; fitted as log10 of the value) or ``normal`` (``mean``,
    ``sd``; optional ``low``/``high`` truncate it).  ``key`` is a dotted
    scenario key as for ``--set`` (``rules.0.saturation``,
    ``cell_types.cd8.recruitment.rate_per_vessel_per_min``); ``keys`` sets
    several keys to the same value.
    """

    name: Name
    key: str | None = None
    keys: list[str] | None = None
    prior: Literal["uniform", "log-uniform", "normal"]
    low: Finite | None = None
    high: Finite | None = None
    mean: Finite | None = None
    sd: Positive | None = None
    units: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _prior_is_complete(self) -> ParameterSpec:
        if (self.key is None) == (self.keys is None):
            raise ValueError('give exactly one of key = "dotted.key" or keys = [...]')
        if self.keys is not None and not self.keys:
            raise ValueError("keys: list at least one dotted scenario key")
        if self.prior in ("uniform", "log-uniform"):
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.prior} prior needs low and high")
            if self.mean is not None or self.sd is not None:
                raise ValueError(f"a {self.prior} prior takes low and high, not mean/sd")
        else:
            if self.mean is None or self.sd is None:
                raise ValueError("a normal prior needs mean and sd (low/high optional)")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.prior == "log-uniform" and self.low is not None and self.low <= 0:
            raise ValueError(f"a log-uniform prior needs low > 0 (got {self.low:g})")
        return self

    @property
    def scenario_keys(self) -> list[str]:
        """Every scenario key this parameter sets."""
        return [self.key] if self.key is not None else list(self.keys or [])

    @property
    def fitted_name(self) -> str:
        """The name the sampler sees: ``log10_<name>`` for a log-uniform prior."""
        return f"log10_{self.name}" if self.prior == "log-uniform" else self.name

    def to_natural(self, fitted: float) -> float:
        """The parameter's value from the value the sampler works with."""
        return float(10.0**fitted) if self.prior == "log-uniform" else float(fitted)

    def bounds(self) -> tuple[float, float]:
        """(low, high) in natural units; infinite where the prior is unbounded."""
        lo = self.low if self.low is not None else -math.inf
        hi = self.high if self.high is not None else math.inf
        return lo, hi

    def median(self) -> float:
        """The prior median in natural units (the value checked at load time)."""
        if self.prior == "uniform":
            return 0.5 * (self.low + self.high)
        if self.prior == "log-uniform":
            return math.sqrt(self.low * self.high)

        return float(self.scipy_rv().median())

    def scipy_rv(self) -> Any:
        """The prior of the fitted value as a frozen ``scipy.stats`` distribution."""
        from scipy import stats

        if self.prior == "uniform":
            return stats.uniform(self.low, self.high - self.low)
        if self.prior == "log-uniform":
            lo, hi = math.log10(self.low), math.log10(self.high)
            return stats.uniform(lo, hi - lo)
        if self.low is None and self.high is None:
            return stats.norm(self.mean, self.sd)
        a = (self.low - self.mean) / self.sd if self.low is not None else -math.inf
        b = (self.high - self.mean) / self.sd if self.high is not None else math.inf
        return stats.truncnorm(a, b, loc=self.mean, scale=self.sd)

    def scipy_args(self) -> tuple[str, tuple[float, ...]]:
        """(scipy.stats name, arguments) of :meth:`scipy_rv`, for ``pyabc.RV``."""
        rv = self.scipy_rv()
        return rv.dist.name, tuple(float(a) for a in rv.args) + tuple(
            float(v) for v in rv.kwds.values()
        )


#: Per-tick event series of a run file (``timeseries/<event>_<type>``).
EVENT_NAMES = ("deaths", "killed", "kills", "divisions", "transformed", "recruited")

SummaryKind = Literal[
    "count",
    "growth_rate",
    "events",
    "ratio",
    "stat3_mean",
    "field_mean",
    "immune_share",
    "immune_fraction",
    "tumour_area",
    "spatial",
    "python",
]


class SummarySpec(_Strict):
    """How one observed quantity is computed from a run file.

    kinds and their keys:

    * ``count``: cells of ``types`` (summed) at the data's times (``cells``);
    * ``growth_rate``: exponential growth rate of the cells of ``types``, the
      least-squares slope of ln(count) against time from ``from_day`` (default
      0) to the data's time (``1/day``), the quantity a per-mouse fit of
      ln(tumour volume) against day gives;
    * ``events``: ``event`` (deaths, killed, kills, divisions, transformed,
      recruited) of ``types``, summed from the start to the data's time (``cells``);
    * ``ratio``: cells of ``types`` over cells of ``of`` (``1``);
    * ``stat3_mean``: mean STAT3 of the cells of ``types`` (``1``);
    * ``field_mean``: mean concentration of ``field`` over the lattice (its units);
    * ``immune_share``: cells of ``types`` as a fraction of the immune cells in
      the tumour sample (tumour plus ``margin_um`` around it), as flow
      cytometry of a dissected tumour reports them (``fraction``);
    * ``immune_fraction``: immune cells as a fraction of all cells in the
      tumour sample (``fraction``; CD45+ of live cells);
    * ``tumour_area``: area (2D, ``mm2``) or volume (3D, ``mm3``) of the tumour
      region;
    * ``spatial``: one of :data:`tme_abm.analysis.SNAPSHOT_METRICS` (``metric``);
    * ``python``: ``function = "module:callable"``, called as
      ``f(run_file_path, time_day) -> float``; state its ``units``.

    ``relative_to_day`` divides the value by its value at that day (a fold
    change, units ``1``); ``log = true`` compares log values (for data that
    span orders of magnitude; the uncertainty becomes uncertainty / value).
    """

    kind: SummaryKind
    types: list[str] | None = None
    of: list[str] | None = None
    field: str | None = None
    event: Literal[EVENT_NAMES] | None = None  # type: ignore[valid-type]
    metric: str | None = None
    function: str | None = None
    units: str | None = None
    margin_um: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 100.0
    from_day: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    relative_to_day: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    log: bool = False

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> SummarySpec:
        need = {
            "count": ["types"],
            "growth_rate": ["types"],
            "events": ["types", "event"],
            "ratio": ["types", "of"],
            "stat3_mean": ["types"],
            "field_mean": ["field"],
            "immune_share": ["types"],
            "immune_fraction": [],
            "tumour_area": [],
            "spatial": ["metric"],
            "python": ["function", "units"],
        }[self.kind]
        allowed = set(need) | {"kind", "margin_um", "relative_to_day", "log", "from_day"}
        for key in need:
            if getattr(self, key) is None:
                raise ValueError(f"a {self.kind} summary needs {key}")
        extra = [
            k
            for k in ("types", "of", "field", "event", "metric", "function", "units")
            if getattr(self, k) is not None and k not in allowed
        ]
        if extra:
            raise ValueError(f"a {self.kind} summary does not take {', '.join(extra)}")
        if self.kind == "python" and ":" not in (self.function or ""):
            raise ValueError('function: write "package.module:function"')
        return self

    @property
    def snapshot_based(self) -> bool:
        """True when the summary needs a lattice snapshot at each data time."""
        return self.kind in ("immune_share", "immune_fraction", "tumour_area", "spatial")


class ABCSettings(_Strict):
    """ABC-SMC settings (pyabc).

    ``distance``: ``standardised`` (Euclidean norm of (simulated - observed) /
    uncertainty, threshold = ``epsilon_quantile`` of the last generation's
    distances), ``adaptive`` (pyabc's AdaptivePNormDistance: the same, with
    scales refitted each generation) or ``gaussian`` (a likelihood: each
    observation ~ Normal(simulated, uncertainty), sampled exactly by pyabc's
    StochasticAcceptor with a temperature schedule that ends at 1; Wilkinson
    2013, Stat Appl Genet Mol Biol 12:129).
    """

    population: Annotated[int, Field(ge=2, le=1_000_000)] = 100
    generations: Annotated[int, Field(ge=1, le=1000)] = 8
    min_epsilon: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    min_acceptance_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    max_simulations: Annotated[int, Field(ge=1)] = 1_000_000
    distance: Literal["standardised", "adaptive", "gaussian"] = "standardised"
    epsilon_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.5


class EmulatorSettings(_Strict):
    """Settings of the ``emulator`` method (Gaussian-process history matching).

    Wave 0 runs the model at ``design`` points of a scrambled Sobol'
    sequence over the prior (in its cumulative-probability coordinates).  A
    Gaussian-process emulator of each summary is fitted to every run so far;
    points whose implausibility (observed minus emulated, over the combined
    sd) exceeds ``cutoff`` for any data point are ruled out, and each further
    wave runs ``wave_runs`` (default ``design``) points of what is left.
    After the last wave the posterior is the prior weighted by the Gaussian
    likelihood of the data under the emulator: ``samples`` points of the
    plausible region (a Sobol' sample, refined by adaptive importance
    sampling while few points carry the weight), resampled to ``draws`` rows.
    """

    design: Annotated[int, Field(ge=4, le=100_000)] = 128
    waves: Annotated[int, Field(ge=1, le=20)] = 2
    wave_runs: Annotated[int, Field(ge=1, le=100_000)] | None = None
    cutoff: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 3.0
    samples: Annotated[int, Field(ge=256, le=4_194_304)] = 65_536
    draws: Annotated[int, Field(ge=100, le=1_000_000)] = 4000


class CheckSettings(_Strict):
    """The posterior predictive check: runs at posterior draws."""

    draws: Annotated[int, Field(ge=0, le=100_000)] = 20


class DataFile(_Strict):
    """Observed data: a CSV/TOML file, or rows written inline."""

    file: str | None = None
    rows: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataFile:
        if (self.file is None) == (self.rows is None):
            raise ValueError('give exactly one of file = "data.csv" or [[data.rows]]')
        return self


class CalibrationFile(_Strict):
    """The whole calibration file, as written."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    model: ModelSpec
    parameters: list[ParameterSpec] = Field(min_length=1)
    data: DataFile
    summaries: dict[Name, SummarySpec] = Field(min_length=1)
    method: Literal["abc-smc", "emulator"] = "abc-smc"
    abc: ABCSettings = ABCSettings()
    emulator: EmulatorSettings = EmulatorSettings()
    check: CheckSettings = CheckSettings()

    @model_validator(mode="after")
    def _names_are_unique(self) -> CalibrationFile:
        seen: dict[str, int] = {}
        for k, p in enumerate(self.parameters):
            if p.name in seen:
                raise ValueError(
                    f"parameters.{k}.name: {p.name!r} is also parameters.{seen[p.name]}"
                )
            seen[p.name] = k
        if set(self.name) == {"."}:
            raise ValueError("name: not only dots (it names the output folder)")
        other = {"abc-smc": "emulator", "emulator": "abc"}[self.method]
        if other in self.model_fields_set:
            raise ValueError(
                f"[{other}]: settings of another method; this file uses "
                f'method = "{self.method}" (choose "abc-smc" with [abc], "emulator" with '
                "[emulator])"
            )
        return self


@dataclass(frozen=True)
class DataPoint:
    """One observed value."""

    quantity: str
    time_day: float
    value: float
    uncertainty: float
    units: str
    source: str
    origin: str = ""  # where it was read: "data.csv row 3" or "data.rows.2"

    @property
    def key(self) -> str:
        """The name of this point's summary statistic: ``quantity@<time>d``."""
        return f"{self.quantity}@{self.time_day:g}d"


@dataclass(frozen=True)
class Calibration:
    """A validated calibration: the file, where it is, its data and base scenario."""

    spec: CalibrationFile
    path: Path
    text: str
    scenario_path: Path
    data: tuple[DataPoint, ...]
    loaded: LoadedScenario  # the base scenario at the prior medians

    @property
    def base_overrides(self) -> tuple[str, ...]:
        """``KEY=VALUE`` overrides of ``[model.overrides]``."""
        return model_overrides(self.spec)


def model_overrides(spec: CalibrationFile) -> tuple[str, ...]:
    """``KEY=VALUE`` overrides of a calibration's ``[model.overrides]``."""
    return tuple(f"{k}={toml_value(v)}" for k, v in spec.model.overrides.items())


def parameter_overrides(
    parameters: Sequence[ParameterSpec], values: Mapping[str, float]
) -> tuple[str, ...]:
    """``KEY=VALUE`` overrides setting every key of each parameter to ``values[name]``
    (natural units)."""
    return tuple(
        f"{key}={toml_value(float(values[p.name]))}" for p in parameters for key in p.scenario_keys
    )


DATA_COLUMNS = ("quantity", "time_day", "value", "uncertainty", "units", "source")


def read_observed(path: Path) -> list[dict[str, Any]]:
    """Rows of an observed-data file: CSV with a header, or TOML with ``[[rows]]``.

    Raises
    ------
    CalibrationError
        Naming the file when it cannot be read.
    """
    if not path.is_file():
        raise CalibrationError(str(path), [("", "no such data file")])
    if path.suffix.lower() == ".toml":
        data, _ = read_toml(path)
        rows = data.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CalibrationError(str(path), [("rows", "expected [[rows]] tables")])
        return rows
    raw = path.read_bytes()[: MAX_FILE_BYTES + 1]
    if len(raw) > MAX_FILE_BYTES:
        raise CalibrationError(str(path), [("", "larger than 4 MiB: not a data table")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CalibrationError(str(path), [("", f"not UTF-8 text: {exc}")]) from None
    numbered = [
        (n, ln)
        for n, ln in enumerate(text.splitlines(), 1)
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    reader = csv.DictReader(io.StringIO("\n".join(ln for _, ln in numbered)))
    missing = [c for c in DATA_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CalibrationError(
            str(path),
            [
                (
                    "",
                    f"missing column(s) {', '.join(missing)}; "
                    f"a data table has {', '.join(DATA_COLUMNS)}",
                )
            ],
        )
    rows = []
    for (line, _), row in zip(numbered[1:], reader, strict=False):
        rows.append({**row, "_line": line})
    return rows


def _data_points(rows: list[dict[str, Any]], where: str) -> tuple[list[DataPoint], list]:
    points, problems = [], []
    csv_rows = where != "data.rows"
    for k, row in enumerate(rows):
        at = f"{where}.{k}" if not csv_rows else f"row {row.pop('_line', k + 2)}"
        missing = [c for c in DATA_COLUMNS if row.get(c) in (None, "")]
        if missing:
            problems.append((at, f"missing {', '.join(missing)}"))
            continue
        try:
            time_day, value, unc = (float(row[c]) for c in ("time_day", "value", "uncertainty"))
        except (TypeError, ValueError):
            problems.append((at, "time_day, value and uncertainty must be numbers"))
            continue
        if not all(math.isfinite(x) for x in (time_day, value, unc)):
            problems.append((at, "time_day, value and uncertainty must be finite"))
        elif time_day < 0:
            problems.append((at, f"time_day must be >= 0, got {time_day:g}"))
        elif unc <= 0:
            problems.append((at, f"uncertainty must be > 0 (it scales the distance), got {unc:g}"))
        else:
            points.append(
                DataPoint(
                    str(row["quantity"]).strip(),
                    time_day,
                    value,
                    unc,
                    str(row["units"]).strip(),
                    str(row["source"]).strip(),
                    f"{where} {at}" if csv_rows else at,
                )
            )
    return points, problems


#: Units each summary kind produces (``field_mean``: the field's; ``python``: declared).
KIND_UNITS = {
    "count": "cells",
    "growth_rate": "1/day",
    "events": "cells",
    "ratio": "1",
    "stat3_mean": "1",
    "immune_share": "fraction",
    "immune_fraction": "fraction",
}


def summary_units(summary: SummarySpec, loaded: LoadedScenario) -> str:
    """The units a summary's values are in (what the data's ``units`` must say)."""
    if summary.relative_to_day is not None:
        return "1"
    if summary.kind == "field_mean":
        return loaded.scenario.fields[summary.field].units
    if summary.kind == "tumour_area":
        return "mm3" if len(loaded.scenario.domain.shape) == 3 else "mm2"
    if summary.kind == "spatial":
        from tme_abm.calibration.summaries import spatial_units

        return spatial_units(summary.metric, len(loaded.scenario.domain.shape))
    if summary.kind == "python":
        return str(summary.units)
    return KIND_UNITS[summary.kind]


def _resolve_scenario(name: str, base: Path) -> Path:
    from tme_abm.scenario.library import find

    p = Path(name)
    candidate = p if p.is_absolute() else base / p
    if candidate.exists():
        return candidate
    shipped = find(name)
    return shipped if shipped is not None else candidate


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration file, its data and its base scenario.

    Raises
    ------
    CalibrationError
        Listing every problem (key path and message); the base scenario's own
        problems carry its ``--set``-style key.
    """
    path = Path(path)
    try:
        raw, text = read_toml(path)
    except ScenarioError as exc:
        raise CalibrationError(exc.source, exc.problems) from None
    try:
        spec = CalibrationFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key is missing"
            problems.append((where, msg))
        raise CalibrationError(str(path), problems) from None

    problems: list[tuple[str, str]] = []
    scenario_path = _resolve_scenario(spec.model.scenario, path.parent)
    if spec.data.file is not None:
        data_path = Path(spec.data.file)
        data_path = data_path if data_path.is_absolute() else path.parent / data_path
        try:
            rows = read_observed(data_path)
        except CalibrationError as exc:
            raise CalibrationError(str(path), [("data.file", exc.format())]) from None
        points, bad = _data_points(rows, data_path.name)
        problems += [("data.file", f"{data_path.name} {at}: {msg}") for at, msg in bad]
    else:
        points, bad = _data_points(spec.data.rows or [], "data.rows")
        problems += bad
    if not points and not problems:
        problems.append(("data", "no observed data rows"))

    # the base scenario with every parameter at its prior median
    medians = {p.name: p.median() for p in spec.parameters}
    overrides = model_overrides(spec)
    fitted = parameter_overrides(spec.parameters, medians)
    try:
        loaded = load_scenario(scenario_path, overrides + fitted)
    except ScenarioError as exc:
        fitted_keys = {
            key: f"parameters.{k}" for k, p in enumerate(spec.parameters) for key in p.scenario_keys
        }
        for where, msg in exc.problems:
            key = where.removeprefix("--set ")
            owner = fitted_keys.get(key)
            label = (
                f"{owner} ({key})"
                if owner
                else f"model.overrides ({key})"
                if key in spec.model.overrides
                else f"model.scenario ({exc.source}: {where})"
                if where
                else f"model.scenario ({exc.source})"
            )
            problems.append((label, msg))
        raise CalibrationError(str(path), problems) from None
    problems += _prior_range_problems(spec, scenario_path, overrides, medians)
    problems += _data_problems(spec, loaded, points)
    if problems:
        raise CalibrationError(str(path), problems)
    return Calibration(spec, path, text, scenario_path, tuple(points), loaded)


def _prior_range_problems(
    spec: CalibrationFile,
    scenario_path: Path,
    overrides: tuple[str, ...],
    medians: dict[str, float],
) -> list[tuple[str, str]]:
    """Parameters whose prior reaches values the scenario rejects (e.g. a negative rate).

    Each parameter is tried at its prior's 0.1% and 99.9% quantiles, the
    others at their medians.
    """
    problems = []
    for k, p in enumerate(spec.parameters):
        rv = p.scipy_rv()
        for q in (0.001, 0.999):
            value = p.to_natural(float(rv.ppf(q)))
            trial = parameter_overrides(spec.parameters, {**medians, p.name: value})
            try:
                load_scenario(scenario_path, overrides + trial)
            except ScenarioError as exc:
                why = "; ".join(m for _, m in exc.problems[:2])
                problems.append(
                    (
                        f"parameters.{k}",
                        f"the prior reaches {value:g}, which the "
                        f"scenario rejects ({why}); bound it with low/high",
                    )
                )
                break
    return problems


def _data_problems(
    spec: CalibrationFile, loaded: LoadedScenario, points: list[DataPoint]
) -> list[tuple[str, str]]:
    """Data rows that no summary computes, units that differ, times the run lacks."""
    from tme_abm.calibration.summaries import summary_problems

    sc = loaded.scenario
    duration = sc.domain.duration_days
    dt_day = sc.domain.dt_min / 1440.0
    # the runner's snapshot ticks: every `every` ticks, and the last tick
    every = max(1, round(sc.output.snapshot_every_min / sc.domain.dt_min))
    snap_day = every * dt_day
    last = sc.n_ticks * dt_day
    problems = []
    for name, summary in spec.summaries.items():
        problems += [
            (f"summaries.{name}.{k}" if k else f"summaries.{name}", m)
            for k, m in summary_problems(summary, loaded)
        ]
    if problems:
        return problems
    seen = set()
    for pt in points:
        at = f"data {pt.origin} ({pt.quantity} at day {pt.time_day:g})"
        if pt.key in seen:
            problems.append((at, "the same quantity and time appear twice"))
        seen.add(pt.key)
        summary = spec.summaries.get(pt.quantity)
        if summary is None:
            problems.append(
                (
                    at,
                    f"no [summaries.{pt.quantity}] computes this quantity; "
                    f"summaries: {', '.join(spec.summaries)}",
                )
            )
            continue
        units = summary_units(summary, loaded)
        if pt.units != units:
            problems.append(
                (at, f"units {pt.units!r}, but summary {pt.quantity!r} is in {units!r}")
            )
        if pt.time_day > duration + dt_day / 2:
            problems.append(
                (
                    at,
                    f"after the end of the run (domain.duration_days = "
                    f"{duration:g}); extend it in [model.overrides]",
                )
            )
        if summary.snapshot_based:
            near = min(round(pt.time_day / snap_day) * snap_day, last)
            if abs(pt.time_day - near) > dt_day / 2 and abs(pt.time_day - last) > dt_day / 2:
                problems.append(
                    (
                        at,
                        f"{summary.kind} needs a snapshot at day {pt.time_day:g}; "
                        f"snapshots are every {snap_day:g} d (output.snapshot_every_min"
                        f" = {sc.output.snapshot_every_min:g}) and at the end (day {last:g})",
                    )
                )
        if summary.kind == "growth_rate" and pt.time_day <= summary.from_day:
            problems.append(
                (at, f"a growth rate needs a time after from_day ({summary.from_day:g})")
            )
        if summary.log and pt.value <= 0:
            problems.append((at, f"value {pt.value:g}: a log summary needs values > 0"))
        if summary.relative_to_day is not None and summary.relative_to_day > duration:
            problems.append(
                (
                    f"summaries.{pt.quantity}.relative_to_day",
                    f"day {summary.relative_to_day:g} is after the end of the run",
                )
            )
    return problems
