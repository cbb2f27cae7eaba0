"""A scenario's ``[tissue]`` table: find the file, pin its content, place its cells.

The job of this module is the link between the scenario and
:mod:`tme_abm.tissue`: :func:`resolve_tissue` makes the table's path absolute
(relative paths are taken from the scenario file's folder) and records the
file's SHA-256, refusing a file whose hash differs from a ``sha256`` the
scenario pins; :func:`placed_tissue` reads and places the table for the
scenario's lattice, once per process for the same file, spec and lattice
(loading a scenario places it to report problems, and compiling it places it
again for the engine).  Errors come back as (key path, message) problems.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from tme_abm.core.lattice import lattice_dims
from tme_abm.scenario.schema import Scenario
from tme_abm.tissue.placement import PlacedTissue, place_spec_table
from tme_abm.tissue.table import TissueError, file_sha256, read_spec_table

__all__ = ["placed_tissue", "resolve_tissue", "tissue_notes", "tissue_problems"]

_CACHE: OrderedDict[tuple, PlacedTissue] = OrderedDict()
_CACHE_SIZE = 2


def resolve_tissue(sc: Scenario, folder: Path | None) -> Scenario:
    """``sc`` with ``tissue.file`` absolute and ``tissue.sha256`` filled in.

    Raises
    ------
    TissueError
        If the file does not exist or its hash differs from the pinned one.
    """
    ts = sc.tissue
    if ts is None:
        return sc
    path = Path(ts.file).expanduser()
    if not path.is_absolute():
        path = (folder or Path.cwd()) / path
    path = path.resolve()
    if path.is_dir():
        raise TissueError("file", f"{path} is a folder, not a cell table")
    if not path.is_file():
        raise TissueError("file", f"no such file: {path}" + (
            f" (relative paths are taken from the scenario's folder, {folder})" if folder else ""
        ))
    digest = file_sha256(path)
    if ts.sha256 is not None and ts.sha256 != digest:
        raise TissueError("sha256", f"{path} has SHA-256 {digest}, not the {ts.sha256} the "
                          "scenario pins: the table changed since the scenario was written")
    return sc.model_copy(update={"tissue": ts.model_copy(update={"file": str(path),
                                                                 "sha256": digest})})


def _cache_key(sc: Scenario) -> tuple:
    """What a placement depends on: the tissue spec (file, hash, keys) and the lattice."""
    return (sc.tissue.model_dump_json(), tuple(sc.domain.shape), sc.domain.site_um,
            tuple(sc.cell_types))


def placed_tissue(sc: Scenario) -> PlacedTissue:
    """The scenario's tissue placed on its lattice (cached per file hash, spec and lattice).

    ``sc`` should come from :func:`resolve_tissue` (a relative path is taken
    from the working folder here).  Whenever the file is read, its SHA-256 is
    checked against the scenario's, so a table changed after the scenario was
    loaded is refused, not silently used.

    Raises
    ------
    TissueError
        For any problem with the table; its ``key`` names the ``[tissue]`` key.
    """
    ts = sc.tissue
    if ts is None:
        raise ValueError("the scenario has no [tissue] table")
    if ts.sha256 is not None and _cache_key(sc) in _CACHE:
        return _cached(sc)
    # read from disk: the file must still be the one the scenario pinned (a sweep's
    # worker, say, reads it after the parent hashed it)
    return _place(resolve_tissue(sc, None))


def _cached(sc: Scenario) -> PlacedTissue:
    key = _cache_key(sc)
    _CACHE.move_to_end(key)
    return _CACHE[key]


def _place(sc: Scenario) -> PlacedTissue:
    """Read and place the table of a scenario just resolved (its hash just checked)."""
    ts = sc.tissue
    key = _cache_key(sc)
    if key in _CACHE:
        return _cached(sc)
    table = read_spec_table(ts)
    placed = place_spec_table(
        table, ts, dims=lattice_dims(tuple(sc.domain.shape)), ndim=len(sc.domain.shape),
        site_um=sc.domain.site_um, type_codes={name: k for k, name in enumerate(sc.cell_types)},
    )
    _CACHE[key] = placed
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return placed


def tissue_problems(sc: Scenario, folder: Path | None) -> tuple[Scenario, list[tuple[str, str]]]:
    """Resolve and place the scenario's tissue: (the resolved scenario, problems)."""
    if sc.tissue is None:
        return sc, []
    try:
        sc = resolve_tissue(sc, folder)
        _place(sc)  # hashed just now: no second hash
    except TissueError as exc:
        return sc, [(f"tissue.{exc.key}" if exc.key else "tissue", exc.message)]
    return sc, []


def tissue_notes(sc: Scenario) -> list[tuple[str, str]]:
    """The placement report of a resolved scenario's tissue, as (key, message) notes."""
    if sc.tissue is None:
        return []
    try:
        report = placed_tissue(sc).report
    except TissueError as exc:  # the file changed since the scenario was loaded
        return [(f"tissue.{exc.key}", exc.message)]
    return [("tissue", line) for line in report.lines()]
