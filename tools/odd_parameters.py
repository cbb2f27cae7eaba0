"""Parameter tables of the model description, generated from a scenario file.

Usage::

    python tools/odd_parameters.py tme_abm/examples/baseline.toml > docs/odd_parameters.md
    python tools/odd_parameters.py tme_abm/examples/baseline.toml --out docs/odd_parameters.md

The scenario is loaded and validated with :func:`tme_abm.scenario.load_scenario`
(so ``extends`` composition, defaults and checks are the model's own), and the
TOML text of every file it is composed from is read line by line to pick up the
trailing ``# comment`` of each ``key = value`` line, of each element line of a
multi-line array (STAT3 ``inputs``) and of each ``[[table]]`` header, plus the
comment block directly above a table.  Those comments carry the sources of the
values (``# apoptosis, PhysiCell default cancer cell``), and appear in a ``source``
column.  The output is Markdown: domain, fields, base behaviours per cell
type, STAT3 parameters and inputs, the STAT3 inhibitor, the rules, groups,
placements, vessels, the scenario's own therapies, and, for every other
``*.toml`` in the scenario's folder, the therapies it adds and any other
value it changes.

Nothing here hard-codes a parameter value: every number is read from the
scenario, and derived columns (doubling times, decay lengths, per-tick
probabilities) are computed from it.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from tme_abm.core.lattice import distance_from_point_um, moore_offsets
from tme_abm.core.rules import BEHAVIOUR_UNITS
from tme_abm.scenario import ScenarioError, compile_scenario, load_scenario
from tme_abm.scenario import schema as S

try:
    from tme_abm.scenario.load import read_composed
except ImportError:  # pragma: no cover - a loader without ``extends``
    read_composed = None

#: Top-level arrays of tables whose entries are matched to their comments by content.
ARRAYS: dict[str, type[BaseModel] | None] = {
    "rules": S.Rule,
    "placement": S.Placement,
    "therapy": None,
}

# --------------------------------------------------------------------------------------
# Reading comments out of TOML text
# --------------------------------------------------------------------------------------


def split_line(line: str, open_string: str | None = None) -> tuple[str, str | None, str | None]:
    """Split one TOML line into code and comment.

    Returns ``(code, comment, open_string)``: ``code`` has every string literal
    replaced by ``""`` (so a ``#`` or bracket inside a string, as in
    ``colour = "#8c564b"``, is not mistaken for syntax), ``comment`` is the text
    after the first ``#`` outside strings (stripped; None when there is no
    comment), and ``open_string`` is the delimiter of a multi-line string still
    open at the end of the line.
    """
    code: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if open_string is not None:
            j = line.find(open_string, i)
            if j < 0:
                return "".join(code), None, open_string
            code.append('"')
            i = j + 3
            open_string = None
            continue
        ch = line[i]
        if ch == "#":
            return "".join(code), line[i + 1 :].strip(), None
        if line.startswith('"""', i) or line.startswith("'''", i):
            open_string = line[i : i + 3]
            code.append('"')
            i += 3
            continue
        if ch in "\"'":
            j = i + 1
            while j < n and line[j] != ch:
                j += 2 if ch == '"' and line[j] == "\\" else 1
            code.append('""')
            i = j + 1
            continue
        code.append(ch)
        i += 1
    return "".join(code), None, open_string


def _walk(code: str, depth: int, expect: bool, element: int) -> tuple[int, bool, int, bool]:
    """Follow brackets through ``code`` (strings already blanked).

    Tracks the element index of the outermost array; returns ``(depth, expect,
    element, touched)`` where ``touched`` says whether the line held part of an
    element of that array.
    """
    touched = False
    for ch in code:
        if ch.isspace():
            continue
        if depth == 1 and ch not in ",]":
            touched = True
            if expect:
                element += 1
                expect = False
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 1:
            expect = True
    return depth, expect, element, touched


_DECORATION = re.compile(r"^[-=~*_]{3,}")


def _join_block(lines: Iterable[str]) -> str:
    """A comment block as one line, without ruler lines such as ``# ---- fields``."""
    return " ".join(x for x in lines if x and not _DECORATION.match(x))


@dataclass
class Comments:
    """Comments of one TOML file, by key path.

    Paths are tuples of keys; an entry of an array of tables is ``(name, index)``
    (``("rules", 3)``), an element of a multi-line array is the key's path plus
    its index (``("cell_types", "tumour", "stat3", "inputs", 0)``).
    """

    header: str = ""
    header_lines: list[str] = field(default_factory=list)
    keys: dict[tuple, str] = field(default_factory=dict)
    elements: dict[tuple, str] = field(default_factory=dict)
    above: dict[tuple, str] = field(default_factory=dict)
    tables: dict[tuple, str] = field(default_factory=dict)


