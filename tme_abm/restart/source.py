"""What a run file says about itself that a restart needs: its scenario and its state.

A run file records the validated scenario (``scenario_resolved_json``) beside
the text it came from; a restart rebuilds the scenario from that, so it
needs neither the original file nor its folder. The cell table of a
``[tissue]`` scenario only sets the initial state, which a checkpoint
replaces, so a restart does not read it again when the checkpoint carries
the vessel sites (format 1.2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tme_abm.scenario import LoadedScenario, Scenario


class RestartError(ValueError):
    """A run file cannot be resumed or forked as asked (the message says why)."""


class ForkError(RestartError):
    """A fork cannot start as asked (no checkpoint there, or a change a fork cannot make)."""


#: Root attributes that say when something happened, not what was computed;
#: they are the only ones that differ between a resumed and an uninterrupted run.
WALL_CLOCK_ATTRS = frozenset({"created", "finished", "resumed", "written"})


def text(value: Any) -> str:
    """An HDF5 string attribute as str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return " ".join(str(v) for v in value.tolist())
    return str(value)


@dataclass(frozen=True)
class RunRecord:
    """The provenance attributes of a run file that a restart uses."""

    path: Path
    seed: int
    scenario_text: str
    scenario_path: str
    overrides: tuple[str, ...]
    resolved_json: str
    complete: bool
    attrs: dict[str, Any]

    def scenario(self) -> Scenario:
        """The run's validated scenario, as recorded."""
        try:
            return Scenario.model_validate_json(self.resolved_json)
        except ValueError as exc:
            raise RestartError(
                f"{self.path}: its recorded scenario does not validate with this tme_abm "
                f"({str(exc).splitlines()[0]}); it was written by tme_abm "
                f"{self.attrs.get('tme_abm_version', 'unknown')}"
            ) from None

    def loaded(self, scenario: Scenario | None = None) -> LoadedScenario:
        """A :class:`LoadedScenario` that records what this run recorded."""
        return LoadedScenario(
            scenario if scenario is not None else self.scenario(),
            self.scenario_text,
            Path(self.scenario_path) if self.scenario_path else None,
            self.overrides,
        )


def read_record(f: h5py.File, path: Path) -> RunRecord:
    """The provenance of an open run file."""
    a = f.attrs
    missing = [k for k in ("seed", "scenario_resolved_json") if k not in a]
    if missing:
        raise RestartError(f"{path} does not record {', '.join(missing)}; it cannot be restarted")
    overrides = text(a.get("overrides", ""))
    return RunRecord(
        path=path,
        seed=int(a["seed"]),
        scenario_text=text(a.get("scenario", "")),
        scenario_path=text(a.get("scenario_path", "")),
        overrides=tuple(o for o in overrides.split("\n") if o),
        resolved_json=text(a["scenario_resolved_json"]),
        complete=int(a.get("complete", 0)) == 1,
        attrs={k: a[k] for k in a},
    )


def check_format(f: h5py.File, path: Path) -> None:
    """Refuse a file that is not a run file, or one written in a newer format."""
    from tme_abm.io import FORMAT_NAME, FORMAT_VERSION

    if text(f.attrs.get("format", "")) != FORMAT_NAME:
        raise RestartError(f"{path} is not a tme-abm run file")
    version = text(f.attrs.get("format_version", ""))
    try:
        theirs = tuple(int(x) for x in version.split("."))
    except ValueError:
        raise RestartError(f"{path} has an unreadable format_version {version!r}") from None
    ours = tuple(int(x) for x in FORMAT_VERSION.split("."))
    if theirs > ours:
        raise RestartError(
            f"{path} has run-file format {version}, newer than this tme_abm's {FORMAT_VERSION}: "
            "continue it with the tme_abm that wrote it (pip install -U tme_abm)"
        )
    if theirs[0] != ours[0]:
        raise RestartError(f"{path} has run-file format {version}; this tme_abm continues "
                           f"{ours[0]}.x files")


def engine_scenario(sc: Scenario, arrays: Mapping[str, np.ndarray]) -> Scenario:
    """The scenario to build a model from before restoring ``arrays``: without
    its cell table when the checkpoint carries the vessel sites (the table
    then sets nothing that the checkpoint does not replace)."""
    if sc.tissue is not None and "vessel_sites" in arrays:
        return sc.model_copy(update={"tissue": None})
    return sc


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def scenario_differences(a: Scenario, b: Scenario, limit: int = 5) -> list[str]:
    """Dotted keys whose values differ between two scenarios (at most ``limit``)."""
    out: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                walk(x.get(k), y.get(k), f"{where}.{k}" if where else str(k))
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{where}.{i}")
        elif x != y:
            out.append(where or "(whole scenario)")

    walk(json.loads(a.model_dump_json()), json.loads(b.model_dump_json()), "")
    return out
