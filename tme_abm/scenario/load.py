"""Reading scenario files: TOML, ``--set`` overrides, and readable errors.

:func:`load_scenario` returns a validated :class:`Scenario` or raises
:class:`ScenarioError` holding *every* problem found, each as a key path and
a message that says what is allowed.  Nothing here writes files.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from tme_abm.scenario.budget import budget_problems
from tme_abm.scenario.schema import (
    THERAPY_MODELS,
    Scenario,
    consistency_problems,
    name_problems,
)
from tme_abm.scenario.tissue import tissue_problems


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``problems`` lists (key path, message)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.format())

    def format(self) -> str:
        """One line per problem: ``SOURCE: KEY.PATH: message``."""
        lines = []
        for where, msg in self.problems:
            lines.append(f"{self.source}: {where}: {msg}" if where else f"{self.source}: {msg}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario and where it came from."""

    scenario: Scenario
    text: str
    path: Path | None
    overrides: tuple[str, ...] = field(default_factory=tuple)


def default_output_path(loaded: LoadedScenario, out_dir: str | Path = "output") -> Path:
    """Where a run goes when no ``--out`` is given: ``output/<scenario name>.h5``."""
    return Path(out_dir) / f"{loaded.scenario.name}.h5"


def toml_value(value: Any) -> str:
    """A Python value as a TOML value for ``KEY=VALUE`` overrides (the inverse of
    :func:`parse_value`): bools, numbers, strings and (nested) lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # JSON's string escapes are TOML's (control characters as \\uXXXX); DEL too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def parse_value(raw: str) -> Any:
    """A ``--set`` value as TOML (``3``, ``0.5``, ``true``, ``[1, 2]``, ``"x"``), else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw


def _list_index(items: list, part: str) -> int | None:
    """The entry of ``items`` that ``part`` names: an index, or the ``id`` of one entry."""
    if part.isdigit():
        return int(part) if int(part) < len(items) else None
    found = [i for i, item in enumerate(items) if isinstance(item, dict) and item.get("id") == part]
    return found[0] if len(found) == 1 else None


def _list_hint(node: Any) -> str:
    if not isinstance(node, list):
        return ""
    ids = [str(item["id"]) for item in node if isinstance(item, dict) and "id" in item]
    hint = f": it is a list of {len(node)} entries, addressed by index 0-{len(node) - 1}"
    return hint + (f" or by id ({', '.join(ids)})" if ids else "")


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> list[tuple[str, str]]:
    """Apply ``dotted.key=value`` overrides to raw scenario data in place.

    List entries are addressed by their index (``rules.0.half_max=2``) or,
    for entries that carry an ``id``, by it (``rules.cd8_arginase_division.
    saturation=0``): an id does not shift when a composing file adds rules.
    Returns problems (key path, message) for overrides that cannot apply.
    """
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append((f"--set {item}", "expected KEY=VALUE, e.g. domain.dt_min=2"))
            continue
        parts = key.split(".")
        node: Any = data
        ok = True
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, dict):
                node = node.setdefault(part, {})
            elif isinstance(node, list) and (i := _list_index(node, part)) is not None:
                node = node[i]
            else:
                problems.append((f"--set {key}", f"cannot descend into {where!r}"
                                 + _list_hint(node)))
                ok = False
                break
        if not ok:
            continue
        last = parts[-1]
        value = parse_value(raw.strip())
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and (i := _list_index(node, last)) is not None:
            node[i] = value
        else:
            problems.append((f"--set {key}", f"{'.'.join(parts[:-1])!r} has no entry {last!r}"))
    return problems


