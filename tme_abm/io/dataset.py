"""Run files and sweep folders as xarray / pandas objects for analysis.

:func:`open_run` gives one :class:`xarray.Dataset` (the lattice and every
saved field on ``(time, [z,] y, x)``, every time series on ``tick_time``,
coordinates in µm and minutes, units as attributes) plus a
:class:`pandas.DataFrame` of the per-cell rows with the snapshot each row
belongs to.  :func:`open_sweep` reads a sweep folder's summary table.
Only complete snapshots are read (``len(/time)``), so an interrupted
``.partial`` file opens too.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from tme_abm.io.reader import RunFileError


class RunData(NamedTuple):
    """What :func:`open_run` returns: ``dataset, cells = open_run(path)``."""

    dataset: xr.Dataset
    cells: pd.DataFrame


def _attrs(obj: h5py.HLObject) -> dict:
    out = {}
    for key, value in obj.attrs.items():
        if key in ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid"):
            continue
        out[key] = value.decode() if isinstance(value, bytes) else value
    return out


def open_run(path: str | Path) -> RunData:
    """Open a run file for analysis.

    Parameters
    ----------
    path
        A run file (``.h5``, or an interrupted ``.h5.partial``).

    Returns
    -------
    RunData
        ``dataset``: lattice ``cell_type`` and fields on ``(time, [z,] y, x)``,
        time series on ``tick_time``; ``cells``: one row per cell per
        snapshot with ``snapshot`` and ``time`` columns.
    """
    p = Path(path)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise RunFileError(f"{p}: not a readable HDF5 run file ({exc})") from None
    with f:
        if f.attrs.get("format") not in ("tme-abm-run", b"tme-abm-run"):
            raise RunFileError(f"{p}: not a tme-abm run file (no format attribute)")
        n = int(f["time"].shape[0])
        spatial = [d for d in ("z", "y", "x") if d in f]
        coords = {"time": ("time", f["time"][:n], {"units": "minutes"})}
        for d in spatial:
            coords[d] = (d, f[d][:], {"units": "um"})
        data_vars = {}
        dims = ("time", *spatial)
        lattice = f["lattice/cell_type"]
        data_vars["cell_type"] = (dims, lattice[:n], _attrs(lattice))
        for name, ds in f["fields"].items():
            if name in ("time", *spatial) or ds.ndim != len(dims):
                continue
            data_vars[name] = (dims, ds[:n], _attrs(ds))
        ts = f["timeseries"]
        k = int(ts["tick_time"].shape[0])
        lengths = [ts[name].shape[0] for name in ts if name != "tick_time"]
        k = min([k, *lengths])
        coords["tick_time"] = ("tick_time", ts["tick_time"][:k], {"units": "minutes"})
        for name, ds in ts.items():
            if name != "tick_time":
                data_vars[name] = ("tick_time", ds[:k], _attrs(ds))
        dataset = xr.Dataset(data_vars, coords=coords, attrs=_attrs(f))
        columns = {}
        if "cells" in f and "row_size" in f["cells"]:
            rows = f["cells/row_size"][:n].astype(np.int64)
            total = int(rows.sum())
            for name, ds in f["cells"].items():
                if name in ("row_size", "time", "cell") or ds.ndim != 1:
                    continue
                columns[name] = ds[:total]
            snapshot = np.repeat(np.arange(n), rows)
            columns = {"snapshot": snapshot, "time": dataset["time"].values[snapshot], **columns}
        cells = pd.DataFrame(columns)
    return RunData(dataset, cells)


def open_sweep(folder: str | Path) -> pd.DataFrame:
    """A sweep folder's summary: one row per run, parameters and outputs as columns.

    Raises
    ------
    FileNotFoundError
        If the folder has no ``summary.csv`` (not a sweep folder).
    """
    summary = Path(folder) / "summary.csv"
    if not summary.is_file():
        raise FileNotFoundError(f"{folder}: no summary.csv; is it a sweep folder?")
    return pd.read_csv(summary, keep_default_na=True)
