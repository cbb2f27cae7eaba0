"""Run files and sweep folders as xarray / pandas objects for analysis.

:func:`open_run` gives one :class:`xarray.Dataset` (the lattice and every
saved field on ``(time, [z,] y, x)``, every time series on ``tick_time``,
coordinates in µm and minutes, units as attributes) plus a
:class:`pandas.DataFrame` of the per-cell rows with the snapshot each row
belongs to.  :func:`open_sweep` reads a sweep folder's summary table.
Only complete snapshots are read (``len(/time)``), so an interrupted
``.partial`` file opens too.

Cell types come out named: the cell table's ``type`` is a
:class:`pandas.Categorical` of type names (``groupby("type")`` gives names;
``.cat.codes`` the stored codes), and the dataset has a ``cell_type_name``
coordinate indexed by ``cell_type_code`` that names the lattice codes
(``ds.cell_type_name.sel(cell_type_code=ds.cell_type)``). Names are read by
pairing each dataset's ``flag_values`` with its ``flag_meanings``, so files
of format 1.0 (``empty`` listed first) read the same as 1.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from tme_abm.io.reader import _open_run, cell_type_labels
from tme_abm.io.writer import EMPTY_CODE, TYPE_COLUMN, cell_type_flags


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
        ``dataset``: lattice ``cell_type`` (int8 codes, -1 empty) and fields
        on ``(time, [z,] y, x)``, time series on ``tick_time``, and the
        coordinate ``cell_type_name`` on ``cell_type_code`` naming every
        code; ``cells``: one row per cell per snapshot with ``snapshot`` and
        ``time`` columns, ``type`` a :class:`pandas.Categorical` of names.

    Raises
    ------
    RunFileError
        If the file is missing, not a tme-abm run file, or damaged (for
        instance left by a run killed before its first snapshot).
    """
    p = Path(path)
    with _open_run(p) as f:
        n = int(f["time"].shape[0])
        spatial = [d for d in ("z", "y", "x") if d in f]
        coords = {"time": ("time", f["time"][:n], {"units": "minutes"})}
        for d in spatial:
            coords[d] = (d, f[d][:], {"units": "um"})
        data_vars = {}
        dims = ("time", *spatial)
        lattice = f["lattice/cell_type"]
        labels = cell_type_labels(lattice)
        names = [name for code, name in labels.items() if code != EMPTY_CODE]
        values, meanings = cell_type_flags(names, lattice.dtype)
        # the file's own flag order (1.0: empty first) is replaced by 1.1's
        flags = {"flag_values": values, "flag_meanings": meanings}
        data_vars["cell_type"] = (dims, lattice[:n], {**_attrs(lattice), **flags})
        coords["cell_type_code"] = ("cell_type_code", values, {"long_name": "cell type code"})
        coords["cell_type_name"] = (
            "cell_type_code",
            np.array(meanings.split(), dtype=object),
            {"long_name": "cell type name"},
        )
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
                if name == TYPE_COLUMN:
                    # 1.1 labels the column itself; 1.0 only the lattice
                    col = cell_type_labels(ds) if "flag_meanings" in ds.attrs else labels
                    categories = [col[c] for c in sorted(col) if c != EMPTY_CODE]
                    columns[name] = pd.Categorical.from_codes(
                        columns[name].astype(np.int64), categories=categories
                    )
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