def scan_comments(text: str) -> Comments:
    """Collect the comments of a TOML document (see :class:`Comments`).

    ``keys`` holds every ``key = value`` line, with ``""`` when it has no
    comment (so a later file that sets a key without a comment hides an
    earlier file's comment).  ``above`` is the block of whole-line comments
    directly above a key or table header (a blank line ends a block);
    ``tables`` the comment on a ``[table]`` or ``[[table]]`` header line;
    ``header`` the file's opening comment block.
    """
    out = Comments()
    table: tuple = ()
    counts: dict[tuple, int] = {}
    block: list[str] = []
    at_top = True
    open_string: str | None = None
    array_key: tuple | None = None
    depth, expect, element = 0, True, -1
    for line in text.splitlines():
        code, comment, open_string = split_line(line, open_string)
        stripped = code.strip()
        if array_key is not None:
            depth, expect, element, touched = _walk(stripped, depth, expect, element)
            if comment is not None and touched:
                out.elements[array_key + (element,)] = comment
            if depth <= 0:
                array_key = None
            continue
        if not stripped:
            if comment is not None:
                block.append(comment)
            else:
                if at_top and block:
                    out.header, out.header_lines = _join_block(block), block
                    at_top = False
                block = []
            continue
        if at_top:
            out.header, out.header_lines = _join_block(block), block
            block = []
            at_top = False
        above = _join_block(block)
        block = []
        m = re.match(r"^\[\[\s*(.+?)\s*\]\]$", stripped) or re.match(r"^\[\s*(.+?)\s*\]$", stripped)
        if m:
            parts = tuple(p.strip() for p in m.group(1).split("."))
            if stripped.startswith("[["):
                index = counts.get(parts, 0)
                counts[parts] = index + 1
                table = parts + (index,)
            else:
                table = parts
            out.tables[table] = comment or ""
            if above:
                out.above[table] = above
            continue
        key, sep, value = code.partition("=")
        if not sep:
            continue
        path = table + tuple(k.strip() for k in key.split("."))
        out.keys[path] = comment or ""
        if above:
            out.above[path] = above
        depth, expect, element, _ = _walk(value, 0, True, -1)
        if depth > 0:
            array_key = path
    return out


def _in_array_of_tables(path: tuple) -> bool:
    return len(path) > 1 and isinstance(path[1], int)


@dataclass
class Entry:
    """One ``[[rules]]`` / ``[[placement]]`` / ``[[therapy]]`` entry of a file."""

    model: BaseModel | None
    file: str
    header: str
    above: str
    keys: dict[str, str]
    group: str = ""

    def source(self, with_group: bool = True) -> str:
        """Its comments: header line, block above, ``key: comment`` inside, ``note``."""
        parts = [p for p in (self.header, self.above) if p]
        parts += [f"{k}: {v}" for k, v in self.keys.items() if v]
        note = getattr(self.model, "note", "")
        if note:
            parts.append(note)
        if not parts and with_group and self.group:
            parts.append(f"(group) {self.group}")
        return "; ".join(p.rstrip(".") if k < len(parts) - 1 else p for k, p in enumerate(parts))


@dataclass
class SourceComments:
    """Comments of a scenario and of every file it is composed from."""

    header: str
    keys: dict[tuple, str]
    elements: dict[tuple, str]
    above: dict[tuple, str]
    tables: dict[tuple, str]
    entries: dict[str, list[Entry]]
    files: list[str]
    header_lines: list[str] = field(default_factory=list)

    def key(self, *path: Any) -> str:
        """Trailing comment of a key (or, failing that, the block above it)."""
        return self.keys.get(tuple(path)) or self.above.get(tuple(path), "")

    def is_set(self, *path: Any) -> bool:
        """Whether some file writes this key explicitly."""
        return tuple(path) in self.keys

    def table(self, *path: Any) -> str:
        """Comments about a ``[table]``: the block above it and its header comment."""
        p = tuple(path)
        return "; ".join(x for x in (self.above.get(p, ""), self.tables.get(p, "")) if x)

    def entry(self, array: str, model: BaseModel) -> Entry | None:
        """The first entry of ``array`` in any file with exactly this content."""
        for e in self.entries.get(array, []):
            if e.model == model:
                return e
        return None


def _validate_entry(array: str, raw: Any) -> BaseModel | None:
    try:
        if array == "therapy":
            return S.THERAPY_MODELS[raw["kind"]].model_validate(raw)
        model = ARRAYS[array]
        return model.model_validate(raw) if model is not None else None
    except Exception:  # an entry that only makes sense composed; matched by nothing
        return None


