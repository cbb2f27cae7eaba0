"""The example scenarios, sweeps and calibrations shipped inside the package.

They are package data (``tme_abm/examples/*.toml``,
``tme_abm/examples/sweeps/*.toml`` and ``tme_abm/examples/calibrations/``
with their data tables), found with :mod:`importlib.resources`,
so a wheel install carries them and ``tme-abm run baseline`` works from any
directory.  :func:`list_scenarios` and :func:`list_sweeps` name them,
:func:`resolve` turns a command-line argument into a file (an existing path
wins over a shipped name), and :func:`copy_example` copies one out to edit,
together with the files it ``extends`` (or, for a sweep, the scenarios it
names; for a calibration, its data table), in the same relative layout, so the
copy runs on its own.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

Kind = Literal["scenario", "sweep", "calibration"]

#: Folder of the shipped examples inside the ``tme_abm`` package.
EXAMPLES = "examples"
#: Sub-folder of the shipped sweeps.
SWEEPS = "sweeps"
#: Sub-folder of the shipped calibrations (each beside its data table).
CALIBRATIONS = "calibrations"
#: Longest description :func:`describe` returns.
DESCRIPTION_WIDTH = 90


class ExampleError(ValueError):
    """An example that cannot be found or copied (the message says why)."""


@dataclass(frozen=True)
class Example:
    """A shipped scenario or sweep file."""

    name: str
    path: Path
    kind: Kind
    description: str


def examples_dir() -> Path:
    """The folder holding the shipped scenarios (``sweeps/`` holds the sweeps).

    Returns
    -------
    Path
        A real folder: the package is installed as files (wheel or editable),
        so the scenarios' relative ``extends`` paths resolve.

    Raises
    ------
    ExampleError
        If the package data is missing or not on the file system (e.g. a zip).
    """
    folder = files("tme_abm") / EXAMPLES
    if not isinstance(folder, Path) or not folder.is_dir():
        raise ExampleError(
            f"the shipped scenarios are missing ({folder}); reinstall tme_abm"
        )
    return folder


def _first_sentence(text: str) -> str:
    """Text up to the first ``. ``, ``? `` or ``! `` (not ``e.g. ``/``i.e. ``)."""
    for k, ch in enumerate(text[:-1]):
        if ch in ".?!" and text[k + 1] == " " and not text[: k + 1].endswith(("e.g.", "i.e.")):
            return text[: k + 1]
    return text


def _without_asides(text: str) -> str:
    """``text`` without its parenthesised parts (and the space before them)."""
    out, depth = [], 0
    for ch in text:
        depth += ch == "("
        if depth == 0:
            out.append(ch)
        depth -= ch == ")" and depth > 0
    text = " ".join("".join(out).split())
    for mark in ",.:;":
        text = text.replace(" " + mark, mark)
    return text


def describe(path: Path) -> str:
    """A one-line description of a scenario or sweep file.

    The file's own top-level ``description`` key if it has one (every shipped
    scenario does; it is also what the run file records), else its opening
    comment, the run of ``#`` lines at the top of the file (the sweeps').  Of
    the comment the first sentence is taken.  Either way, text longer than
    :data:`DESCRIPTION_WIDTH` characters loses its parenthesised asides, then
    is cut at its first ``:`` or ``;``, and as a last resort at a word
    boundary, with ``...``; a final full stop is dropped.

    Parameters
    ----------
    path
        A scenario or sweep TOML file.

    Returns
    -------
    str
        The description, or ``""`` if the file has neither.
    """
    text = path.read_text(encoding="utf-8")
    try:
        own = tomllib.loads(text).get("description")
    except tomllib.TOMLDecodeError:
        own = None
    if isinstance(own, str) and own.strip():
        return _shorten(" ".join(own.split()).removesuffix("."))
    words: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if not body:
            if words:
                break
            continue
        words.append(body)
    return _shorten(_first_sentence(" ".join(" ".join(words).split())).removesuffix("."))


def _shorten(sentence: str) -> str:
    """``sentence`` in at most :data:`DESCRIPTION_WIDTH` characters (see :func:`describe`)."""
    if len(sentence) > DESCRIPTION_WIDTH:
        sentence = _without_asides(sentence)
    if len(sentence) > DESCRIPTION_WIDTH:
        cuts = [k for k in (sentence.find(": "), sentence.find("; ")) if k > 0]
        if cuts:
            sentence = sentence[: min(cuts)]
    if len(sentence) > DESCRIPTION_WIDTH:
        sentence = sentence[: DESCRIPTION_WIDTH - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return sentence.strip()


def _listing(folder: Path, kind: Kind) -> list[Example]:
    return [
        Example(p.stem, p, kind, describe(p)) for p in sorted(folder.glob("*.toml"))
    ]


def list_scenarios() -> dict[str, Path]:
    """The shipped scenarios: name (file stem) -> file, sorted by name.

    This is the allowed set of scenarios for anything that must not read
    arbitrary files (e.g. the page's scenario box).
    """
    return {e.name: e.path for e in _listing(examples_dir(), "scenario")}


def list_sweeps() -> dict[str, Path]:
    """The shipped sweeps: name (file stem) -> file, sorted by name."""
    return {e.name: e.path for e in _listing(examples_dir() / SWEEPS, "sweep")}


def list_calibrations() -> dict[str, Path]:
    """The shipped calibration files: name (file stem) -> file, sorted by name."""
    return {e.name: e.path for e in _listing(examples_dir() / CALIBRATIONS, "calibration")}


def examples() -> list[Example]:
    """Every shipped scenario, sweep and calibration, in that order, with descriptions."""
    folder = examples_dir()
    return (_listing(folder, "scenario") + _listing(folder / SWEEPS, "sweep")
            + _listing(folder / CALIBRATIONS, "calibration"))


def _shipped_name(arg: str | Path) -> str | None:
    """The name ``arg`` gives if it is a bare name (``baseline`` or
    ``baseline.toml``, no folder), else ``None``."""
    p = Path(arg)
    if p.parent != Path(".") or p.suffix not in ("", ".toml") or not p.stem:
        return None
    return p.stem


def find(name: str, kind: Kind = "scenario") -> Path | None:
    """The shipped file called ``name`` (with or without ``.toml``), or ``None``."""
    stem = _shipped_name(name)
    if stem is None:
        return None
    listing = {"scenario": list_scenarios, "sweep": list_sweeps,
               "calibration": list_calibrations}[kind]()
    return listing.get(stem)


def resolve(arg: str | Path, kind: Kind = "scenario") -> Path:
    """The file a command-line argument means.

    An existing path wins; otherwise a bare name of a shipped scenario (or,
    with ``kind="sweep"``, sweep) gives the shipped file; anything else is
    returned unchanged, so the loader reports it as missing.

    Parameters
    ----------
    arg
        What the user typed: a path or a name such as ``baseline``.
    kind
        Which shipped files a name may refer to.
    """
    path = Path(arg)
    if path.exists():
        return path
    shipped = find(str(arg), kind)
    return shipped if shipped is not None else path


def _dependencies(path: Path, kind: Kind) -> list[Path]:
    """``path`` and every shipped file it needs (``extends`` chains, a sweep's
    scenarios, a scenario's tissue table with its ``<table>.md``/``.txt`` notes),
    each once, ``path`` first."""
    out: list[Path] = []
    todo = [path.resolve()]
    while todo:
        here = todo.pop(0)
        if here in out:
            continue
        out.append(here)
        if here.suffix != ".toml":
            continue  # a data table
        with here.open("rb") as fh:
            data = tomllib.load(fh)
        if here == path.resolve() and kind == "calibration":
            data_file = data.get("data", {}).get("file")
            todo.extend([(here.parent / data_file).resolve()] if data_file else [])
            continue  # its scenario is a shipped name, found wherever the copy goes
        key = "scenarios" if here == path.resolve() and kind == "sweep" else "extends"
        refs = data.get(key, [])
        refs = [refs] if isinstance(refs, str) else refs
        todo.extend((here.parent / r).resolve() for r in refs)
        spec = data.get("tissue")
        tissue = spec.get("file") if isinstance(spec, dict) else None
        if isinstance(tissue, str) and not Path(tissue).is_absolute():
            # the cell table a scenario starts from (relative to the scenario's folder)
            # and the files documenting its source and licence, kept beside it
            table = (here.parent / tissue).resolve()
            todo.append(table)
            todo.extend(sorted(p.resolve() for p in table.parent.glob(f"{table.stem}.*")
                               if p.suffix in (".md", ".txt") and p.is_file()))
    return out


def copy_example(name: str, dest: str | Path = ".") -> list[Path]:
    """Copy a shipped scenario or sweep into ``dest`` to edit it.

    The files it ``extends`` (for a sweep: the scenarios it names, and what
    they extend) are copied too, keeping the shipped layout (a sweep goes into
    ``dest/sweeps/``), so the copy runs on its own and its relative paths
    still hold.  Nothing is overwritten: if the file itself already exists in
    ``dest``, or a file it needs exists there with other content, nothing is
    copied; a needed file already there with the same content (from an
    earlier copy) is left as it is.

    Parameters
    ----------
    name
        A shipped scenario or sweep name (scenarios first, as listed by
        ``tme-abm scenarios``).
    dest
        Folder to copy into; created if missing.

    Returns
    -------
    list[Path]
        The files written (those already present with the same content are
        not listed).

    Raises
    ------
    ExampleError
        If ``name`` is not shipped, or a target exists with other content.
    """
    root = examples_dir().resolve()
    kind: Kind = "scenario"
    path = find(name, "scenario")
    if path is None:
        path, kind = find(name, "sweep"), "sweep"
    if path is None:
        path, kind = find(name, "calibration"), "calibration"
    if path is None:
        known = ", ".join([*list_scenarios(), *list_sweeps(), *list_calibrations()])
        raise ExampleError(
            f"{name}: no such shipped scenario, sweep or calibration (known: {known})")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ExampleError(f"{dest} is not a folder")
    plan: list[tuple[Path, Path]] = []
    for src in _dependencies(path, kind):
        target = dest / src.relative_to(root)
        if target.exists() or target.is_symlink():
            main = src == path.resolve()
            if not main and target.is_file() and target.read_bytes() == src.read_bytes():
                continue  # an identical copy of a base, e.g. from an earlier init
            what = "" if main else f", with other content than the {src.name} {name} needs"
            raise ExampleError(
                f"{target} already exists{what}; nothing was copied: "
                "choose another folder or move that file away"
            )
        plan.append((src, target))
    written = []
    for src, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as fh:  # "x": never replace a file that appeared meanwhile
            fh.write(src.read_bytes())
        written.append(target)
    return written
