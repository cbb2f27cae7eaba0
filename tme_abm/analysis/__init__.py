"""Analysis of simulated tumours: metrics computed from run files and snapshots.

The job of this package is to measure simulated tissue the way a pathologist
would measure a section; it reads run files but never runs the model (no
Mesa, numba or model imports).  :mod:`tme_abm.analysis.spatial` holds the
spatial metrics of one lattice snapshot; :mod:`tme_abm.analysis.composition`
counts the immune composition of the tumour sample.
"""

from tme_abm.analysis.composition import immune_composition, run_composition, tumour_sample
from tme_abm.analysis.spatial import (
    SNAPSHOT_METRICS,
    cd8_core_margin_density,
    cd8_treg_ratio,
    codes_for_role,
    distance_from_tumour_edge_um,
    infiltrating_cd8,
    neighbour_any,
    run_metrics,
    snapshot_metrics,
    stat3_high_fraction_by_distance,
    tumour_cd8_contact_fraction,
    tumour_region,
)

__all__ = [
    "SNAPSHOT_METRICS",
    "cd8_core_margin_density",
    "cd8_treg_ratio",
    "codes_for_role",
    "distance_from_tumour_edge_um",
    "immune_composition",
    "infiltrating_cd8",
    "neighbour_any",
    "run_composition",
    "run_metrics",
    "snapshot_metrics",
    "stat3_high_fraction_by_distance",
    "tumour_cd8_contact_fraction",
    "tumour_region",
    "tumour_sample",
]
