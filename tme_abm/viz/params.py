"""Scenario parameters by dotted key, for the page's controls, and saving a
model's scenario as a file that ``tme-abm run`` accepts.

:func:`parameter_keys` lists every number, switch and choice of a scenario
under the dotted key that ``--set`` takes (list entries by ``id`` where they
have one); :func:`parameter_info` gives a key's type, units and allowed range
from the scenario schema, so the page offers a typed input and says what is
allowed before the model is built.  :func:`scenario_toml` writes the scenario
a model runs (overrides and added therapies included) as TOML.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tme_abm.scenario.schema import Scenario

#: Units read off a key's name when its description gives none.
SUFFIX_UNITS = (("_ng_per_ml_per_min", "ng/mL/min"), ("_per_vessel_per_min", "1/min per vessel"),
                ("_um2_per_min", "µm²/min"), ("_um_per_min", "µm/min"), ("_per_min", "1/min"),
                ("_ng_per_ml", "ng/mL"), ("_per_site", "cells per site"), ("_um", "µm"),
                ("_min", "min"), ("_days", "days"), ("_day", "day"))
#: Keys not offered (text, identity and layout that a running page cannot change).
SKIPPED = re.compile(r"^(name|description|seed)$|\.(label|colour|note|id|kind|file|sha256)$"
                     r"|^(output|tissue)\.|^domain\.shape\.|^groups\.")


@dataclass(frozen=True)
class ParameterInfo:
    """What a dotted key holds and what it allows."""

    key: str
    kind: str  # "float", "int", "bool", "choice" or "text"
    value: Any
    units: str = ""
    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    choices: tuple[str, ...] = ()
    description: str = ""

    def allowed(self) -> str:
        """The allowed values in words (``> 0``, ``0 - 1``, ``one of a, b``)."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        parts = []
        if self.low is not None:
            parts.append(f"{'≥' if self.low_inclusive else '>'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'≤' if self.high_inclusive else '<'} {self.high:g}")
        return " and ".join(parts) or "any number"

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None."""
        if self.kind in ("float", "int"):
            if value is None:
                return "a number is needed"
            v = float(value)
            if self.low is not None and (v < self.low
                                         or (v == self.low and not self.low_inclusive)):
                return f"{self.key} must be {self.allowed()}"
            if self.high is not None and (v > self.high
                                          or (v == self.high and not self.high_inclusive)):
                return f"{self.key} must be {self.allowed()}"
        if self.kind == "choice" and value not in self.choices:
            return f"{self.key} must be {self.allowed()}"
        return None


def _leaves(node: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        out = []
        for k, v in node.items():
            out += _leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(node, list):
        out = []
        for i, v in enumerate(node):
            name = v.get("id") if isinstance(v, dict) and v.get("id") else str(i)
            out += _leaves(v, f"{prefix}.{name}")
        return out
    return [(prefix, node)]


def parameter_keys(sc: Scenario) -> list[str]:
    """The dotted keys of a scenario's numbers, switches and choices."""
    keys = []
    for key, value in _leaves(sc.model_dump(mode="json", exclude_none=True), ""):
        if SKIPPED.search(key) or not isinstance(value, bool | int | float | str):
            continue
        if isinstance(value, str):
            try:
                if parameter_info(sc, key).kind != "choice":
                    continue
            except KeyError:
                continue
        keys.append(key)
    return keys


def _strip(annotation: Any) -> tuple[Any, list[Any]]:
    """The type under Annotated/Optional and the constraint objects found on the way."""
    meta: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            annotation = args[0]
            for m in args[1:]:
                meta += list(m.metadata) if isinstance(m, FieldInfo) else [m]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, meta
            annotation = args[0]
        else:
            return annotation, meta


def _child(data: Any, node: Any, part: str) -> tuple[Any, Any]:
    """One step of a dotted key, in the dumped data and in the model objects
    together; list entries by index or ``id`` exactly as ``--set`` finds them
    (:func:`tme_abm.scenario.load._list_index`)."""
    from tme_abm.scenario.load import _list_index

    if isinstance(data, dict):
        return data[part], getattr(node, part) if isinstance(node, BaseModel) else node[part]
    if isinstance(data, list) and (i := _list_index(data, part)) is not None:
        return data[i], node[i]
    raise KeyError(part)