def _unwrap(annotation: Any) -> list[Any]:
    """Candidate model classes / containers behind an annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for a in typing.get_args(annotation):
            out += _unwrap(a)
        return out
    return [annotation]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the keys at ``loc`` (None if not a model)."""
    current: Any = Scenario
    for part in loc:
        nxt = None
        for cand in _unwrap(current):
            origin = typing.get_origin(cand)
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                if isinstance(part, str) and part in cand.model_fields:
                    nxt = cand.model_fields[part].annotation
            elif origin in (list, dict):
                nxt = typing.get_args(cand)[-1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        current = nxt
    for cand in _unwrap(current):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the therapy-kind tag pydantic puts in the location of a
    discriminated union (``therapy.0.drug.field`` -> ``therapy.0.field``)."""
    if len(loc) >= 3 and loc[0] == "therapy" and isinstance(loc[1], int):
        if isinstance(loc[2], str) and loc[2] in THERAPY_MODELS:
            return loc[:2] + loc[3:]
    return loc


def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        raw_loc = tuple(err["loc"])
        loc = _without_union_tags(raw_loc)
        where = ".".join(str(p) for p in loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            owner = _model_at(loc[:-1])
            if raw_loc != loc:
                owner = THERAPY_MODELS[raw_loc[2]]
            allowed = ", ".join(owner.model_fields) if owner else "?"
            msg = f"unknown key; allowed here: {allowed}"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            msg = f"kind must be one of: {', '.join(THERAPY_MODELS)}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        problems.append((where, msg))
    return problems


def validate_data(
    data: Mapping[str, Any], source: str = "scenario", folder: Path | None = None
) -> Scenario:
    """Validate raw scenario data; raise :class:`ScenarioError` with every problem.

    A ``[tissue]`` table's file is read and placed too (a relative path is
    taken from ``folder``, default the working folder), and the returned
    scenario holds its absolute path and SHA-256.
    """
    names = name_problems(data)
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc)
        seen = {where for where, _ in problems}
        raise ScenarioError(source, problems + [p for p in names if p[0] not in seen]) from None
    problems = names + consistency_problems(sc)
    if problems:
        raise ScenarioError(source, problems)
    # the cell table: path made absolute, content hash pinned, cells placed
    sc, problems = tissue_problems(sc, folder)
    if problems:
        raise ScenarioError(source, problems)
    return sc


#: Largest scenario or sweep file read (the shipped baseline is ~40 KB).
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Deepest nesting of tables and arrays in a scenario (the schema needs 5).
MAX_NESTING = 32
#: Most files one scenario may compose through ``extends``.
MAX_EXTENDS_FILES = 64


def nesting_problems(data: Any, limit: int = MAX_NESTING) -> list[tuple[str, str]]:
    """A problem if tables/arrays in ``data`` nest deeper than ``limit``
    (found without recursion, so any depth is safe to check)."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        node, depth, where = stack.pop()
        if depth > limit:
            return [(where, f"tables and arrays nest deeper than {limit} levels")]
        items = node.items() if isinstance(node, dict) else (
            enumerate(node) if isinstance(node, list) else ())
        for key, child in items:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, f"{where}.{key}" if where else str(key)))
    return []


