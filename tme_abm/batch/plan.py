"""Sweep files and the list of runs they expand to.

A sweep file (TOML) names one or more base scenarios, fixed overrides, the
parameters to vary by dotted key with a design (a full grid, a Latin
hypercube or a Sobol sequence from :mod:`scipy.stats.qmc`), and the number of
replicates.  A Saltelli design (``kind = "saltelli"``, from SALib) expands a
Sobol sequence into the cross-sampled points that
:func:`tme_abm.batch.sensitivity.sobol_indices` needs for variance-based
(Sobol') sensitivity indices.  Every run gets its seed from one
``numpy.random.SeedSequence(entropy).spawn(n)``, so seeds are reproducible and
independent, and its own run file.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from scipy.stats import qmc

from tme_abm.scenario.load import ScenarioError, read_toml, toml_value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Strict):
    """One varied scenario key: ``values`` for a grid, ``low``/``high`` otherwise."""

    key: str = Field(min_length=1)
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    scale: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _range(self) -> Parameter:
        if self.values is None and (self.low is None or self.high is None):
            raise ValueError("give values = [...] or both low and high")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError("low must be smaller than high")
        if self.scale == "log" and self.low is not None and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        return self


#: Most points a sampled design may expand to (a Saltelli design multiplies
#: ``samples`` by D + 2, or 2D + 2 with second-order indices).
MAX_POINTS = 1_000_000


class Design(_Strict):
    """How parameter values are chosen.

    ``samples`` is the number of points of an ``lhs`` or ``sobol`` design and
    the base sample count N of a ``saltelli`` design, which expands to
    N·(D + 2) points for D parameters, or N·(2D + 2) with ``second_order``.
    """

    kind: Literal["grid", "lhs", "sobol", "saltelli"] = "grid"
    samples: Annotated[int, Field(ge=1, le=1_000_000)] = 8
    seed: Annotated[int, Field(ge=0)] = 0
    second_order: bool = False

    @model_validator(mode="after")
    def _second_order_only_for_saltelli(self) -> Design:
        if self.second_order and self.kind != "saltelli":
            raise ValueError(f"second_order is for a saltelli design, not {self.kind}")
        return self

    def saltelli_points(self, n_parameters: int) -> int:
        """Points of a Saltelli design over ``n_parameters`` parameters."""
        per_sample = 2 * n_parameters + 2 if self.second_order else n_parameters + 2
        return self.samples * per_sample


class ParentRun(_Strict):
    """A pre-grown run every run of the sweep branches from (``tme-abm fork``)."""

    run: str = Field(min_length=1, description="run file: absolute, or relative to the sweep "
                     "file's folder, else to the working folder")
    day: Annotated[float, Field(ge=0)]
    #: move each arm's own therapies so that the first starts at the fork
    #: (``tme-abm fork --treat-from-fork``)
    treat_from_fork: bool = False


class Sweep(_Strict):
    """A whole sweep file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    scenarios: list[str] = Field(min_length=1)
    replicates: Annotated[int, Field(ge=1, le=100_000)] = 1
    entropy: Annotated[int, Field(ge=0)] = 0
    design: Design = Design()
    parameters: list[Parameter] = []
    overrides: dict[str, Any] = {}
    #: branch every run from this run's checkpoint at this day (replicates
    #: then differ by their seeds from that day on)
    parent: ParentRun | None = None

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        # The name becomes output/sweeps/<name>: "." or ".." would put the
        # sweep's files (summary.csv, runs/) into output/sweeps or output/.
        if set(name) == {"."}:
            raise ValueError(
                f"{name!r} is not a folder name: use letters, digits, '_', '-' or '.' "
                "(not only dots)"
            )
        return name

    @model_validator(mode="after")
    def _design_fits(self) -> Sweep:
        for k, p in enumerate(self.parameters):
            if self.design.kind == "grid" and p.values is None:
                raise ValueError(f"parameters.{k}: a grid design needs values = [...]")
            if self.design.kind != "grid" and (p.low is None or p.high is None):
                raise ValueError(f"parameters.{k}: a {self.design.kind} design needs low/high")
        if self.design.kind == "sobol" and self.design.samples & (self.design.samples - 1):
            raise ValueError("design.samples: a Sobol design needs a power of two")
        if self.design.kind == "saltelli":
            self._saltelli_fits()
        return self

    def _saltelli_fits(self) -> None:
        n, d = self.design.samples, len(self.parameters)
        if n & (n - 1):
            below = 1 << (n.bit_length() - 1)
            raise ValueError(
                f"design.samples: a Saltelli design needs a power of two "
                f"(e.g. {below} or {below * 2}), not {n}"
            )
        if d == 0:
            raise ValueError("parameters: a Saltelli design needs at least one [[parameters]]")
        points = self.design.saltelli_points(d)
        if points > MAX_POINTS:
            formula = "2D + 2" if self.design.second_order else "D + 2"
            runs = points * len(self.scenarios) * self.replicates
            raise ValueError(
                f"design: a Saltelli design of {n} samples over {d} parameters expands to "
                f"{points:,} points ({n} x ({formula})), {runs:,} runs; at most {MAX_POINTS:,} "
                f"points"
            )


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep."""

    run_id: str
    scenario: Path
    point: int  # index of the parameter point
    replicate: int
    seed: int
    params: dict[str, Any]
    overrides: tuple[str, ...]
    #: the scenario's label in run ids and the summary (see scenario_labels);
    #: empty: the scenario file's stem
    label: str = ""
    #: fork from this run file's checkpoint at ``parent_day`` instead of day 0
    parent: Path | None = None
    parent_day: float | None = None
    treat_from_fork: bool = False


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; :class:`ScenarioError` lists every problem."""
    data, _ = read_toml(path)
    try:
        return Sweep.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(x) for x in e["loc"]), e["msg"]) for e in exc.errors()]
        raise ScenarioError(str(path), problems) from None