def parameter_info(sc: Scenario, key: str) -> ParameterInfo:
    """Type, units and allowed range of a dotted key of ``sc``.

    Raises
    ------
    KeyError
        If the scenario has no such key.
    """
    parts = key.split(".")
    data: Any = sc.model_dump(mode="json")
    nodes: list[Any] = [sc]
    try:
        for part in parts:
            data, node = _child(data, nodes[-1], part)
            nodes.append(node)
    except (KeyError, AttributeError, TypeError) as exc:
        raise KeyError(key) from exc
    value = data
    if isinstance(value, dict | list):
        raise KeyError(key)
    owner = nodes[-2]  # the model (or dict) holding the value
    meta: list[Any] = []
    description = ""
    if isinstance(owner, BaseModel):
        finfo = type(owner).model_fields.get(parts[-1])
        if finfo is None:
            raise KeyError(key)
        annotation, meta = _strip(finfo.annotation)
        meta = list(finfo.metadata) + meta
        description = finfo.description or ""
    else:  # an entry of a dict field (secretion rates per field, say)
        holder = nodes[-3] if len(nodes) > 2 else None
        finfo = type(holder).model_fields[parts[-2]] if isinstance(holder, BaseModel) else None
        annotation = float
        if finfo is not None:
            container, meta = _strip(finfo.annotation)
            annotation, more = _strip(typing.get_args(container)[-1])
            meta += more
    low = high = None
    low_inc = high_inc = True
    for m in meta:
        if isinstance(m, annotated_types.Ge):
            low, low_inc = float(m.ge), True
        elif isinstance(m, annotated_types.Gt):
            low, low_inc = float(m.gt), False
        elif isinstance(m, annotated_types.Le):
            high, high_inc = float(m.le), True
        elif isinstance(m, annotated_types.Lt):
            high, high_inc = float(m.lt), False
    choices: tuple[str, ...] = ()
    if annotation is bool:
        kind = "bool"
    elif annotation is int:
        kind = "int"
    elif annotation is float:
        kind = "float"
    elif typing.get_origin(annotation) is typing.Literal:
        kind, choices = "choice", tuple(str(a) for a in typing.get_args(annotation))
    else:
        kind = "text"
    units = ""
    found = re.search(r"\(([^()]*)\)\s*$", description)
    if found and len(found.group(1)) <= 16 and "see " not in found.group(1):
        units = found.group(1)
    else:
        for suffix, u in SUFFIX_UNITS:
            if parts[-1].endswith(suffix) or (len(parts) > 1 and parts[-2].endswith(suffix)):
                units = u
                break
    return ParameterInfo(key, kind, value, units, low, low_inc, high, high_inc, choices,
                         description)


def override_text(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` takes it."""
    from tme_abm.scenario.load import toml_value

    return f"{key}={toml_value(value)}"


def scenario_toml(sc: Scenario, source: str | Path | None = None,
                  overrides: tuple[str, ...] = ()) -> str:
    """The scenario as a self-contained TOML file (every value written out).

    A tissue file is written as an absolute path, so the file may be saved
    anywhere.  The header says where it came from.
    """
    import tomli_w

    data = sc.model_dump(mode="json", exclude_none=True)
    tissue = data.get("tissue")
    if tissue and source is not None and not Path(tissue["file"]).is_absolute():
        tissue["file"] = str((Path(source).parent / tissue["file"]).resolve())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [f"# Saved by tme-abm viz on {stamp}: the scenario of the model on the page."]
    if source is not None:
        header.append(f"# Built from {source}")
    for item in overrides:
        header.append(f"#   --set {item}")
    header.append("# Run it with: tme-abm run THIS_FILE.toml")
    return "\n".join(header) + "\n\n" + tomli_w.dumps(data)