def _sources(path: Path) -> list[tuple[Path, str]]:
    if read_composed is not None:
        return list(read_composed(path)[1])
    return [(path, path.read_text(encoding="utf-8"))]


def source_comments(path: Path) -> SourceComments:
    """Comments of ``path`` and of the files it ``extends``, later files winning."""
    sources = _sources(path)
    out = SourceComments("", {}, {}, {}, {}, {a: [] for a in ARRAYS}, [])
    for n, (src, text) in enumerate(sources):
        c = scan_comments(text)
        out.files.append(_display(src))
        if n == len(sources) - 1:
            out.header, out.header_lines = c.header, c.header_lines
        for p in c.keys:
            if _in_array_of_tables(p):
                continue
            for store in (out.keys, out.elements, out.above):
                for q in [q for q in store if q[: len(p)] == p]:
                    del store[q]
        for src_map, dst in (
            (c.keys, out.keys),
            (c.elements, out.elements),
            (c.above, out.above),
            (c.tables, out.tables),
        ):
            dst.update({p: v for p, v in src_map.items() if not _in_array_of_tables(p)})
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:  # pragma: no cover - load_scenario raised already
            continue
        for array in ARRAYS:
            group = ""
            raw_entries = data.get(array, [])
            for i, raw in enumerate(raw_entries if isinstance(raw_entries, list) else []):
                above = c.above.get((array, i), "")
                if above:
                    group = above
                out.entries[array].append(
                    Entry(
                        model=_validate_entry(array, raw),
                        file=_display(src),
                        header=c.tables.get((array, i), ""),
                        above=above,
                        keys={
                            str(p[2]): v or c.above.get(p, "")
                            for p, v in c.keys.items()
                            if p[:2] == (array, i) and len(p) == 3
                        },
                        group=group,
                    )
                )
    return out


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    """A path as given, relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def cell(value: Any) -> str:
    """One Markdown table cell."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return num(float(value))
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) if value else "—"
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items()) if value else "—"
    text = str(value).replace("\n", " ").replace("|", "\\|")
    return text if text else ""


def num(x: float) -> str:
    """A number with up to 4 significant digits, without trailing zeros."""
    if x == 0:
        return "0"
    if math.isinf(x):
        return "∞"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.4g}"


def duration(minutes: float) -> str:
    """A duration in min, h or days."""
    if not math.isfinite(minutes):
        return "∞"
    if minutes < 120:
        return f"{num(float(f'{minutes:.3g}'))} min"
    if minutes < 2880:
        return f"{num(float(f'{minutes / 60:.3g}'))} h"
    return f"{num(float(f'{minutes / 1440:.3g}'))} d"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return lines


#: Key-name suffixes and the units they stand for, longest first.
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_um2_per_min", "µm²/min"),
    ("_ng_per_ml_per_min", "ng/mL/min"),
    ("_per_vessel_per_min", "1/min per vessel"),
    ("_um_per_min", "µm/min"),
    ("_per_min", "1/min"),
    ("_ng_per_ml", "ng/mL"),
    ("_min", "min"),
    ("_um", "µm"),
    ("_days", "days"),
    ("_day", "days"),
    ("_sites", "sites"),
)


def units_of(key: str) -> str:
    """Units of a scenario key, read from its name (``half_life_min`` -> min)."""
    for suffix, units in UNIT_SUFFIXES:
        if key.endswith(suffix):
            return units
    return ""


def _fields_of(model: BaseModel | type[BaseModel]) -> dict[str, Any]:
    cls = model if isinstance(model, type) else type(model)
    return dict(cls.model_fields)


def model_rows(
    model: BaseModel,
    path: tuple,
    c: SourceComments,
    derived: dict[str, Any] | None = None,
    exclude: Iterable[str] = (),
    show_all: bool = False,
) -> list[tuple]:
    """``(key, value, units, derived, source)`` rows of a pydantic model's keys.

    Nested models are left out (they get their own tables); a dict becomes one
    row per entry.  Unless ``show_all``, only keys the file sets or whose value
    differs from the schema default are listed.  ``derived`` maps a key to a
    function of its value (and, for dicts, the entry's key) giving a note.
    """
    derived = derived or {}
    rows: list[tuple] = []
    for key, info in _fields_of(model).items():
        value = getattr(model, key)
        if key in exclude or isinstance(value, BaseModel):
            continue
        if not (show_all or c.is_set(*path, key) or value != info.default):
            continue
        note = derived.get(key)
        source = c.key(*path, key)
        if isinstance(value, dict):
            for sub, v in value.items():
                rows.append((f"{key}.{sub}", v, units_of(key), note(v) if note else "", source))
        else:
            rows.append((key, value, units_of(key), note(value) if note else "", source))
    return rows


