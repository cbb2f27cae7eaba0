"""Figures, targets, peer figures, and the table and JSON they are reported in.

Every measured number is a :class:`Figure`: an id, what it measures, its
unit, one value per numba thread count where it depends on threads, and
optionally a :class:`Target` from the performance issue with whether it was
met.  :data:`PEERS` holds published figures of other simulators for context.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Target:
    """A goal a figure is compared with.

    Attributes
    ----------
    op
        ``">="`` (at least) or ``"<="`` (at most).
    value
        The threshold, in the figure's unit.
    text
        How the table shows it, e.g. ``">= 5e8"``.
    applies
        False where this run did not measure the case the target is about
        (e.g. quick mode's small lattices); then "met?" is ``n/a``.
    why_not
        Why it does not apply (shown in the JSON).
    threads
        Judge the figure at this thread count (e.g. 1, for a target set
        against single-thread peers) instead of at its headline value; where
        that thread count was not run, the target does not apply.
    """

    op: str
    value: float
    text: str
    applies: bool = True
    why_not: str = ""
    threads: int | None = None

    def met(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the target; None when it does not apply."""
        if not self.applies or value is None or not math.isfinite(value):
            return None
        return value >= self.value if self.op == ">=" else value <= self.value


@dataclass
class Figure:
    """One reported number.

    Attributes
    ----------
    id
        Stable key, e.g. ``"field_2d_updates"``.
    measurement
        What was measured, for people.
    unit
        Unit of ``value`` and of every entry of ``by_threads``.
    by_threads
        Value at each numba thread count, or None for figures that do not
        depend on threads.
    value
        The headline value: the best over thread counts (highest, or lowest
        for a ``<=`` target) where ``by_threads`` is given.
    target
        Goal from the issue, if any.
    details
        Anything else worth keeping (sizes, repeats, every sample).
    """

    id: str
    measurement: str
    unit: str
    value: float | None = None
    by_threads: dict[int, float] | None = None
    target: Target | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.value is None and self.by_threads:
            vals = [v for v in self.by_threads.values() if v is not None and math.isfinite(v)]
            if vals:
                low = self.target is not None and self.target.op == "<="
                self.value = min(vals) if low else max(vals)

    @property
    def judged_value(self) -> float | None:
        """The value the target is judged on: the headline value, or the
        value at the target's thread count."""
        if self.target is None or self.target.threads is None:
            return self.value
        return None if self.by_threads is None else self.by_threads.get(self.target.threads)

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None: no target, not applicable, or its
        thread count was not run)."""
        return None if self.target is None else self.target.met(self.judged_value)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (thread counts become string keys)."""
        out: dict[str, Any] = {
            "id": self.id,
            "measurement": self.measurement,
            "unit": self.unit,
            "value": self.value,
            "by_threads": (
                None if self.by_threads is None
                else {str(k): v for k, v in sorted(self.by_threads.items())}
            ),
            "target": None,
            "met": self.met,
            "details": self.details,
        }
        if self.target is not None:
            t = self.target
            out["target"] = {
                "op": t.op, "value": t.value, "text": t.text, "applies": t.applies,
                "threads": t.threads, "judged_value": self.judged_value,
            }
            if not t.applies:
                out["target"]["why_not"] = t.why_not
        return out


#: Figures of other simulators, as quoted in the performance issues (same
#: hardware class; those of issue 14 were measured side by side on this
#: project's machine); for context only.
PEERS: tuple[dict[str, Any], ...] = (
    {
        "simulator": "BioFVM",
        "figure": "field solver, 8 fields on 1000^2 voxels",
        "value": 8.0e7,
        "unit": "field-voxel updates/s",
    },
    {
        "simulator": "BioFVM (pyphysicell port)",
        "figure": "field step, 1 thread (from issue 14)",
        "value": 1.57e8,
        "unit": "field-voxel updates/s",
    },
    {
        "simulator": "PAL",
        "figure": "explicit field step, 1 thread (from issue 14)",
        "value": 1.69e8,
        "unit": "field-voxel updates/s",
    },
    {
        "simulator": "HAL",
        "figure": "whole ticks at 1e6 agents",
        "value": 2.67,
        "unit": "ticks/s",
    },
    {
        "simulator": "HAL",
        "figure": "agent-steps at 1e6 agents",
        "value": 2.9e6,
        "unit": "agent-steps/s",
    },
    {
        "simulator": "Mesa (CellAgents)",
        "figure": "agent-steps",
        "value": 1.0e5,
        "unit": "agent-steps/s",
    },
    {
        "simulator": "PhysiCell",
        "figure": "cell-steps at 100k cells",
        "value": 1.0e5,
        "unit": "cell-steps/s",
    },
    {
        "simulator": "PhysiCell",
        "figure": "state per cell",
        "value": 7800.0,
        "unit": "bytes/cell",
    },
)


def fmt(value: Any) -> str:
    """A number for the table: 3 significant digits, exponent form when large/small."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer) and abs(value) < 100_000:
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-2):
        return f"{v:.2e}"
    return f"{v:.3g}"


def _met_text(figure: Figure) -> str:
    if figure.target is None:
        return ""
    if not figure.target.applies:
        return "n/a"
    met = figure.met
    return "-" if met is None else ("yes" if met else "MISSED")


def missed_targets(figures: Iterable[Figure]) -> list[str]:
    """One line per figure whose target applies and is missed, saying by how much."""
    lines = []
    for f in figures:
        if f.met is False:
            t = f.target
            where = "" if t.threads is None else f" on {t.threads} thread{'s' * (t.threads > 1)}"
            lines.append(f"MISSED: {f.measurement.strip()}: {fmt(f.judged_value)} {f.unit}"
                         f"{where}, target {t.text}")
    return lines


def format_table(figures: Sequence[Figure], threads: Sequence[int]) -> str:
    """The figures as a fixed-width text table.

    Columns: measurement, value, unit, one per thread count, target, met?
    ("yes", "MISSED", "n/a" where this run did not measure the target's
    case, "-" where it could not be judged).  The value column is the best
    over thread counts; a target with a thread count is judged there.
    """
    head = ["measurement", "value", "unit", *[f"{t} thr" for t in threads], "target", "met?"]
    rows = [head]
    for f in figures:
        per = [
            fmt(f.by_threads.get(t)) if f.by_threads is not None else "" for t in threads
        ]
        target = "" if f.target is None else f.target.text
        rows.append([f.measurement, fmt(f.value), f.unit, *per, target, _met_text(f)])
    return _columns(rows, right={1, *range(3, 3 + len(threads))})


def format_peers(peers: Iterable[dict[str, Any]] = PEERS) -> str:
    """The peer figures as a small table."""
    rows = [["peer (from the issues)", "figure", "value", "unit"]]
    for p in peers:
        rows.append([p["simulator"], p["figure"], fmt(p["value"]), p["unit"]])
    return _columns(rows, right={2})


def _columns(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays and tuples as plain JSON values; NaN/inf as None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, report: dict[str, Any]) -> Path:
    """Write the report as indented JSON (replacing ``path``), creating folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(_plain(report), indent=2) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p
