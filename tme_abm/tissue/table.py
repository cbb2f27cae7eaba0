"""Reading a cell table (CSV, Parquet or AnnData ``.h5ad``) into plain columns.

The job of this module is to turn a file of cells with positions and labels,
as multiplexed-imaging and spatial-transcriptomics pipelines write them, into
a :class:`CellTable`: numpy columns ``x``, ``y`` (and ``z``), the label of
every cell as text, and optionally one numeric column (a pSTAT3 intensity).
Every problem with the file is a :class:`TissueError` naming the key of the
scenario's ``[tissue]`` table that points at the bad column (``x_column``,
``type_column``, ...) and what is allowed; nothing is dropped silently.

Only the columns named are read, so a 10⁶-row table loads in about a second.
CSV needs nothing beyond pandas; Parquet needs pyarrow and ``.h5ad`` needs
anndata (the ``scverse`` extra), imported only when such a file is read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CellTable", "TissueError", "file_sha256", "read_cell_table", "read_spec_table",
           "TABLE_SUFFIXES"]

#: Column names taken for a third coordinate when no ``z_column`` is named.
Z_NAMES = ("z", "Z", "z_um", "Z_um", "z_position", "centroid_z", "Centroid_Z")

#: File endings read as cell tables, and how.
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".csv.gz": "csv", ".tsv.gz": "tsv",
                  ".parquet": "parquet", ".pq": "parquet", ".h5ad": "h5ad"}


class TissueError(ValueError):
    """A cell table that cannot be used: ``key`` is the ``[tissue]`` key at fault."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