ROW_HEADER = ("key", "value", "units", "derived", "source")


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every section needs."""

    sc: S.Scenario
    params: Any
    c: SourceComments
    mean_step_um: float
    n_vessels: float
    dt: float


def load_context(path: Path) -> Context:
    """Load, compile and read the comments of one scenario file."""
    sc = load_scenario(path).scenario
    params = compile_scenario(sc)
    offsets = moore_offsets(params.ndim).astype(np.float64)
    mean_step = float(np.sqrt((offsets**2).sum(axis=1)).mean()) * params.site_um
    d = distance_from_point_um(params.dims, params.site_um, np.asarray(params.centre_um))
    eligible = float((d >= params.vessel_min_distance_um).sum())
    return Context(
        sc,
        params,
        source_comments(path),
        mean_step,
        eligible * params.vessel_fraction,
        params.dt_min,
    )


def _rate_note(kind: str, dt: float):
    def note(r: float) -> str:
        if not isinstance(r, int | float) or r <= 0:
            return ""
        p = -math.expm1(-r * dt)
        if kind == "division":
            return f"doubling ln2/r = {duration(math.log(2) / r)}; P/tick {num(p)}"
        if kind == "death":
            return f"mean lifetime 1/r = {duration(1 / r)}; P/tick {num(p)}"
        return f"1/r = {duration(1 / r)}; P/tick {num(p)}"

    return note


def section_domain(ctx: Context) -> list[str]:
    sc, c = ctx.sc, ctx.c
    d = sc.domain
    extent = " × ".join(f"{num(n * d.site_um / 1000)} mm" for n in d.shape)
    derived = {
        "shape": lambda v: f"{len(v)}D, {extent}",
        "site_um": lambda v: "one cell per site",
        "dt_min": lambda v: f"mean Moore step ℓ = {num(ctx.mean_step_um)} µm",
        "duration_days": lambda v: f"{sc.n_ticks} ticks",
    }
    rows = [
        (k, v, "sites" if k == "shape" else u, n, s)
        for k, v, u, n, s in model_rows(d, ("domain",), c, derived, show_all=True)
    ]
    rows.append(("seed", sc.seed, "", "default; `--seed` overrides", c.key("seed")))
    every = max(1, round(sc.output.snapshot_every_min / d.dt_min))
    rows += [
        (f"output.{k}", v, u, n, s)
        for k, v, u, n, s in model_rows(
            sc.output,
            ("output",),
            c,
            {"snapshot_every_min": lambda v: f"every {every} ticks"},
        )
    ]
    return ["## Domain and clock", ""] + table(ROW_HEADER, rows)


def section_fields(ctx: Context) -> list[str]:
    sc, c = ctx.sc, ctx.c
    keys = [k for k in _fields_of(S.FieldSpec) if k != "label"]
    rows = []
    for name, f in sc.fields.items():
        half_life = getattr(f, "half_life_min", None)
        k = 0.0 if not half_life else math.log(2) / half_life
        diff = getattr(f, "diffusion_um2_per_min", 0.0)
        length = "∞" if k == 0 else num(round(math.sqrt(diff / k), 1))
        src = "; ".join(
            f"{key}: {c.key('fields', name, key)}" for key in keys if c.key("fields", name, key)
        )
        values = [getattr(f, key) for key in keys]
        rows.append((f"`{name}`", f.label, *values, k, length, src))
    header = ["field", "label"]
    header += [f"{k} ({units_of(k)})" if units_of(k) else k for k in keys]
    header += ["k = ln2/half-life (1/min)", "√(D/k) (µm)", "source"]
    return [
        "## Fields",
        "",
        "One row per diffusing field. k is the first-order decay rate, √(D/k) the "
        "distance over which the field around a steady point source falls by a factor e "
        "(∞: no decay).",
        "",
    ] + table(header, rows)


def section_cell_types(ctx: Context) -> list[str]:
    sc, c, dt = ctx.sc, ctx.c, ctx.dt
    out = [
        "## Cell types: base behaviour",
        "",
        "Base values b0 of each behaviour; rules (below) move them towards their "
        "saturation values. Per-tick probabilities are 1 − exp(−r·dt). Secretion is "
        "per cell, into its own site; a kill capacity of 0 means unlimited. The "
        "per-type tables list the keys that the file sets or that differ from the "
        "schema default.",
        "",
    ]
    overview_keys = (
        "division_rate_per_min",
        "division_push_sites",
        "death_rate_per_min",
        "migration_speed_um_per_min",
        "chemotaxis_field",
        "chemotaxis_bias",
        "kill_rate_per_min",
        "kill_targets",
        "kill_capacity",
        "kill_resistance",
        "transform_rate_per_min",
        "secretion_ng_per_ml_per_min",
        "uptake_per_min",
        "death_release_ng_per_ml",
    )
    keys = [k for k in overview_keys if k in _fields_of(S.CellType)]
    rows = []
    for name, ct in sc.cell_types.items():
        rec = ct.recruitment
        recruit = "—"
        if rec is not None:
            sig = getattr(rec, "signal", None)
            recruit = num(getattr(rec, "rate_per_vessel_per_min", 0.0)) + (
                f" × level({sig})" if sig else ""
            )
        rows.append((f"`{name}`", *(getattr(ct, k) for k in keys), recruit))
    out += table(["type", *keys, "recruitment"], rows)
    derived = {
        "division_rate_per_min": _rate_note("division", dt),
        "death_rate_per_min": _rate_note("death", dt),
        "migration_speed_um_per_min": lambda v: (
            f"P(move)/tick = min(1, v·dt/ℓ) = {num(min(1.0, v * dt / ctx.mean_step_um))}"
            if v > 0
            else ""
        ),
        "kill_rate_per_min": _rate_note("kill", dt),
        "kill_capacity": lambda v: "unlimited" if v == 0 else "",
        "kill_resistance": lambda v: "target's P(kill) uses rate × (1 − this)" if v else "",
        "transform_rate_per_min": _rate_note("transform", dt),
        "secretion_ng_per_ml_per_min": lambda v: f"{num(v * dt)} ng/mL per tick at its site",
        "uptake_per_min": _rate_note("uptake", dt),
    }
    for name, ct in sc.cell_types.items():
        p = ("cell_types", name)
        out += ["", f"### `{name}` — {ct.label or name}", ""]
        above = c.table(*p)
        if above:
            out += [above, ""]
        rows = model_rows(ct, p, c, derived, exclude=("label", "colour"))
        rec = ct.recruitment
        if rec is not None:
            rate = getattr(rec, "rate_per_vessel_per_min", 0.0)
            full = rate * ctx.n_vessels * 1440
            rec_derived = {
                "rate_per_vessel_per_min": lambda v, full=full: (
                    f"≈ {num(round(full, 1))} cells/day over ≈ {num(round(ctx.n_vessels))} "
                    "vessels at full signal"
                ),
                "signal": lambda v: "" if v else "none: level = 1 (no signal dependence)",
            }
            rec_rows = [
                (f"recruitment.{k}", v, u, n, s)
                for k, v, u, n, s in model_rows(
                    rec, (*p, "recruitment"), c, rec_derived, show_all=True
                )
            ]
            note = c.table(*p, "recruitment")
            if note and rec_rows:
                k, v, u, n, s = rec_rows[0]
                rec_rows[0] = (k, v, u, n, "; ".join(x for x in (note, s) if x))
            rows += rec_rows
        out += table(ROW_HEADER, rows) if rows else ["Nothing set: every base value is 0."]
    return out


def _steady(s: S.Stat3Spec, drive: float) -> str:
    k_on = getattr(s, "activation_rate_per_min", 0.0)
    k_off = getattr(s, "deactivation_rate_per_min", 0.0)
    a = k_on * drive
    return num(a / (a + k_off)) if a + k_off > 0 else "—"


def section_stat3(ctx: Context) -> list[str]:
    sc, c = ctx.sc, ctx.c
    keys = [k for k in _fields_of(S.Stat3Spec) if k != "inputs"]
    input_keys = list(_fields_of(S.Stat3Input))
    rows, inputs = [], []
    for name, ct in sc.cell_types.items():
        s = ct.stat3
        p = ("cell_types", name, "stat3")
        ko = bool(getattr(s, "knockout", False))
        drive = getattr(s, "constitutive", 0.0)
        full = drive + sum(getattr(i, "weight", 1.0) for i in s.inputs)
        src = "; ".join(
            [c.table(*p)] * bool(c.table(*p))
            + [f"{k}: {c.key(*p, k)}" for k in keys if c.key(*p, k)]
        )
        rows.append(
            (
                f"`{name}`",
                *(getattr(s, k) for k in keys),
                "0" if ko else _steady(s, drive),
                "0" if ko else _steady(s, full),
                src,
            )
        )
        for k, inp in enumerate(s.inputs):
            values = [getattr(inp, key) for key in input_keys]
            source = c.elements.get((*p, "inputs", k), "")
            inputs.append((f"`{name}`", *values, source))
    out = [
        "## STAT3 and SOCS3",
        "",
        "Per cell type (see ODD.md, submodel STAT3): `constitutive` is A0, the base of the "
        "`stat3_activation` behaviour; k_on = `activation_rate_per_min`, k_off = "
        "`deactivation_rate_per_min`; SOCS3 is made at `socs3_production_per_min` × s, "
        "decays at `socs3_decay_per_min` and halves the SOCS3-sensitive inputs at "
        "`socs3_half_max` (SOCS3 units). s* is the steady state a/(a + k_off), a = k_on·A, "
        "for the constitutive drive alone and with every input saturated (A = A0 + Σw, "
        "no SOCS3 damping, no inhibitor).",
        "",
    ]
    out += table(["type", *keys, "s* (A0 only)", "s* (all inputs)", "source"], rows)
    out += ["", "### STAT3 inputs", ""]
    if inputs:
        header = [f"{k} ({units_of(k)})" if units_of(k) else k for k in input_keys]
        out += table(["type", *header, "source"], inputs)
    else:
        out.append("No cell type has STAT3 inputs.")
    out += ["", "### STAT3 inhibitor", ""]
    inh = sc.stat3_inhibitor
    if inh is None:
        out.append("No `[stat3_inhibitor]`: no field inhibits STAT3.")
    else:
        above = c.table("stat3_inhibitor")
        if above:
            out += [above, ""]
        out += table(ROW_HEADER, model_rows(inh, ("stat3_inhibitor",), c, show_all=True))
    return out


def _signal_units(signal: str, sc: S.Scenario) -> str:
    if signal in sc.fields:
        return sc.fields[signal].units
    if signal.startswith("contact:"):
        return "cells"
    return {"socs3": "SOCS3 units", "kills": "kills"}.get(signal, "")


def base_value(ct: S.CellType, behaviour: str) -> float | None:
    """The cell type's base value b0 of a behaviour (None if unknown here)."""
    fixed = {
        "division": "division_rate_per_min",
        "death": "death_rate_per_min",
        "migration_speed": "migration_speed_um_per_min",
        "chemotaxis_bias": "chemotaxis_bias",
        "kill": "kill_rate_per_min",
        "kill_resistance": "kill_resistance",
    }
    if behaviour == "stat3_activation":
        return getattr(ct.stat3, "constitutive", None)
    if behaviour in fixed:
        return getattr(ct, fixed[behaviour], None)
    kind, _, target = behaviour.partition(":")
    key = {
        "secretion": "secretion_ng_per_ml_per_min",
        "uptake": "uptake_per_min",
        "transform": "transform_rate_per_min",
    }.get(kind)
    values = getattr(ct, key, None) if key else None
    return values.get(target, 0.0) if isinstance(values, dict) else None