def read_toml(path: str | Path) -> tuple[dict[str, Any], str]:
    """Read a TOML file; raise :class:`ScenarioError` naming the file on failure.

    Only regular files of at most :data:`MAX_FILE_BYTES` are read (not a
    device such as ``/dev/zero``, a pipe or a folder), and tables and arrays
    may nest at most :data:`MAX_NESTING` deep.
    """
    p = Path(path)
    if not p.exists():
        raise ScenarioError(str(p), [("", "no such file")])
    if p.is_dir():
        raise ScenarioError(str(p), [("", "is a directory, not a scenario file")])
    if not p.is_file():
        raise ScenarioError(str(p), [("", "not a regular file (a device, pipe or socket)")])
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ScenarioError(str(p), [("", f"larger than {MAX_FILE_BYTES // 2**20} MiB: "
                                          "not a scenario file")])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(p), [("", f"cannot read: {exc}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(p), [("", f"not valid TOML: {exc}")]) from None
    except RecursionError:
        raise ScenarioError(str(p), [("", f"tables and arrays nest deeper than {MAX_NESTING} "
                                      "levels")]) from None
    problems = nesting_problems(data)
    if problems:
        raise ScenarioError(str(p), problems)
    return data, text


#: Top-level arrays that a composing file appends to instead of replacing.
APPENDED_ARRAYS = ("rules", "therapy", "placement")


def _append_items(base: list, extra: list) -> list:
    """Append ``extra`` to ``base``; an item whose ``id`` matches an item of
    ``base`` is merged into that item instead."""
    out = list(base)
    where = {
        item["id"]: k for k, item in enumerate(out) if isinstance(item, dict) and "id" in item
    }
    for item in extra:
        key = item.get("id") if isinstance(item, dict) else None
        if key is not None and key in where:
            out[where[key]] = {**out[where[key]], **item}
        else:
            out.append(item)
    return out


def merge_scenarios(base: dict[str, Any], over: Mapping[str, Any], top: bool = True) -> dict:
    """``over`` laid on ``base``: tables merge key by key, the top-level
    ``rules``, ``therapy`` and ``placement`` arrays are appended (an entry with
    the ``id`` of an existing one updates it), and every other value is
    replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_scenarios(out[key], value, top=False)
        elif top and key in APPENDED_ARRAYS and isinstance(out.get(key), list):
            out[key] = _append_items(out[key], value) if isinstance(value, list) else value
        else:
            out[key] = value
    return out


def _extends_problem(parent: str, root: Path, parent_path: Path) -> str | None:
    """Why ``extends = parent`` is not allowed, or None (see :func:`read_composed`)."""
    if PurePath(parent).is_absolute() or PureWindowsPath(parent).is_absolute() or (
        PureWindowsPath(parent).drive
    ):
        return (f"{parent!r} is an absolute path; extends takes paths relative to the file, "
                "inside the scenario's folder")
    if not parent.endswith(".toml"):
        return f"{parent!r} is not a .toml file"
    if not parent_path.exists():
        return f"no such file: {parent_path}"
    if not parent_path.resolve().is_relative_to(root):
        return (f"{parent!r} lies outside {root}, the folder of the scenario being loaded; "
                "extends may only name files in that folder or below it (copy the base "
                "file next to yours, e.g. with tme-abm init)")
    return None


def _linearise(
    path: Path,
    chain: tuple[Path, ...],
    done: dict[Path, tuple[Path, dict, str]],
    root: Path,
) -> None:
    """Add ``path`` and, first, every file it extends to ``done``, each once."""
    here = path.resolve()
    if here in chain:
        cycle = " -> ".join(str(c) for c in (*chain, here))
        raise ScenarioError(
            str(path), [("extends", f"files extend each other in a cycle: {cycle}")]
        )
    if here in done:
        return
    if len(done) + len(chain) >= MAX_EXTENDS_FILES:
        raise ScenarioError(str(path), [("extends", f"more than {MAX_EXTENDS_FILES} files "
                                         "composed through extends")])
    data, text = read_toml(path)
    parents = data.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(x, str) for x in parents):
        raise ScenarioError(str(path), [("extends", "must be a file path or a list of file paths")])
    for parent in parents:
        parent_path = path.parent / parent
        problem = _extends_problem(parent, root, parent_path)
        if problem:
            raise ScenarioError(str(path), [("extends", problem)])
        _linearise(parent_path, (*chain, here), done, root)
    done[here] = (path, data, text)


def read_composed(path: str | Path) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
    """Read a scenario file and, recursively, the files it ``extends``.

    ``extends`` is a path or a list of paths, relative to the file that names
    them, to ``.toml`` files in the folder of ``path`` or below it (symbolic
    links followed): an absolute path or one that leads out of that folder
    is refused, so a scenario cannot pull an unrelated file's text into a
    run file's provenance.  At most :data:`MAX_EXTENDS_FILES` files compose
    one scenario.  Every file is taken once, bases before the files that extend them
    and in the order they are listed, and each lays only its own content on
    the result (see :func:`merge_scenarios`): so when two parents share a
    base, the base's rules are not added twice and the second parent does
    not undo the first one's changes to it.  Returns the merged data and
    (path, text) of every file, bases first.
    """
    done: dict[Path, tuple[Path, dict, str]] = {}
    _linearise(Path(path), (), done, Path(path).resolve().parent)
    merged: dict[str, Any] = {}
    for _, data, _ in done.values():
        merged = merge_scenarios(merged, data)
    return merged, [(p, text) for p, _, text in done.values()]


def composed_text(sources: list[tuple[Path, str]]) -> str:
    """The scenario text a run file records: the file's own text, or, for a
    file that ``extends`` others, every file's text under a ``# ===== path``
    header, bases first (``sources`` as :func:`read_composed` returns them)."""
    if len(sources) == 1:
        return sources[0][1]
    return "\n".join(f"# ===== {src} =====\n{body}" for src, body in sources)


def load_scenario(
    path: str | Path, overrides: Iterable[str] = (), *, allow_large: bool = False
) -> LoadedScenario:
    """Read, override and validate a scenario file.

    Parameters
    ----------
    path
        A TOML scenario file.
    overrides
        ``dotted.key=value`` strings, applied before validation.
    allow_large
        Accept a run that needs more memory than this machine has available
        or more than :data:`tme_abm.scenario.budget.MAX_TICKS` ticks.

    Raises
    ------
    ScenarioError
        With one (key path, message) entry per problem; every check the
        engine would make is made here, so a scenario that loads also runs.
    """
    overrides = tuple(overrides)
    data, sources = read_composed(path)
    text = composed_text(sources)
    problems = apply_overrides(data, overrides) or nesting_problems(data)
    if problems:
        raise ScenarioError(str(path), problems)
    scenario = validate_data(data, str(path), Path(path).resolve().parent)
    problems = budget_problems(scenario, allow_large=allow_large)
    if problems:
        raise ScenarioError(str(path), problems)
    return LoadedScenario(scenario, text, Path(path), overrides)
