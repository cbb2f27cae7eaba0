"""Tissue in, tissue out: start a run from a real sample's cell table, export snapshots
for the scverse tools, and measure real and simulated tissue with the same metrics.

* :mod:`tme_abm.tissue.table` reads a cell table (CSV, Parquet, ``.h5ad``);
* :mod:`tme_abm.tissue.placement` puts its cells on a lattice, with a report;
* :mod:`tme_abm.tissue.export` turns a run's snapshot into AnnData/SpatialData;
* :mod:`tme_abm.tissue.compare` puts a run and a real table side by side.

anndata, spatialdata and squidpy (the ``scverse`` extra) are imported only by
the functions that need them.
"""

from tme_abm.tissue.compare import compare_tissue, tissue_metrics
from tme_abm.tissue.export import table_to_anndata, to_anndata, to_spatialdata, write_export
from tme_abm.tissue.placement import PlacedTissue, TissueReport, place_cell_table
from tme_abm.tissue.table import CellTable, TissueError, read_cell_table

__all__ = [
    "CellTable",
    "compare_tissue",
    "PlacedTissue",
    "TissueError",
    "TissueReport",
    "place_cell_table",
    "read_cell_table",
    "table_to_anndata",
    "tissue_metrics",
    "to_anndata",
    "to_spatialdata",
    "write_export",
]