def section_rules(ctx: Context) -> list[str]:
    sc, c = ctx.sc, ctx.c
    rows = []
    for k, r in enumerate(sc.rules):
        entry = c.entry("rules", r)
        rows.append(
            (
                k,
                f"`{r.cell_type}`",
                f"`{r.signal}`",
                r.direction,
                f"`{r.behaviour}`",
                base_value(sc.cell_types[r.cell_type], r.behaviour),
                r.saturation,
                BEHAVIOUR_UNITS.get(r.behaviour.partition(":")[0], ""),
                f"{num(r.half_max)} {_signal_units(r.signal, sc)}".strip(),
                r.hill_power,
                "" if entry is None else entry.source(),
            )
        )
    return [
        "## Rules",
        "",
        "One row per `[[rules]]` entry, in file order; `#` is the index for "
        "`--set rules.#.key=value`. b0 is the cell type's base value; the saturation is "
        "the value the behaviour approaches as the Hill term saturates (b_up for "
        "increases, b_down for decreases), in the behaviour's units; the half-max is in "
        "the signal's units (STAT3 and crowding are fractions). A source marked (group) "
        "is the comment above the first rule of the block this rule belongs to.",
        "",
    ] + table(
        (
            "#",
            "cell type",
            "signal",
            "direction",
            "behaviour",
            "b0",
            "saturation",
            "units",
            "half-max",
            "Hill n",
            "source",
        ),
        rows,
    )