def design_points(sweep: Sweep) -> list[dict[str, Any]]:
    """Parameter values of every point of the design (the same for every scenario)."""
    params = sweep.parameters
    if not params:
        return [{}]
    if sweep.design.kind == "grid":
        combos = itertools.product(*(p.values for p in params))
        return [dict(zip((p.key for p in params), c, strict=True)) for c in combos]
    d = len(params)
    if sweep.design.kind == "lhs":
        unit = qmc.LatinHypercube(d=d, seed=sweep.design.seed).random(sweep.design.samples)
    elif sweep.design.kind == "saltelli":
        unit = saltelli_unit(sweep.design, d)
    else:
        unit = qmc.Sobol(d=d, scramble=True, seed=sweep.design.seed).random_base2(
            int(math.log2(sweep.design.samples))
        )
    points = []
    for row in unit:
        point = {}
        for p, u in zip(params, row, strict=True):
            if p.scale == "log":
                value = math.exp(math.log(p.low) + u * (math.log(p.high) - math.log(p.low)))
            else:
                value = p.low + u * (p.high - p.low)
            point[p.key] = float(value)
        points.append(point)
    return points


def saltelli_unit(design: Design, n_parameters: int) -> np.ndarray:
    """Saltelli's cross-sampled points on the unit cube, from SALib.

    Rows come in SALib's order (per base sample: A, the D rows of A with one
    column from B, [the D rows of B with one column from A,] B), which
    :func:`SALib.analyze.sobol.analyze` expects of the outputs; the sweep's
    point index keeps that order.  Scaling to the parameters' bounds (linear
    or log) happens in :func:`design_points`, as for the other designs.
    """
    from SALib.sample import sobol as salib_sobol  # only Saltelli designs need SALib

    problem = {
        "num_vars": n_parameters,
        "names": [f"x{k}" for k in range(n_parameters)],
        "bounds": [[0.0, 1.0]] * n_parameters,
    }
    return salib_sobol.sample(
        problem,
        design.samples,
        calc_second_order=design.second_order,
        scramble=True,
        seed=design.seed,
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def scenario_labels(scenarios: list[str]) -> list[str]:
    """A distinct, file-name-safe label for each scenario of a sweep.

    ``scenarios`` are the paths as the sweep file writes them.  The label is
    the file's stem (``baseline``) when that is unique in the sweep;
    scenarios whose stems collide (``a/tiny.toml``, ``b/tiny.toml``) are told
    apart by as many of their folder names as it takes (``a_tiny``,
    ``b_tiny``), and, should that still not separate them, by their position
    in the list (``tiny-s0``).  Labels depend only on the sweep file's text,
    not on where it lies, so a sweep folder's copy of the file gives the same
    labels.  Run ids and run-file names start with the label, so two
    scenarios never share a run file.
    """
    parts = []
    for s in scenarios:
        p = PurePosixPath(s.replace("\\", "/"))
        names = [x for x in p.parent.parts if x not in ("/", ".", "..")]
        parts.append([_UNSAFE.sub("_", x) for x in (*names, p.stem)])
    depth = [1] * len(parts)
    while True:
        labels = ["_".join(ps[-d:]) for ps, d in zip(parts, depth, strict=True)]
        clashes = [k for k, lab in enumerate(labels) if labels.count(lab) > 1]
        grown = False
        for k in clashes:
            if depth[k] < len(parts[k]):
                depth[k] += 1
                grown = True
        if not clashes or not grown:
            break
    if len(set(labels)) < len(labels):
        labels = [f"{lab}-s{k}" if labels.count(lab) > 1 else lab
                  for k, lab in enumerate(labels)]
    return labels


def plan_runs(sweep: Sweep, sweep_path: str | Path) -> list[RunSpec]:
    """Every run: scenarios x design points x replicates, with spawned seeds.

    Seeds come from ``SeedSequence(entropy).spawn(n_runs)`` in this fixed order,
    so the same sweep file always gives the same seed to the same run.  Run
    ids are ``<label>-pNNNN-rNNN`` with the labels of :func:`scenario_labels`,
    unique within the sweep.
    """
    base = Path(sweep_path).parent
    paths = [(base / scenario).resolve() for scenario in sweep.scenarios]
    labels = scenario_labels(sweep.scenarios)
    points = design_points(sweep)
    fixed = tuple(f"{k}={toml_value(v)}" for k, v in sweep.overrides.items())
    parent = parent_day = None
    if sweep.parent is not None:
        beside = base / sweep.parent.run
        parent = (beside if beside.exists() else Path(sweep.parent.run)).resolve()
        parent_day = sweep.parent.day
    n = len(sweep.scenarios) * len(points) * sweep.replicates
    children = np.random.SeedSequence(sweep.entropy).spawn(n)
    runs = []
    k = 0
    for path, label in zip(paths, labels, strict=True):
        for i, point in enumerate(points):
            varied = tuple(f"{key}={toml_value(v)}" for key, v in point.items())
            for r in range(sweep.replicates):
                seed = int(children[k].generate_state(1, dtype=np.uint32)[0])
                runs.append(
                    RunSpec(
                        run_id=f"{label}-p{i:04d}-r{r:03d}",
                        scenario=path,
                        label=label,
                        point=i,
                        replicate=r,
                        seed=seed,
                        params=dict(point),
                        overrides=fixed + varied,
                        parent=parent,
                        parent_day=parent_day,
                        treat_from_fork=bool(sweep.parent and sweep.parent.treat_from_fork),
                    )
                )
                k += 1
    if len({r.run_id for r in runs}) != len(runs):  # scenario_labels makes this impossible
        raise AssertionError("sweep plan with duplicate run ids")
    return runs


def parse_sweep_file(path: str | Path) -> tuple[Sweep, list[RunSpec]]:
    """Load a sweep and expand it; raises :class:`ScenarioError` on bad input."""
    sweep = load_sweep(path)
    missing = [s for s in sweep.scenarios if not (Path(path).parent / s).exists()]
    if missing:
        raise ScenarioError(str(path), [("scenarios", f"no such file: {m}") for m in missing])
    resolved = [(Path(path).parent / s).resolve() for s in sweep.scenarios]
    twice = sorted({s for s, r in zip(sweep.scenarios, resolved, strict=True)
                    if resolved.count(r) > 1})
    if twice:
        raise ScenarioError(str(path), [(
            "scenarios",
            f"{s} is listed more than once (the same file); use replicates = N for more runs",
        ) for s in twice])
    specs = plan_runs(sweep, path)
    if sweep.parent is not None:
        problems = _parent_problems(sweep, specs)
        if problems:
            raise ScenarioError(str(path), problems)
    return sweep, specs


def _parent_problems(sweep: Sweep, specs: list[RunSpec]) -> list[tuple[str, str]]:
    """Why the runs of a sweep with a ``parent`` cannot fork from it (one
    check per distinct scenario and overrides, before any run)."""
    from tme_abm.restart import ForkError, check_fork

    parent = specs[0].parent
    assert parent is not None
    if not parent.is_file():
        return [("parent.run", f"no such run file: {parent}")]
    problems: list[tuple[str, str]] = []
    seen: set[tuple[Path, tuple[str, ...]]] = set()
    for spec in specs:
        key = (spec.scenario, spec.overrides)
        if key in seen:
            continue
        seen.add(key)
        try:
            check_fork(parent, spec.parent_day, scenario=spec.scenario,
                       overrides=spec.overrides, start_therapies_at_fork=spec.treat_from_fork)
        except ForkError as exc:
            if all(str(exc) not in m for _, m in problems):
                problems.append(("parent", str(exc)))
        except ScenarioError as exc:
            problems += [(f"{spec.run_id}: {k}", m) for k, m in exc.problems]
        if len(problems) >= 10:
            break
    return problems


