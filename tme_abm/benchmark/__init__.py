"""Performance benchmarks of tme_abm (``tme-abm bench``, ``tools/bench.py``).

Measures both field solvers side by side (the exact step, the default, and
the LOD step, with LOD's throughput against the machine's memory
bandwidth), whole ticks of the baseline biology at 1e4-1e6 cells at several
numba thread counts (and at the largest size with the LOD solver too),
memory per cell, run-file write throughput, and the engine against a
plain-Mesa model of the same simple rules; prints a table with the targets
of the performance issues and writes everything to JSON.

Modules: :mod:`~tme_abm.benchmark.run` (the whole run),
:mod:`~tme_abm.benchmark.command` (the command line),
:mod:`~tme_abm.benchmark.system` (idle check, machine, STREAM triad),
:mod:`~tme_abm.benchmark.fieldbench`, :mod:`~tme_abm.benchmark.ticks`,
:mod:`~tme_abm.benchmark.walk` (the Mesa reference),
:mod:`~tme_abm.benchmark.report` (figures, targets, peers, table, JSON).
The names below are imported on first use, so that the command line can
read its arguments without loading numba and Mesa.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchConfig": "tme_abm.benchmark.run",
    "run_bench": "tme_abm.benchmark.run",
    "format_report": "tme_abm.benchmark.run",
    "Figure": "tme_abm.benchmark.report",
    "Target": "tme_abm.benchmark.report",
    "PEERS": "tme_abm.benchmark.report",
    "format_table": "tme_abm.benchmark.report",
    "write_json": "tme_abm.benchmark.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tme_abm.benchmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