def section_groups(ctx: Context) -> list[str]:
    sc, c = ctx.sc, ctx.c
    out = ["## Groups", ""]
    above = c.table("groups")
    if above:
        out += [above, ""]
    if not sc.groups:
        return out + ["No groups."]
    return out + table(
        ("group", "members", "source"),
        [(f"`{g}`", m, c.key("groups", g)) for g, m in sc.groups.items()],
    )


def section_placement(ctx: Context) -> list[str]:
    sc, c, params = ctx.sc, ctx.c, ctx.params
    rows = []
    for k, (pl, cp) in enumerate(zip(sc.placement, params.placements, strict=True)):
        d = distance_from_point_um(params.dims, params.site_um, np.asarray(cp.centre_um))
        if cp.region == "disc":
            inside = d <= cp.outer_um
        elif cp.region == "annulus":
            inside = (d <= cp.outer_um) & (d > cp.inner_um)
        else:
            inside = np.ones(d.size, dtype=bool)
        entry = c.entry("placement", pl)
        rows.append(
            (
                k,
                f"`{pl.cell_type}`",
                pl.region,
                pl.radius_um if pl.region != "everywhere" else None,
                pl.inner_radius_um if pl.region == "annulus" else None,
                "domain centre" if pl.centre_um is None else pl.centre_um,
                pl.fraction,
                num(round(float(inside.sum()) * pl.fraction)),
                "" if entry is None else entry.source(),
            )
        )
    return [
        "## Initial placement",
        "",
        "Placements in file order; each free site of the region gets a cell with "
        "probability `fraction`. ≈ cells = sites in the region × fraction (fewer where "
        "an earlier placement took sites).",
        "",
    ] + table(
        (
            "#",
            "cell type",
            "region",
            "radius (µm)",
            "inner radius (µm)",
            "centre (µm)",
            "fraction",
            "≈ cells",
            "source",
        ),
        rows,
    )


