"""HDF5 run files: write a run (:class:`RunWriter`) and read it back.

One file per run, readable with plain h5py, with
``xarray.open_dataset(path, engine="h5netcdf", group=...)`` and with R's
hdf5r. Written as ``<path>.partial``, flushed after every snapshot, renamed
when complete. This package imports neither Mesa, numba nor the model.
"""

from tme_abm.io.reader import (
    RunFileError,
    cell_type_labels,
    format_summary,
    read_checkpoint,
    read_run_info,
    read_snapshot,
    read_timeseries,
    run_summary,
)
from tme_abm.io.writer import (
    FORMAT_NAME,
    FORMAT_VERSION,
    RunExistsError,
    RunLayout,
    RunWriter,
    partial_path_for,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "RunExistsError",
    "RunFileError",
    "RunLayout",
    "RunWriter",
    "cell_type_labels",
    "format_summary",
    "partial_path_for",
    "read_checkpoint",
    "read_run_info",
    "read_snapshot",
    "read_timeseries",
    "run_summary",
]
