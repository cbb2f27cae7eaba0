"""Tissue in, tissue out: start a run from a real sample's cell table, export snapshots
for the scverse tools, and measure real and simulated tissue with the same metrics.

* :mod:`tme_abm.tissue.table` reads a cell table (CSV, Parquet, ``.h5ad``);
* :mod:`tme_abm.tissue.placement` puts its cells on a lattice, with a report;
* :mod:`tme_abm.tissue.export` turns a run's snapshot into AnnData/SpatialData;
* :mod:`tme_abm.tissue.compare` puts a run and a real table side by side.

Loading a scenario imports only the first two (numpy, pandas on use); the
export and comparison functions load on first use, and anndata, spatialdata
and squidpy (the ``scverse`` extra) only inside the functions that need them.
"""

from __future__ import annotations

import importlib
from typing import Any

from tme_abm.tissue.placement import PlacedTissue, TissueReport, place_cell_table
from tme_abm.tissue.table import CellTable, TissueError, read_cell_table

_LAZY = {
    "compare_tissue": "tme_abm.tissue.compare",
    "tissue_metrics": "tme_abm.tissue.compare",
    "table_to_anndata": "tme_abm.tissue.export",
    "to_anndata": "tme_abm.tissue.export",
    "to_spatialdata": "tme_abm.tissue.export",
    "write_export": "tme_abm.tissue.export",
}

__all__ = [
    "CellTable",
    "PlacedTissue",
    "TissueError",
    "TissueReport",
    "compare_tissue",
    "place_cell_table",
    "read_cell_table",
    "table_to_anndata",
    "tissue_metrics",
    "to_anndata",
    "to_spatialdata",
    "write_export",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tme_abm.tissue' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