def section_vessels(ctx: Context) -> list[str]:
    derived = {"fraction": lambda v: f"≈ {num(round(ctx.n_vessels))} vessel sites"}
    rows = model_rows(ctx.sc.vessels, ("vessels",), ctx.c, derived, show_all=True)
    return ["## Vessels", ""] + table(ROW_HEADER, rows)


#: Therapy keys shown as targets or timing rather than as parameters.
TARGET_KEYS = ("cell_types", "cell_type", "field")
TIMING_KEYS = ("start_day", "end_day", "day", "first_dose_day", "every_days", "doses")


def _targets(th: BaseModel, sc: S.Scenario) -> str:
    parts = []
    for name in getattr(th, "cell_types", None) or []:
        members = sc.groups.get(name)
        parts.append(f"{name} ({', '.join(members)})" if members else name)
    if getattr(th, "cell_type", None):
        parts.append(th.cell_type)
    if getattr(th, "field", None):
        parts.append(f"field `{th.field}`")
    return ", ".join(parts)


def _timing(th: BaseModel) -> str:
    values = {k: getattr(th, k) for k in TIMING_KEYS if hasattr(th, k)}
    if "first_dose_day" in values:
        every = values.get("every_days")
        text = f"{values.get('doses', 1)} dose(s) from day {num(values['first_dose_day'])}"
        return text + (f", every {num(every)} d" if every else "")
    if "day" in values:
        return f"day {num(values['day'])}"
    if "start_day" in values:
        end = values.get("end_day")
        return f"day {num(values['start_day'])} – " + ("end" if end is None else f"day {num(end)}")
    return ""


def _therapy_params(th: BaseModel, sc: S.Scenario) -> str:
    parts = []
    for key in _fields_of(th):
        if key == "kind" or key in TARGET_KEYS or key in TIMING_KEYS:
            continue
        value = getattr(th, key)
        units = units_of(key)
        parts.append(f"{key} = {cell(value)}" + (f" {units}" if units else ""))
    kind = getattr(th, "kind", "")
    if kind == "stat3_knockout":
        parts.append("(s = 0)")
    elif kind == "stat3_knockdown" and hasattr(th, "efficiency"):
        parts.append(f"(k_on × {num(1 - th.efficiency)})")
    elif kind == "depletion" and hasattr(th, "fraction"):
        parts.append(f"(recruitment × {num(1 - th.fraction)} while on)")
    elif kind == "field_blockade" and hasattr(th, "extra_decay_per_min"):
        hl = getattr(sc.fields[th.field], "half_life_min", None)
        k = (math.log(2) / hl if hl else 0.0) + th.extra_decay_per_min
        parts.append(f"(half-life {duration(math.log(2) / k)} while on)")
    return "; ".join(parts)