@dataclass(frozen=True)
class CellTable:
    """A cell table's columns, one entry per row of the file.

    Attributes
    ----------
    path
        The file read.
    x, y
        Positions in the table's own units (float64).
    z
        Third coordinate, or None for a 2D table.
    labels
        Every row's cell-type label, as text.
    values
        The optional numeric column (e.g. pSTAT3 intensity), float64, or None.
    vessel
        Rows marked as vessels by a ``vessel_column`` (bool), or None.
    z_unnamed
        When no ``z_column`` was named but the table has a column that looks
        like a third coordinate (:data:`Z_NAMES`, or a third ``obsm`` column),
        its name and values: a 3D table must not be flattened unnoticed.
    """

    path: Path
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray | None
    labels: np.ndarray
    values: np.ndarray | None
    z_unnamed: tuple[str, np.ndarray] | None = None
    vessel: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.x.size)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def table_kind(path: str | Path) -> str | None:
    """``"csv"``, ``"tsv"``, ``"parquet"`` or ``"h5ad"`` from the file name, else None."""
    name = Path(path).name.lower()
    for suffix, kind in sorted(TABLE_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return kind
    return None


def _shown(value) -> str:
    """A cell's value for a message: ``empty`` for a missing one, else quoted text."""
    import pandas as pd

    return "empty" if pd.isna(value) else repr(str(value))


def _numbers(raw, key: str, column: str, path: Path) -> np.ndarray:
    """A column as float64; every missing or non-numeric row is an error."""
    import pandas as pd

    values = pd.to_numeric(pd.Series(np.asarray(raw)), errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise TissueError(
            key,
            f"column {column!r} of {path} has {rows.size} row(s) that are not finite numbers "
            f"(first at data row {int(rows[0]) + 1}: {_shown(np.asarray(raw)[rows[0]])}); "
            "remove or fix them",
        )
    return values


def _flags(raw, key: str, column: str, path: Path) -> np.ndarray:
    """A 0/1 or true/false column as bool; anything else is an error."""
    import pandas as pd

    series = pd.Series(np.asarray(raw, dtype=object))
    text = series.astype(str).str.strip().str.lower()
    truthy, falsy = {"1", "1.0", "true", "yes"}, {"0", "0.0", "false", "no"}
    bad = ~(text.isin(truthy) | text.isin(falsy)).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        raise TissueError(
            key, f"column {column!r} of {path} must hold 0/1 or true/false; {rows.size} row(s) "
            f"do not (first at data row {int(rows[0]) + 1}: {series.iloc[rows[0]]!r})",
        )
    return text.isin(truthy).to_numpy()


def _labels(raw, key: str, column: str, path: Path) -> np.ndarray:
    """A label column as text; missing or empty labels are an error."""
    import pandas as pd

    series = pd.Series(np.asarray(raw, dtype=object))
    missing = series.isna().to_numpy() | (series.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise TissueError(
            key,
            f"column {column!r} of {path} has {rows.size} row(s) without a label "
            f"(first at data row {int(rows[0]) + 1}); give every cell a type or remove the row",
        )
    return series.astype(str).to_numpy(dtype=object)


def _need(columns: list[str], want: dict[str, str], path: Path) -> None:
    for key, column in want.items():
        if column not in columns:
            shown = ", ".join(map(repr, columns[:30])) + (" ..." if len(columns) > 30 else "")
            raise TissueError(key, f"no column {column!r} in {path}; its columns: {shown}")


def _z_guess(columns: list[str], want: dict[str, str]) -> dict[str, str]:
    """``want`` plus ``"z?"`` -> a z-like column when no z column was named."""
    if "z_column" in want:
        return want
    found = next((c for c in Z_NAMES if c in columns), None)
    return {**want, "z?": found} if found else want


def _read_frame(path: Path, kind: str, want: dict[str, str]):
    """The named columns of a CSV/TSV/Parquet file as a DataFrame (and a z-like column)."""
    import pandas as pd

    if kind in ("csv", "tsv"):
        sep = "\t" if kind == "tsv" else ","
        try:
            header = pd.read_csv(path, sep=sep, nrows=0, comment=None).columns.tolist()
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise TissueError(
                "file", f"{path} is not a readable {kind.upper()} file: {exc}"
            ) from None
        _need([str(c) for c in header], want, path)
        want.update(_z_guess([str(c) for c in header], want))
        try:
            # labels as written (cluster ids "01" or "1.0" stay text, not numbers)
            return pd.read_csv(path, sep=sep, usecols=sorted(set(want.values())),
                               dtype={want["type_column"]: str}, keep_default_na=False,
                               na_values={c: ["", "NA", "NaN", "nan"] for c in want.values()},
                               low_memory=False)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise TissueError(
                "file", f"{path} is not a readable {kind.upper()} file: {exc}"
            ) from None
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TissueError("file", f"reading Parquet ({path}) needs pyarrow: "
                          "pip install 'tme_abm[scverse]'") from None
    try:
        columns = [str(c) for c in pq.read_schema(path).names]
    except Exception as exc:  # pyarrow raises its own error types for a bad file
        raise TissueError("file", f"{path} is not a readable Parquet file: {exc}") from None
    _need(columns, want, path)
    want.update(_z_guess(columns, want))
    return pd.read_parquet(path, columns=sorted(set(want.values())))


def _read_h5ad(path: Path, want: dict[str, str], spatial_key: str):
    """The named obs columns and, for coordinates not named in obs, ``obsm[spatial_key]``."""
    import h5py
    import pandas as pd

    try:
        from anndata.io import read_elem
    except ImportError:
        try:
            from anndata.experimental import read_elem
        except ImportError:
            raise TissueError("file", f"reading AnnData ({path}) needs anndata: "
                              "pip install 'tme_abm[scverse]'") from None
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TissueError("file", f"{path} is not a readable .h5ad (HDF5) file: {exc}") from None
    with f:
        if "obs" not in f:
            raise TissueError("file", f"{path} has no obs table; is it an AnnData .h5ad file?")
        obs = read_elem(f["obs"])
        columns = [str(c) for c in obs.columns]
        frame = pd.DataFrame(index=obs.index)
        coords = {k: v for k, v in want.items() if k in ("x_column", "y_column", "z_column")}
        in_obs = {k: v for k, v in want.items() if k not in coords or v in columns}
        _need(columns, {k: v for k, v in in_obs.items() if k not in coords}, path)
        for column in set(in_obs.values()):
            frame[column] = obs[column].to_numpy()
        from_obsm = {k: v for k, v in coords.items() if v not in columns}
        if from_obsm:
            if f"obsm/{spatial_key}" not in f:
                k, v = next(iter(from_obsm.items()))
                raise TissueError(
                    k, f"{path} has no obs column {v!r} and no obsm[{spatial_key!r}]; obs "
                    f"columns: {', '.join(map(repr, columns[:30]))}",
                )
            spatial = np.asarray(read_elem(f[f"obsm/{spatial_key}"]), dtype=np.float64)
            if spatial.ndim != 2 or spatial.shape[0] != len(frame):
                raise TissueError("file", f"obsm[{spatial_key!r}] of {path} has shape "
                                  f"{spatial.shape}; expected (cells, 2 or 3)")
            axis = {"x_column": 0, "y_column": 1, "z_column": 2}
            for k, v in from_obsm.items():
                if axis[k] >= spatial.shape[1]:
                    raise TissueError(k, f"obsm[{spatial_key!r}] of {path} has "
                                      f"{spatial.shape[1]} columns, so no {'xyz'[axis[k]]}")
                frame[v] = spatial[:, axis[k]]
            if "z_column" not in want and spatial.shape[1] >= 3 and "x_column" in from_obsm:
                name = f"obsm[{spatial_key!r}][:, 2]"
                frame[name] = spatial[:, 2]
                want["z?"] = name
        if "z_column" not in want and "z?" not in want:
            want.update(_z_guess(columns, want))
            if "z?" in want:
                frame[want["z?"]] = obs[want["z?"]].to_numpy()
    return frame


def read_cell_table(
    path: str | Path,
    *,
    x_column: str = "x",
    y_column: str = "y",
    z_column: str | None = None,
    type_column: str = "cell_type",
    value_column: str | None = None,
    value_key: str = "stat3_column",
    spatial_key: str = "spatial",
    vessel_column: str | None = None,
) -> CellTable:
    """Read the positions and labels (and one optional numeric column) of a cell table.

    Parameters
    ----------
    path
        A ``.csv``/``.tsv`` (optionally ``.gz``), ``.parquet`` or ``.h5ad`` file.
    x_column, y_column, z_column
        Coordinate columns.  In an ``.h5ad`` file a name that is not an obs
        column is taken from ``obsm[spatial_key]`` (columns 0, 1, 2).
    type_column
        The column of cell-type labels (text or categorical).
    value_column
        An optional numeric column (e.g. a pSTAT3 intensity).
    value_key
        The ``[tissue]`` key that named ``value_column``, for error messages.
    spatial_key
        The ``obsm`` entry holding coordinates in an ``.h5ad`` file.
    vessel_column
        An optional 0/1 or true/false column marking vessel rows.

    Returns
    -------
    CellTable

    Raises
    ------
    TissueError
        For a missing or unreadable file, a missing column, a coordinate or
        value that is not a finite number, or a row without a label; the
        error's ``key`` is the ``[tissue]`` key naming the column.
    """
    p = Path(path)
    if not p.is_file():
        raise TissueError("file", f"no such file: {p}")
    kind = table_kind(p)
    if kind is None:
        raise TissueError("file", f"{p}: unknown table format; use one of "
                          f"{', '.join(sorted(TABLE_SUFFIXES))}")
    want = {"x_column": x_column, "y_column": y_column, "type_column": type_column}
    if z_column:
        want["z_column"] = z_column
    if value_column:
        want[value_key] = value_column
    if vessel_column:
        want["vessel_column"] = vessel_column
    if kind == "h5ad":
        frame = _read_h5ad(p, want, spatial_key)
    else:
        frame = _read_frame(p, kind, want)
    if len(frame) == 0:
        raise TissueError("file", f"{p} holds no cells")
    z_name = want.get("z?")
    z_unnamed = None
    if z_name is not None:
        z_values = np.asarray(frame[z_name])
        z_unnamed = (z_name, _numbers(z_values, "z_column", z_name, p))
    return CellTable(
        path=p,
        z_unnamed=z_unnamed,
        x=_numbers(frame[x_column], "x_column", x_column, p),
        y=_numbers(frame[y_column], "y_column", y_column, p),
        z=_numbers(frame[z_column], "z_column", z_column, p) if z_column else None,
        labels=_labels(frame[type_column], "type_column", type_column, p),
        values=(_numbers(frame[value_column], value_key, value_column, p)
                if value_column else None),
        vessel=(_flags(frame[vessel_column], "vessel_column", vessel_column, p)
                if vessel_column else None),
    )


def read_spec_table(spec) -> CellTable:
    """:func:`read_cell_table` with the columns a ``[tissue]`` spec names (any object
    with its attributes: ``file``, ``x_column``, ``y_column``, ``z_column``,
    ``type_column``, ``stat3_column``, ``spatial_key``, ``vessel_column``)."""
    return read_cell_table(
        spec.file, x_column=spec.x_column, y_column=spec.y_column, z_column=spec.z_column,
        type_column=spec.type_column, value_column=spec.stat3_column,
        spatial_key=spec.spatial_key, vessel_column=spec.vessel_column,
    )
