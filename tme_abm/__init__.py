"""tme_abm: an agent-based model of the tumour microenvironment with per-cell STAT3.

The public API, re-exported here and imported on first use (so that
``tme-abm validate`` does not pay for loading Mesa and numba)::

    TMEModel                 the Mesa model (tme_abm.model)
    load_scenario            read + validate a scenario file (tme_abm.scenario)
    ScenarioError            what invalid scenarios raise
    run_scenario             run a scenario into a run file (tme_abm.runner)
    run_summary, read_snapshot, read_timeseries   read run files (tme_abm.io)
    open_run, open_sweep     run files / sweep folders as xarray and pandas
    run_sweep                run a sweep file (tme_abm.batch.sweep)
    simulate, simulate_batch parameters + seed -> summary statistics (tme_abm.calibration)
    load_calibration         read + validate a calibration file (tme_abm.calibration)
    to_anndata, to_spatialdata   a run's snapshot for scanpy/squidpy (tme_abm.tissue)
    read_cell_table, table_to_anndata, tissue_metrics, compare_tissue   real cell
                             tables, as AnnData; their metrics, alone or beside a run
"""

from __future__ import annotations

import importlib
from typing import Any

from tme_abm import _runtime

# before any kernel module imports numba: OpenMP wait policy and kernel cache
# folder, where the user has not set them (see tme_abm._runtime)
_runtime.configure()

_EXPORTS = {
    "TMEModel": "tme_abm.model",
    "load_scenario": "tme_abm.scenario",
    "ScenarioError": "tme_abm.scenario",
    "run_scenario": "tme_abm.runner",
    "run_summary": "tme_abm.io",
    "read_snapshot": "tme_abm.io",
    "read_timeseries": "tme_abm.io",
    "open_run": "tme_abm.io.dataset",
    "open_sweep": "tme_abm.io.dataset",
    "run_sweep": "tme_abm.batch.sweep",
    "simulate": "tme_abm.calibration",
    "simulate_batch": "tme_abm.calibration",
    "load_calibration": "tme_abm.calibration",
    "to_anndata": "tme_abm.tissue",
    "to_spatialdata": "tme_abm.tissue",
    "read_cell_table": "tme_abm.tissue",
    "table_to_anndata": "tme_abm.tissue",
    "tissue_metrics": "tme_abm.tissue",
    "compare_tissue": "tme_abm.tissue",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tme_abm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