def therapy_table(sc: S.Scenario, c: SourceComments) -> list[str]:
    """Markdown lines: every therapy of a loaded scenario, with the file defining it."""
    if not sc.therapy:
        return ["No therapies."]
    rows = []
    for k, th in enumerate(sc.therapy):
        entry = c.entry("therapy", th)
        rows.append(
            (
                k,
                f"`{th.kind}`",
                _targets(th, sc),
                _timing(th),
                _therapy_params(th, sc),
                "" if entry is None else f"`{entry.file}`",
                "" if entry is None else entry.source(with_group=False),
            )
        )
    return table(
        ("#", "kind", "targets", "timing", "dose / factor / efficiency", "defined in", "source"),
        rows,
    )


def _diff(a: Any, b: Any, path: str, out: list[str], limit: int = 30) -> None:
    """Append ``path: new (was old)`` lines for every difference of two JSON trees."""
    if len(out) >= limit or a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"`{p}` added: {cell(b[k])}")
            elif k not in b:
                out.append(f"`{p}` removed (was {cell(a[k])})")
            else:
                _diff(a[k], b[k], p, out, limit)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) != len(b):
        out.append(f"`{path}`: {len(b)} entries (was {len(a)})")
        return
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}.{i}", out, limit)
        return
    out.append(f"`{path}`: {cell(b)} (was {cell(a)})")


_NOT_COMPARED = {"name", "description", "therapy"}


def section_other_files(path: Path, main: S.Scenario) -> list[str]:
    """Therapies and other changes of every other scenario file in the same folder."""
    others = sorted(p for p in path.parent.glob("*.toml") if p.resolve() != path.resolve())
    out = [
        "## Other scenario files",
        "",
        f"Every other `*.toml` in `{_display(path.parent)}/`, loaded with its `extends` "
        f"chain: the therapies it holds and any other value that differs from "
        f"`{main.name}` (name and description aside).",
    ]
    base = main.model_dump(mode="json", exclude=_NOT_COMPARED)
    for p in others:
        out += ["", f"### `{p.name}`", ""]
        try:
            sc = load_scenario(p).scenario
            c = source_comments(p)
        except ScenarioError as exc:
            out.append(f"Could not be loaded: {cell(exc.format().splitlines()[0])}")
            continue
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
        extends = raw.get("extends")
        head = f"**{sc.name}** — {sc.description}" if sc.description else f"**{sc.name}**"
        if extends:
            parents = [extends] if isinstance(extends, str) else list(extends)
            head += f" (extends {', '.join(f'`{e}`' for e in parents)})"
        out += [head, ""]
        if c.header:
            out += [f"> {c.header}", ""]
        out += therapy_table(sc, c)
        diffs: list[str] = []
        _diff(base, sc.model_dump(mode="json", exclude=_NOT_COMPARED), "", diffs)
        if diffs:
            out += ["", f"Other differences from `{main.name}`:", ""]
            out += [f"- {d}" for d in diffs]
    return out


def render(path: str | Path, others: bool = True) -> str:
    """The whole Markdown document for one scenario file."""
    path = Path(path)
    ctx = load_context(path)
    sc = ctx.sc
    shown = _display(path)
    composed = ""
    if len(ctx.c.files) > 1:
        composed = f" (composed from {', '.join(f'`{f}`' for f in ctx.c.files)})"
    out = [
        f"# Parameters of scenario `{sc.name}`",
        "",
        f"Generated from `{shown}` by `python tools/odd_parameters.py {shown} "
        "--out docs/odd_parameters.md`; do not edit by hand, regenerate after changing "
        "the scenario. The model and the meaning of every parameter are described in "
        f"[ODD.md](ODD.md). Sources are the `# comments` of the scenario file{composed}. "
        "Units: µm, minutes, ng/mL; rates per minute.",
        "",
    ]
    if sc.description:
        out += [f"**{sc.name}**: {sc.description}", ""]
    if ctx.c.header_lines:
        out += ["The scenario file's header:", "", "```text"]
        out += [f"# {line}".rstrip() for line in ctx.c.header_lines] + ["```", ""]
    sections = [
        section_domain(ctx),
        section_fields(ctx),
        section_cell_types(ctx),
        section_stat3(ctx),
        section_rules(ctx),
        section_groups(ctx),
        section_placement(ctx),
        section_vessels(ctx),
        ["## Therapies in this scenario", ""] + therapy_table(sc, ctx.c),
    ]
    if others:
        sections.append(section_other_files(path, sc))
    for s in sections:
        out += s + [""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", help="scenario TOML file, e.g. tme_abm/examples/baseline.toml")
    ap.add_argument("--out", help="write the Markdown here instead of to standard output")
    ap.add_argument(
        "--no-others",
        action="store_true",
        help="leave out the tables of the other scenario files in the same folder",
    )
    args = ap.parse_args(argv)
    try:
        text = render(args.scenario, others=not args.no_others)
    except ScenarioError as exc:
        print(exc.format(), file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
