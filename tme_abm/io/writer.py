"""Write one simulation run to one HDF5 run file.

The job of this module is the *writing* side of the run-file format (described
for users in ``docs/run_file.md``): a :class:`RunLayout` says what a run will contain, and a
:class:`RunWriter` creates ``<path>.partial``, appends snapshots, per-tick time
series and the latest checkpoint, flushes after every snapshot, and renames the
file to ``<path>`` when the run completes.

Layout of the file (``[nz,]`` only for 3D lattices)::

    /                        format="tme-abm-run", format_version, provenance attrs
    /time (T)                minutes, unlimited; written LAST in each snapshot
    /x (nx), /y (ny), /z     site centres in um
    /lattice/cell_type       (T, [nz,] ny, nx) int8 with flag_values / flag_meanings
                             (the cell-type labels, see :func:`cell_type_flags`)
    /fields/<name>           (T, [nz,] ny, nx) float32 with units / long_name
    /cells/<column>          (cell) all snapshots concatenated; ``type`` carries
                             the same flag_values / flag_meanings as the lattice
    /cells/row_size          (T) rows per snapshot (CF contiguous ragged array)
    /timeseries/tick_time    (tick_time) minutes, every tick
    /timeseries/<name>       (tick_time)
    /checkpoint/...          full state at the last snapshot, committed with it
    /checkpoints/s<index>/   copies kept at chosen snapshots (for forks)

Every group that holds data variables carries its own copies of the coordinate
variables it uses (``time``, ``z``, ``y``, ``x``) as HDF5 dimension scales, so
``xarray.open_dataset(path, engine="h5netcdf", group=...)`` gives named
dimensions *and* coordinate values for each group on its own; h5netcdf
resolves scales in a parent group only as bare dimension names.
``len(/time)`` is the number of complete snapshots: a writer killed during a
snapshot may leave one extra row in the other datasets, which readers ignore.

Surviving SIGKILL: HDF5 without SWMR has no journal, so the writer keeps the
last flushed state valid by never moving or freeing anything that state refers
to: every lattice/field chunk holds part of one snapshot and is written once
(gzip + shuffle); datasets that grow by appending rows are chunked but
uncompressed so their partly filled last chunk is updated in place; ``/time``
grows only after a flush of everything else; and the old checkpoint is freed
only after a flush that no longer refers to it.

Chunks and compression were chosen by measurement: the figures are in
``docs/run_file_layout.md`` and come from ``python -m
tme_abm.benchmark.h5layout`` (real snapshots of ``large.toml`` at 1024^2 and
``baseline_3d.toml`` at 128^3). Lattice and field chunks are
``(1, *tile_shape(shape))``: tiles of at most :data:`CHUNK_SITES` sites (256
KiB of float32), so a lattice of up to 64 Ki sites (200 x 200) keeps one
chunk per snapshot, and larger ones are cut by halving (1200^2: 150 x 300;
200^3: 25 x 50 x 50). Against whole-snapshot chunks the tiles stored -0.2 to
+0.6 % bytes, wrote as fast, read a whole snapshot as fast (3D: +9 %), and
read a 64 x 64 window over all snapshots 5-13x, a single site's series
13-26x and a 3D z plane 3.4x faster; every chunk fits HDF5's default 1 MiB
chunk cache. gzip level 1 with shuffle (the scenario default) stored only
0.6-2 % more than levels 4 and 6, which took 16-52 % longer to write;
without shuffle the grids took 30-36 % more bytes; lzf (h5py only, so not
offered) wrote twice as fast for 9-10 % more bytes. Checkpoint arrays are
chunked by the same rule with one field (or behaviour) per chunk
(:func:`checkpoint_chunks`): 9-13 % fewer bytes than h5py's automatic
chunks. Replacing the checkpoint at every snapshot does not make the file
grow per snapshot (HDF5 reuses the freed old checkpoint's space; measured
growth per snapshot = the snapshot's own bytes), but HDF5 cannot give the
last replaced checkpoint's space back at close; :meth:`RunWriter.close`
rewrites a file where that is more than a tenth of it
(:mod:`tme_abm.io.repack`).

This module imports only numpy and h5py.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from tme_abm.io.checkpoints import (
    CHECKPOINT_GROUP,
    CHECKPOINT_OLD,
    CHECKPOINT_TMP,
    CRC_ATTR,
    KEPT_GROUP,
    CheckpointError,
    array_crc32,
    checkpoint_candidates,
    kept_name,
    read_checkpoint_group,
)
from tme_abm.io.repack import repack_if_wasteful

__all__ = [
    "CELL_DIM",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CHUNK_SITES",
    "EMPTY_CODE",
    "EMPTY_NAME",
    "TICK_DIM",
    "TYPE_COLUMN",
    "RunExistsError",
    "RunLayout",
    "RunWriter",
    "ResumePoint",
    "cell_type_flags",
    "checkpoint_chunks",
    "partial_path_for",
    "tile_shape",
]

FORMAT_NAME = "tme-abm-run"
#: 1.1: every type-coded dataset (``/lattice/cell_type``, ``/cells/type``,
#: ``/checkpoint/type``) carries ``flag_values`` / ``flag_meanings``, listed
#: in code order 0, 1, ... with ``empty`` (code -1) last, so that
#: ``flag_meanings.split()[code]`` is right for every code in Python. In 1.0
#: only the lattice had them, with ``empty`` first. Readers pair
#: ``flag_values`` with ``flag_meanings`` and so read both.
#: 1.2: each snapshot's checkpoint is committed with the snapshot (the two are
#: never one snapshot apart), every checkpoint array carries a ``crc32``
#: attribute, the checkpoint holds ``vessel_sites``, snapshots chosen by
#: ``output.checkpoint_days`` keep a copy under ``/checkpoints/s<index>``,
#: and the root attribute ``chunk_sites`` records the tile size. Readers of
#: 1.1 read 1.2 files.
FORMAT_VERSION = "1.2"
TIME_UNITS = "minutes"
LENGTH_UNITS = "um"
CELL_DIM = "cell"
TICK_DIM = "tick_time"
PARTIAL_SUFFIX = ".partial"
#: Cell-type code of an empty lattice site, and its name in ``flag_meanings``.
EMPTY_CODE = -1
EMPTY_NAME = "empty"
#: The per-cell column (and checkpoint array) that holds cell-type codes.
TYPE_COLUMN = "type"

# netCDF-4 marks a dimension scale that is not a coordinate variable this way;
# h5netcdf and netCDF-C then expose a named dimension without a variable.
NOT_A_VARIABLE = "This is a netCDF dimension but not a netCDF variable."

_SPATIAL_DIMS = ("z", "y", "x")
_RESERVED_GROUP_NAMES = frozenset({"time", "x", "y", "z"})
_RESERVED_CELL_NAMES = frozenset({"time", CELL_DIM, "row_size"})
_RESERVED_SERIES_NAMES = frozenset({"time", TICK_DIM})
#: Most sites (array elements) in one lattice, field or checkpoint chunk: 64 Ki,
#: i.e. 256 KiB of float32 and 64 KiB of the int8 lattice. Chosen by measurement
#: (docs/run_file_layout.md): 256 KiB tiles cost at most 0.6 % more bytes than
#: whole-snapshot chunks (64 KiB tiles: 3 %) and read windows and single sites
#: 5-26x faster.
CHUNK_SITES = 65536
#: A checkpoint array whose last axis is at most this long (fields, behaviours)
#: is chunked one index of that axis at a time: like values compress together.
_CHANNEL_AXIS_MAX = 64
_COLUMN_CHUNK = 16384  # rows; uncompressed, so kept modest (128 KiB for int64)
_SERIES_CHUNK = 1024
_TIME_CHUNK = 256
# Storage for datasets that grow along one axis by appending rows (time copies,
# row_size, cell columns, time series): chunked but NOT compressed. Appending
# to a compressed dataset rewrites its last, partly filled chunk at a new file
# address and frees the old one; HDF5 reuses freed space before the next
# flush, so a writer killed then leaves the last flushed index pointing at
# overwritten bytes (measured: 7 of 40 SIGKILLs corrupted completed
# snapshots). Uncompressed chunks are updated in place and never move.
# Lattice and field chunks hold (a tile of) exactly one snapshot, are written
# once, and are compressed.
_APPENDED: dict[str, Any] = {}

# HDF5's chunk cache for every dataset the writer opens: none. Each chunk is
# written once, whole (lattice, field and checkpoint chunks, compressed on the
# way) or by appending rows to an uncompressed chunk in place (see above), and
# is never read back, so a cache only holds chunks already written: HDF5's
# default (8 MiB a dataset in HDF5 2, 1 MiB before) over the ~110 datasets a
# run keeps open grew a long run's memory by several KB a tick. With none,
# appends go straight to the file and memory stays flat, and writes are as
# fast (``tme-abm bench``'s long-run memory and run-file write figures).
# Readers open the file with their own cache; this setting is not stored.
_CHUNK_CACHE: dict[str, Any] = {"rdcc_nbytes": 0}


def tile_shape(shape: Sequence[int], max_sites: int = CHUNK_SITES) -> tuple[int, ...]:
    """Chunk (tile) shape for an array: halve the longest edge until small enough.

    Starting from the whole array, the longest tile edge (the first such axis
    on ties) is halved, rounding up, until a tile holds at most ``max_sites``
    elements. Arrays of at most ``max_sites`` elements stay whole. Halving
    keeps tiles near cubes, and tiles divide the usual lattice sides (200,
    1024, 1200, 128) exactly: a partly filled edge tile cost 15 % more time
    to read a whole snapshot in a measurement.

    Parameters
    ----------
    shape
        Array shape, e.g. a lattice ``(ny, nx)`` or ``(nz, ny, nx)``.
    max_sites
        Most elements in one tile (:data:`CHUNK_SITES` by default).

    Returns
    -------
    tuple of int
        Tile shape, each edge between 1 and the array's edge.

    Raises
    ------
    ValueError
        If an edge or ``max_sites`` is not positive.

    Examples
    --------
    >>> tile_shape((200, 200)), tile_shape((1200, 1200)), tile_shape((200, 200, 200))
    ((200, 200), (150, 300), (25, 50, 50))
    """
    full = tuple(int(n) for n in shape)
    if any(n <= 0 for n in full) or int(max_sites) <= 0:
        raise ValueError(f"tile_shape needs positive sizes, got {full} and {max_sites}")
    parts = [1] * len(full)
    tile = list(full)
    while math.prod(tile) > max_sites:
        axis = max(range(len(tile)), key=tile.__getitem__)
        parts[axis] *= 2
        tile[axis] = -(-full[axis] // parts[axis])
    return tuple(tile)


def checkpoint_chunks(shape: Sequence[int], max_sites: int = CHUNK_SITES) -> tuple[int, ...]:
    """Chunk shape of a compressed checkpoint array.

    An array whose last axis is short (at most 64: the field axis of the
    concentrations, the behaviour axis of the behaviour cache) gets one index
    of that axis per chunk, since one field's or behaviour's values compress
    far better together than interleaved; the other axes are tiled by
    :func:`tile_shape`. Other arrays are tiled as a whole.

    Parameters
    ----------
    shape
        Array shape (at least one axis, all positive).
    max_sites
        Most elements in one chunk.

    Returns
    -------
    tuple of int
        Chunk shape.

    Examples
    --------
    >>> checkpoint_chunks((1, 1200, 1200, 12)), checkpoint_chunks((950000, 40))
    ((1, 150, 300, 1), (59375, 1))
    """
    full = tuple(int(n) for n in shape)
    if len(full) >= 2 and full[-1] <= _CHANNEL_AXIS_MAX:
        return (*tile_shape(full[:-1], max_sites), 1)
    return tile_shape(full, max_sites)


def cell_type_flags(
    names: Sequence[str], dtype: str | np.dtype = "i1"
) -> tuple[np.ndarray, str]:
    """CF ``flag_values`` and ``flag_meanings`` that label cell-type codes.

    Code ``i`` is ``names[i]``; :data:`EMPTY_CODE` (-1, an empty site) is
    :data:`EMPTY_NAME` and comes last, so the ``i``-th meaning names code
    ``i`` and, in Python, meaning ``-1`` names code -1.

    Parameters
    ----------
    names
        Cell-type names in code order.
    dtype
        Integer dtype of the labelled dataset (CF wants ``flag_values`` in
        the variable's own type).

    Returns
    -------
    tuple
        ``(flag_values, flag_meanings)``: an array ``[0, 1, ..., n-1, -1]``
        and the matching space-separated names.
    """
    values = np.array([*range(len(names)), EMPTY_CODE], dtype=dtype)
    return values, " ".join((*names, EMPTY_NAME))


def _label_types(ds: h5py.Dataset, names: Sequence[str]) -> None:
    """Put the cell-type labels on a dataset of type codes."""
    values, meanings = cell_type_flags(names, ds.dtype)
    ds.attrs["flag_values"] = values
    ds.attrs["flag_meanings"] = meanings


def partial_path_for(path: str | Path) -> Path:
    """Return the in-progress file name for a run file.

    Parameters
    ----------
    path
        Final run-file path, e.g. ``output/baseline.h5``.

    Returns
    -------
    Path
        ``<path>.partial``, e.g. ``output/baseline.h5.partial``.
    """
    p = Path(path)
    return p.with_name(p.name + PARTIAL_SUFFIX)


class RunExistsError(FileExistsError):
    """A run file (or an interrupted ``.partial`` of it) is already there."""


def _check_name(kind: str, name: str, reserved: frozenset[str]) -> None:
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{kind} name {name!r} is not a valid HDF5 name")
    if name.startswith("_"):
        raise ValueError(f"{kind} name {name!r} must not start with '_'")
    if name in reserved:
        raise ValueError(f"{kind} name {name!r} is reserved (reserved: {sorted(reserved)})")


def _check_unique(kind: str, names: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"duplicate {kind} name {n!r}")
        seen.add(n)


@dataclass(frozen=True)
class RunLayout:
    """What a run file will hold; fixed for the whole run.

    Parameters
    ----------
    shape
        Lattice shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    site_um
        Lattice spacing in micrometres.
    field_names, field_units, field_long_names
        Fields saved in every snapshot, in order, with their units (e.g.
        ``"ng/mL"``) and long names (e.g. ``"IL-6"``).
    cell_type_names
        Cell type code ``i`` is ``cell_type_names[i]``; code ``-1`` is an
        empty site. Names must not contain whitespace (they form the CF
        ``flag_meanings`` attribute).
    cell_columns
        Per-cell columns saved in snapshots as ``(name, numpy dtype string,
        units)``, e.g. ``("stat3", "float32", "1")``. A column named
        :data:`TYPE_COLUMN` (``"type"``) holds cell-type codes: it must be
        an integer column, and is labelled like the lattice.
    timeseries
        Per-tick series as ``(name, units, description)``.
    attrs
        Provenance written as root attributes (seed, scenario TOML text,
        scenario_name, dt_min, ...). Values must be strings, numbers, bools,
        numeric sequences, or JSON-serialisable mappings/lists.

    Raises
    ------
    ValueError
        If the layout is inconsistent (lengths differ, names invalid,
        duplicated or reserved, dtypes unknown).
    """

    shape: tuple[int, ...]
    site_um: float
    field_names: tuple[str, ...]
    field_units: tuple[str, ...]
    field_long_names: tuple[str, ...]
    cell_type_names: tuple[str, ...]
    cell_columns: tuple[tuple[str, str, str], ...]
    timeseries: tuple[tuple[str, str, str], ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) not in (2, 3) or any(s <= 0 for s in shape):
            raise ValueError(
                f"shape must be (ny, nx) or (nz, ny, nx) of positive ints, got {shape}"
            )
        object.__setattr__(self, "shape", shape)
        if not (math.isfinite(self.site_um) and self.site_um > 0):
            raise ValueError(f"site_um must be a positive number, got {self.site_um!r}")
        for attr in ("field_names", "field_units", "field_long_names", "cell_type_names"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        object.__setattr__(self, "cell_columns", tuple(tuple(c) for c in self.cell_columns))
        object.__setattr__(self, "timeseries", tuple(tuple(t) for t in self.timeseries))
        n = len(self.field_names)
        if len(self.field_units) != n or len(self.field_long_names) != n:
            raise ValueError(
                f"field_names ({n}), field_units ({len(self.field_units)}) and "
                f"field_long_names ({len(self.field_long_names)}) must have equal lengths"
            )
        for name in self.field_names:
            _check_name("field", name, _RESERVED_GROUP_NAMES)
        _check_unique("field", self.field_names)
        if not self.cell_type_names or len(self.cell_type_names) > 127:
            raise ValueError("cell_type_names must hold 1 to 127 names (codes are int8)")
        for name in self.cell_type_names:
            if not isinstance(name, str) or not name or any(c.isspace() for c in name):
                raise ValueError(f"cell type name {name!r} must be non-empty without whitespace")
            if name == "empty":
                raise ValueError("cell type name 'empty' is reserved for code -1")
        _check_unique("cell type", self.cell_type_names)
        for col in self.cell_columns:
            if len(col) != 3:
                raise ValueError(f"cell column {col!r} must be (name, dtype, units)")
            name, dtype, _units = col
            _check_name("cell column", name, _RESERVED_CELL_NAMES)
            try:
                dt = np.dtype(dtype)
            except TypeError as exc:
                raise ValueError(f"cell column {name!r}: unknown dtype {dtype!r}") from exc
            if dt.kind not in "biuf":
                raise ValueError(
                    f"cell column {name!r}: dtype {dtype!r} is not bool, integer or float"
                )
            if name == TYPE_COLUMN and dt.kind != "i":
                raise ValueError(
                    f"cell column {name!r} holds cell-type codes: its dtype must be a "
                    f"signed integer (code {EMPTY_CODE} is labelled too), got {dtype!r}"
                )
        _check_unique("cell column", tuple(c[0] for c in self.cell_columns))
        for ts in self.timeseries:
            if len(ts) != 3:
                raise ValueError(f"time series {ts!r} must be (name, units, description)")
            _check_name("time series", ts[0], _RESERVED_SERIES_NAMES)
        _check_unique("time series", tuple(t[0] for t in self.timeseries))
        # validate provenance now, so that a bad value fails before any file exists
        for key, value in self.attrs.items():
            _attr_value(str(key), value)

    @property
    def ndim(self) -> int:
        """Number of lattice dimensions (2 or 3)."""
        return len(self.shape)

    @property
    def spatial_dims(self) -> tuple[str, ...]:
        """Dimension names of the lattice axes: ``("y", "x")`` or ``("z", "y", "x")``."""
        return _SPATIAL_DIMS[-self.ndim :]

    @property
    def timeseries_names(self) -> tuple[str, ...]:
        """Names of the per-tick series, in order."""
        return tuple(t[0] for t in self.timeseries)


def _attr_value(key: str, value: Any) -> Any:
    """Convert a provenance value into something every HDF5 reader can read."""
    if isinstance(value, (bool, np.bool_)):
        return np.int8(bool(value))  # HDF5 has no bool; h5py's enum trips netCDF readers
    if isinstance(value, str | bytes | int | float | np.integer | np.floating):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray | list | tuple):
        arr = np.asarray(value)
        if arr.dtype.kind in "iuf" and arr.ndim == 1:
            return arr
    if value is None:
        return ""
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError as exc:
        raise ValueError(
            f"attribute {key!r}: cannot store a {type(value).__name__} (use str, numbers, "
            "numeric sequences or JSON-serialisable data)"
        ) from exc


def _package_version() -> str:
    try:
        return importlib.metadata.version("tme_abm")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunWriter:
    """Write a run to ``<path>.partial`` and rename it to ``path`` when complete.

    Parameters
    ----------
    path
        Final run-file path. Parent directories are created.
    layout
        What the run holds (lattice shape, fields, cell columns, series).
    force
        Replace an existing ``path`` (only at the final rename, so a crashed
        forced run never destroys the old result) or a leftover ``.partial``.
    compression_level
        gzip level (0-9) used, with shuffle, on lattice, field and checkpoint
        datasets (appended 1D datasets are uncompressed; see module notes).
    chunk_sites
        Most sites in one lattice, field or checkpoint chunk (see
        :func:`tile_shape`); the default :data:`CHUNK_SITES` was chosen by
        measurement, smaller values exist for tests and benchmarks.

    Raises
    ------
    RunExistsError
        If ``path`` or ``<path>.partial`` exists and ``force`` is false;
        nothing is created in that case.

    Notes
    -----
    Use as a context manager: leaving the block normally completes the run;
    leaving it through an exception closes the file as an interrupted run and
    leaves the ``.partial`` (all snapshots completed so far are readable).
    """

    def __init__(
        self,
        path: str | Path,
        layout: RunLayout,
        *,
        force: bool = False,
        compression_level: int = 1,
        chunk_sites: int = CHUNK_SITES,
    ) -> None:
        if not isinstance(layout, RunLayout):
            raise TypeError(f"layout must be a RunLayout, got {type(layout).__name__}")
        if not 0 <= int(compression_level) <= 9:
            raise ValueError(f"compression_level must be 0..9, got {compression_level}")
        if int(chunk_sites) < 1:
            raise ValueError(f"chunk_sites must be positive, got {chunk_sites}")
        self._chunk_sites = int(chunk_sites)
        self._layout = layout
        self._final = Path(path)
        self._partial = partial_path_for(self._final)
        self._gzip = _gzip_options(compression_level)
        if not force:
            if self._final.exists():
                raise RunExistsError(
                    f"run file {self._final} already exists; use --force (force=True) to replace it"
                )
            if self._partial.exists():
                raise RunExistsError(
                    f"{self._partial} (an interrupted run) already exists; use --force "
                    "(force=True) to replace it"
                )
        if self._final.is_dir():
            raise RunExistsError(f"{self._final} is a directory, not a run file")
        root_attrs = {str(k): _attr_value(str(k), v) for k, v in layout.attrs.items()}
        self._final.parent.mkdir(parents=True, exist_ok=True)
        self._n_snapshots = 0
        self._n_rows = 0
        self._n_ticks = 0
        self._last_time = -math.inf
        self._last_tick_time = -math.inf
        self._ts_buffer: list[tuple[float, tuple[float, ...]]] = []
        self._closed_path: Path | None = None
        self._file = h5py.File(self._partial, "w", track_order=True, **_CHUNK_CACHE)
        try:
            self._create(root_attrs)
            self._file.flush()
        except BaseException:
            self._file.close()
            self._partial.unlink(missing_ok=True)
            raise

    # ---------------------------------------------------------------- reopen
    @classmethod
    def reopen(
        cls,
        partial: str | Path,
        *,
        before_truncate: Callable[[ResumePoint], None] | None = None,
    ) -> tuple[RunWriter, ResumePoint]:
        """Open an interrupted run's ``.partial`` to continue writing it.

        The newest checkpoint that reads back whole (every array matches its
        checksum) and belongs to a snapshot whose data are complete is
        chosen; everything written after that snapshot (snapshot rows, cell
        rows, time-series ticks, later kept checkpoints, a half-committed
        checkpoint) is cut, the chosen checkpoint becomes ``/checkpoint``,
        and the file is flushed before anything new is written. Continuing
        from the returned state with the same scenario and seed then writes
        exactly what the uninterrupted run would have.

        Parameters
        ----------
        partial
            The ``<path>.partial`` of an interrupted run.
        before_truncate
            Called with the chosen point before the file is changed; an
            exception from it leaves the file untouched (a caller builds and
            restores its model here).

        Returns
        -------
        tuple
            The writer (its :attr:`final_path` is ``<path>``) and the
            :class:`ResumePoint` to restore the model from.

        Raises
        ------
        CheckpointError
            If the file holds no usable checkpoint (nothing is changed).
        OSError
            If the file cannot be opened for writing.
        """
        partial = Path(partial)
        if not partial.name.endswith(PARTIAL_SUFFIX):
            raise ValueError(f"{partial} is not a .partial file")
        f = h5py.File(partial, "r+", **_CHUNK_CACHE)
        try:
            point = _choose_resume_point(f)
            from tme_abm.io.reader import read_layout  # the reader imports this module

            layout = read_layout(f)
            if before_truncate is not None:
                before_truncate(point)
            self = cls.__new__(cls)
            self._layout = layout
            self._final = partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])
            self._partial = partial
            self._chunk_sites = int(f.attrs.get("chunk_sites", CHUNK_SITES))
            self._gzip = _gzip_options(f["lattice/cell_type"].compression_opts or 0)
            self._file = f
            self._bind_existing()
            self._truncate_to(point)
            f.flush()
        except BaseException:
            f.close()
            raise
        self._closed_path = None
        self._ts_buffer = []
        return self, point

    def _bind_existing(self) -> None:
        """Take the dataset handles of an existing run file."""
        f = self._file
        self._root_time = f["time"]
        self._cell_type = f["lattice/cell_type"]
        self._fields = {name: f["fields"][name] for name in self._layout.field_names}
        cells = f["cells"]
        self._cell_dim = cells[CELL_DIM]
        self._columns = {
            name: (cells[name], np.dtype(dtype)) for name, dtype, _ in self._layout.cell_columns
        }
        self._row_size = cells["row_size"]
        self._tick_time = f["timeseries"][TICK_DIM]
        self._series = {name: f["timeseries"][name] for name in self._layout.timeseries_names}
        self._time_copies = (f["lattice/time"], f["fields/time"], cells["time"])

    def _truncate_to(self, point: ResumePoint) -> None:
        """Cut the file back to the snapshot of ``point`` and make its
        checkpoint ``/checkpoint``."""
        f = self._file
        n = point.snapshot + 1
        for ds in (self._cell_type, *self._fields.values(), self._row_size, *self._time_copies):
            ds.resize(n, axis=0)
        rows = int(self._row_size[:n].sum())
        for ds, _dt in self._columns.values():
            ds.resize((rows,))
        self._cell_dim.resize((rows,))
        ticks = point.tick + 1
        for ds in (self._tick_time, *self._series.values()):
            ds.resize((ticks,))
        # the checkpoint first, then /time: /time vouches for what is before it
        name = point.checkpoint
        if name != CHECKPOINT_GROUP:
            if CHECKPOINT_GROUP in f:
                del f[CHECKPOINT_GROUP]
            if name.startswith(KEPT_GROUP + "/"):  # written again: see _stage_checkpoint
                attrs = {k: v for k, v in point.attrs.items() if k != "written"}
                self._write_checkpoint_group(CHECKPOINT_GROUP, point.arrays, attrs)
            else:
                f.move(name, CHECKPOINT_GROUP)
        for hidden in (CHECKPOINT_TMP, CHECKPOINT_OLD):
            if hidden in f:
                del f[hidden]
        if KEPT_GROUP in f:
            for key in list(f[KEPT_GROUP]):
                if int(key.lstrip("s")) >= n:
                    del f[KEPT_GROUP][key]
        f.flush()
        self._root_time.resize((n,))
        self._root_time[n - 1] = point.time_min
        self._n_snapshots = n
        self._n_rows = rows
        self._n_ticks = ticks
        self._last_time = point.time_min
        self._last_tick_time = point.time_min

    # ------------------------------------------------------------------ paths
    @property
    def partial_path(self) -> Path:
        """Path written while the run is in progress (``<path>.partial``)."""
        return self._partial

    @property
    def final_path(self) -> Path:
        """Path of the completed run file."""
        return self._final

    @property
    def attrs(self) -> h5py.AttributeManager:
        """The open file's root attributes (provenance may be added while writing)."""
        self._check_open()
        return self._file.attrs

    @property
    def layout(self) -> RunLayout:
        """The layout this writer was created with."""
        return self._layout

    @property
    def n_snapshots(self) -> int:
        """Number of complete snapshots written so far."""
        return self._n_snapshots

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed_path is not None

    # --------------------------------------------------------------- creation
    def _scale(
        self,
        group: h5py.Group,
        name: str,
        data: np.ndarray | None = None,
        *,
        units: str,
        long_name: str,
    ) -> h5py.Dataset:
        """Create a coordinate variable (unlimited time if ``data`` is None)."""
        if data is None:
            ds = group.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                dtype="f8",
                chunks=(_TIME_CHUNK,),
                fillvalue=np.nan,  # a torn row reads as NaN through h5netcdf's padding
                **_APPENDED,
            )
        else:
            ds = group.create_dataset(name, data=np.asarray(data, dtype="f8"))
        ds.attrs["units"] = units
        ds.attrs["long_name"] = long_name
        ds.make_scale(name)
        return ds

    def _coords(self, group: h5py.Group, *, spatial: bool) -> dict[str, h5py.Dataset]:
        lay = self._layout
        out = {"time": self._scale(group, "time", units=TIME_UNITS, long_name="simulation time")}
        if spatial:
            for dim, n in zip(lay.spatial_dims, lay.shape, strict=True):
                centres = (np.arange(n, dtype="f8") + 0.5) * lay.site_um
                out[dim] = self._scale(
                    group, dim, centres, units=LENGTH_UNITS, long_name=f"site centre {dim}"
                )
                out[dim].attrs["axis"] = dim.upper()
        return out

    def _snapshot_dataset(
        self, group: h5py.Group, name: str, dtype: str, coords: dict[str, h5py.Dataset]
    ) -> h5py.Dataset:
        shape = self._layout.shape
        ds = group.create_dataset(
            name,
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=dtype,
            chunks=(1, *tile_shape(shape, self._chunk_sites)),
            fillvalue=np.nan if np.dtype(dtype).kind == "f" else None,
            **self._gzip,
        )
        for axis, dim in enumerate(("time", *self._layout.spatial_dims)):
            ds.dims[axis].attach_scale(coords[dim])
        return ds

    def _create(self, root_attrs: dict[str, Any]) -> None:
        f, lay = self._file, self._layout
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["tme_abm_version"] = _package_version()
        f.attrs["created"] = _utc_now()
        f.attrs["Conventions"] = "CF-1.8"
        f.attrs["site_um"] = float(lay.site_um)
        f.attrs["lattice_shape"] = np.asarray(lay.shape, dtype="i8")
        f.attrs["chunk_sites"] = np.int64(self._chunk_sites)
        f.attrs["complete"] = np.int8(0)
        for key, value in root_attrs.items():
            f.attrs[key] = value

        # root coordinates: the canonical /time (written last) and /x /y [/z]
        self._root_time = self._coords(f, spatial=True)["time"]

        lat = f.create_group("lattice", track_order=True)
        lat_coords = self._coords(lat, spatial=True)
        ct = self._snapshot_dataset(lat, "cell_type", "i1", lat_coords)
        ct.attrs["long_name"] = "cell type code"
        _label_types(ct, lay.cell_type_names)
        self._cell_type = ct

        flds = f.create_group("fields", track_order=True)
        fld_coords = self._coords(flds, spatial=True)
        self._fields: dict[str, h5py.Dataset] = {}
        for name, units, long_name in zip(
            lay.field_names, lay.field_units, lay.field_long_names, strict=True
        ):
            ds = self._snapshot_dataset(flds, name, "f4", fld_coords)
            ds.attrs["units"] = units
            ds.attrs["long_name"] = long_name
            self._fields[name] = ds

        cells = f.create_group("cells", track_order=True)
        cell_time = self._coords(cells, spatial=False)["time"]
        cell_dim = cells.create_dataset(
            CELL_DIM, shape=(0,), maxshape=(None,), dtype="f4", chunks=(_COLUMN_CHUNK,)
        )
        cell_dim.make_scale(NOT_A_VARIABLE + f"{0:10d}")
        self._cell_dim = cell_dim
        self._columns: dict[str, tuple[h5py.Dataset, np.dtype]] = {}
        for name, dtype, units in lay.cell_columns:
            dt = np.dtype(dtype)
            ds = cells.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                dtype=dt,
                chunks=(_COLUMN_CHUNK,),
                **_APPENDED,
            )
            ds.attrs["units"] = units
            if name == TYPE_COLUMN:
                ds.attrs["long_name"] = "cell type code"
                _label_types(ds, lay.cell_type_names)
            ds.dims[0].attach_scale(cell_dim)
            self._columns[name] = (ds, dt)
        rs = cells.create_dataset(
            "row_size",
            shape=(0,),
            maxshape=(None,),
            dtype="i8",
            chunks=(_TIME_CHUNK,),
            **_APPENDED,
        )
        rs.attrs["long_name"] = "number of cell rows in each snapshot"
        rs.attrs["sample_dimension"] = CELL_DIM
        rs.dims[0].attach_scale(cell_time)
        self._row_size = rs

        ts = f.create_group("timeseries", track_order=True)
        tick = ts.create_dataset(
            TICK_DIM,
            shape=(0,),
            maxshape=(None,),
            dtype="f8",
            chunks=(_SERIES_CHUNK,),
            **_APPENDED,
        )
        tick.attrs["units"] = TIME_UNITS
        tick.attrs["long_name"] = "simulation time of each tick"
        tick.make_scale(TICK_DIM)
        self._tick_time = tick
        self._series: dict[str, h5py.Dataset] = {}
        for name, units, description in lay.timeseries:
            ds = ts.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                dtype="f8",
                chunks=(_SERIES_CHUNK,),
                **_APPENDED,
            )
            ds.attrs["units"] = units
            ds.attrs["long_name"] = description
            ds.attrs["description"] = description
            ds.dims[0].attach_scale(tick)
            self._series[name] = ds

        # time copies written just before /time, in this order
        self._time_copies = (lat_coords["time"], fld_coords["time"], cell_time)

    # ---------------------------------------------------------------- writing
    def _check_open(self) -> None:
        if self._closed_path is not None:
            raise ValueError(f"run writer for {self._final} is closed")

    def append_timeseries(self, time_min: float, values: Mapping[str, float]) -> None:
        """Buffer one tick of the time series (written at the next snapshot or close).

        Parameters
        ----------
        time_min
            Simulation time of the tick in minutes; strictly increasing.
        values
            One value per series named in the layout, no more, no fewer.

        Raises
        ------
        ValueError
            If names do not match the layout, a value is not a number, or time
            does not increase.
        """
        self._check_open()
        t = float(time_min)
        if not math.isfinite(t) or t <= self._last_tick_time:
            raise ValueError(
                f"time series time {time_min!r} must be finite and after the previous "
                f"tick ({self._last_tick_time})"
            )
        names = self._layout.timeseries_names
        _check_keys("time series", values, names)
        try:
            row = tuple(float(values[n]) for n in names)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"time series values must be numbers: {exc}") from exc
        self._ts_buffer.append((t, row))
        self._last_tick_time = t

    def _write_timeseries(self) -> None:
        if not self._ts_buffer:
            return
        n0, k = self._n_ticks, len(self._ts_buffer)
        times = np.fromiter((r[0] for r in self._ts_buffer), dtype="f8", count=k)
        table = np.array([r[1] for r in self._ts_buffer], dtype="f8").reshape(k, -1)
        for j, ds in enumerate(self._series.values()):
            ds.resize((n0 + k,))
            ds[n0:] = table[:, j]
        self._tick_time.resize((n0 + k,))
        self._tick_time[n0:] = times
        self._n_ticks = n0 + k
        self._ts_buffer.clear()

    def _validate_snapshot(
        self,
        time_min: float,
        cell_type: np.ndarray,
        fields: Mapping[str, np.ndarray],
        cells: Mapping[str, np.ndarray],
    ) -> tuple[float, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        lay = self._layout
        t = float(time_min)
        if not math.isfinite(t) or t <= self._last_time:
            raise ValueError(
                f"snapshot time {time_min!r} must be finite and after the previous "
                f"snapshot ({self._last_time})"
            )
        ct = np.asarray(cell_type)
        if ct.shape != lay.shape:
            raise ValueError(f"cell_type has shape {ct.shape}, layout expects {lay.shape}")
        if ct.dtype.kind not in "iu":
            raise ValueError(f"cell_type must be an integer array, got dtype {ct.dtype}")
        lo, hi = int(ct.min()), int(ct.max())
        if lo < -1 or hi >= len(lay.cell_type_names):
            raise ValueError(
                f"cell_type codes must lie in -1..{len(lay.cell_type_names) - 1}, got {lo}..{hi}"
            )
        _check_keys("field", fields, lay.field_names)
        out_fields: dict[str, np.ndarray] = {}
        for name in lay.field_names:
            arr = np.asarray(fields[name])
            if arr.shape != lay.shape:
                raise ValueError(
                    f"field {name!r} has shape {arr.shape}, layout expects {lay.shape}"
                )
            if arr.dtype.kind not in "iuf":
                raise ValueError(f"field {name!r} has non-numeric dtype {arr.dtype}")
            out_fields[name] = arr.astype("f4", copy=False)
        _check_keys("cell column", cells, tuple(self._columns))
        out_cells: dict[str, np.ndarray] = {}
        n_rows: int | None = None
        for name, (_ds, dt) in self._columns.items():
            arr = np.asarray(cells[name])
            if arr.ndim != 1:
                raise ValueError(f"cell column {name!r} must be 1D, got shape {arr.shape}")
            if n_rows is None:
                n_rows = arr.shape[0]
            elif arr.shape[0] != n_rows:
                raise ValueError(
                    f"cell column {name!r} has {arr.shape[0]} rows, other columns {n_rows}"
                )
            out_cells[name] = _cast_column(name, arr, dt)
            if name == TYPE_COLUMN and arr.size:
                lo, hi = int(arr.min()), int(arr.max())
                if lo < 0 or hi >= len(lay.cell_type_names):
                    raise ValueError(
                        f"cell column {name!r}: codes must lie in "
                        f"0..{len(lay.cell_type_names) - 1}, got {lo}..{hi}"
                    )
        return t, ct.astype("i1", copy=False), out_fields, out_cells

    def write_snapshot(
        self,
        time_min: float,
        cell_type: np.ndarray,
        fields: Mapping[str, np.ndarray],
        cells: Mapping[str, np.ndarray],
        checkpoint: tuple[Mapping[str, np.ndarray], Mapping[str, Any]] | None = None,
        *,
        keep_checkpoint: bool = False,
    ) -> None:
        """Append one snapshot (and, if given, its checkpoint) and flush the file.

        Order: lattice, fields, cells (+ row_size), buffered time series, the
        per-group time copies, ``flush()``; then, with a checkpoint, its
        arrays into a hidden group and ``flush()``; then the commit: the new
        checkpoint takes the name ``/checkpoint``, ``/time`` grows by one, and
        ``flush()``; last the previous checkpoint is freed. So ``len(/time)``
        counts complete snapshots, and ``/checkpoint`` is the state of the
        last of them, whenever the process is killed (except inside the
        commit's own flush, which :meth:`reopen` repairs).

        Parameters
        ----------
        time_min
            Simulation time in minutes; strictly increasing.
        cell_type
            Lattice of cell type codes (-1 empty), shape ``layout.shape``.
        fields
            One array of shape ``layout.shape`` per field in the layout.
        cells
            One 1D array per cell column in the layout, all of equal length.
        checkpoint
            ``(arrays, attrs)`` of the full state at this snapshot (see
            :meth:`write_checkpoint`), committed together with the snapshot.
        keep_checkpoint
            Also keep this checkpoint under ``/checkpoints/s<index>`` (it
            stays when later snapshots replace ``/checkpoint``).

        Raises
        ------
        ValueError
            If anything does not match the layout (the message names it).
        """
        self._check_open()
        t, ct, flds, cols = self._validate_snapshot(time_min, cell_type, fields, cells)
        if keep_checkpoint and checkpoint is None:
            raise ValueError("keep_checkpoint needs a checkpoint")
        n = self._n_snapshots
        # Each write goes to index n = len(/time) (and row offset sum(row_size[:n])),
        # so a retried snapshot overwrites the leftovers of a failed one.
        _put_row(self._cell_type, n, ct)
        for name, ds in self._fields.items():
            _put_row(ds, n, flds[name])
        m = next(iter(cols.values())).shape[0] if cols else 0
        r0 = self._n_rows
        for name, (ds, _dt) in self._columns.items():
            ds.resize((r0 + m,))
            if m:
                ds[r0:] = cols[name]
        self._cell_dim.resize((r0 + m,))
        _put_row(self._row_size, n, m)
        self._write_timeseries()
        for ds in self._time_copies:
            _put_row(ds, n, t)
        # Separate flushes: HDF5 writes one flush's metadata in no guaranteed
        # order, so nothing may vouch for data that an earlier flush has not
        # already put on disk. /time grows last.
        self._file.flush()
        if checkpoint is not None:
            arrays, attrs = checkpoint
            self._stage_checkpoint(arrays, attrs, keep=kept_name(n) if keep_checkpoint else None)
            self._file.flush()
            self._swap_in_staged()
        _put_row(self._root_time, n, t)
        self._file.flush()
        self._free_old_checkpoint()
        self._n_snapshots = n + 1
        self._n_rows = r0 + m
        self._last_time = t

    def write_checkpoint(self, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
        """Replace ``/checkpoint`` with the given arrays and attributes, then flush.

        The new checkpoint is written to a temporary group first and swapped in
        only when complete, so a writer killed here keeps the previous one.
        Non-empty numeric arrays are gzip-compressed (with shuffle) in chunks
        from :func:`checkpoint_chunks`, and every array carries a ``crc32``
        attribute of its stored bytes, so a torn checkpoint is detected when
        read. A run normally passes its checkpoint to :meth:`write_snapshot`
        instead, which commits the two together.

        Parameters
        ----------
        arrays
            Name -> array (numeric, bool or str). Each axis gets a named
            netCDF dimension ``<name>_dim<i>``.
        attrs
            Scalars describing the state (tick, time_min, next_id, ...).

        Raises
        ------
        ValueError
            If a name is invalid or a value cannot be stored.
        """
        self._check_open()
        self._stage_checkpoint(arrays, attrs, keep=None)
        self._file.flush()
        self._swap_in_staged()
        self._file.flush()
        self._free_old_checkpoint()

    def _stage_checkpoint(
        self, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], keep: str | None
    ) -> None:
        """Write a checkpoint to the hidden staging group (and a kept copy)."""
        f = self._file
        if CHECKPOINT_TMP in f:  # left by a write that raised, or by a kill
            del f[CHECKPOINT_TMP]
        self._write_checkpoint_group(CHECKPOINT_TMP, arrays, attrs)
        if keep is not None:
            if keep in f:
                del f[keep]
            f.require_group(KEPT_GROUP)
            # written again, not copied: a copy's dimension scales would still
            # refer to the staging group's, which the next snapshot frees
            self._write_checkpoint_group(keep, arrays, attrs)

    def _write_checkpoint_group(
        self, name: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]
    ) -> None:
        """Create group ``name`` holding one checkpoint (arrays with checksums,
        their netCDF dimensions, and ``attrs``)."""
        f = self._file
        converted_attrs = {str(k): _attr_value(str(k), v) for k, v in attrs.items()}
        names = set(arrays)
        for key in arrays:
            _check_name("checkpoint array", key, frozenset())
            arr = np.asarray(arrays[key])
            for i in range(arr.ndim):
                if f"{key}_dim{i}" in names:
                    raise ValueError(
                        f"checkpoint array {key!r}: dimension name {key}_dim{i!s} "
                        "collides with an array name"
                    )
        grp = f.create_group(name, track_order=True)
        for key, value in arrays.items():
            arr = np.asarray(value)
            kwargs: dict[str, Any] = {}
            stored_as = None
            if arr.dtype.kind == "b":
                arr, stored_as = arr.astype("u1"), "bool"
            elif arr.dtype.kind == "U":
                arr, stored_as = arr.astype(object), "str"
                kwargs["dtype"] = h5py.string_dtype()
            elif arr.dtype.kind not in "iuf":
                raise ValueError(f"checkpoint array {key!r}: unsupported dtype {arr.dtype}")
            if arr.size > 0 and arr.ndim > 0 and stored_as != "str":
                kwargs.update(self._gzip, chunks=checkpoint_chunks(arr.shape, self._chunk_sites))
            ds = grp.create_dataset(key, data=arr, **kwargs)
            if stored_as:
                ds.attrs["tme_abm_dtype"] = stored_as
            if stored_as != "str":
                ds.attrs[CRC_ATTR] = np.int64(array_crc32(arr.astype(ds.dtype, copy=False)))
            if key == TYPE_COLUMN and arr.dtype.kind == "i":
                _label_types(ds, self._layout.cell_type_names)
            for i, size in enumerate(arr.shape):
                dim = grp.create_dataset(f"{key}_dim{i}", shape=(size,), dtype="f4")
                dim.make_scale(NOT_A_VARIABLE + f"{size:10d}")
                ds.dims[i].attach_scale(dim)
        for key, value in converted_attrs.items():
            grp.attrs[key] = value
        grp.attrs["written"] = _utc_now()

    def _swap_in_staged(self) -> None:
        """Rename the staged checkpoint to ``/checkpoint`` (the old one to a
        hidden name: its space is freed only after a flush no longer refers
        to it, since HDF5 reuses freed space before the next flush)."""
        f = self._file
        if CHECKPOINT_OLD in f:
            del f[CHECKPOINT_OLD]
        if CHECKPOINT_GROUP in f:
            f.move(CHECKPOINT_GROUP, CHECKPOINT_OLD)
        f.move(CHECKPOINT_TMP, CHECKPOINT_GROUP)

    def _free_old_checkpoint(self) -> None:
        f = self._file
        if CHECKPOINT_OLD in f:
            del f[CHECKPOINT_OLD]
            f.flush()

    # ---------------------------------------------------------------- closing
    def close(self, complete: bool = True) -> Path:
        """Write buffered time series, close the file, and rename it if complete.

        Parameters
        ----------
        complete
            True: mark the run complete and rename ``<path>.partial`` to
            ``path`` atomically (replacing an old file when ``force``); a
            file whose replaced checkpoints left more than a tenth of it
            unused is first rewritten without that space
            (:func:`tme_abm.io.repack.repack_if_wasteful`).
            False: mark it interrupted and leave the ``.partial``.

        Returns
        -------
        Path
            Where the file now is. Closing twice returns the same path.
        """
        if self._closed_path is not None:
            return self._closed_path
        f = self._file
        if complete:
            try:
                self._write_timeseries()
                f.attrs["complete"] = np.int8(1)
                f.attrs["n_snapshots"] = np.int64(self._n_snapshots)
                f.attrs["n_timeseries_rows"] = np.int64(self._n_ticks)
                f.attrs["finished"] = _utc_now()
                f.flush()
            except BaseException:
                self._closed_path = self._partial
                raise
            finally:
                f.close()
            # a kill from here on leaves a complete .partial, which resume renames
            packed = repack_if_wasteful(self._partial)
            if packed is not None:
                os.replace(packed, self._final)
                self._partial.unlink(missing_ok=True)
            else:
                os.replace(self._partial, self._final)
            self._closed_path = self._final
        else:
            try:
                # best effort: we may be here because HDF5 itself failed
                self._write_timeseries()
                f.attrs["n_snapshots"] = np.int64(self._n_snapshots)
                f.flush()
            except Exception:  # never mask the error that brought us here
                pass
            finally:
                f.close()
            self._closed_path = self._partial
        return self._closed_path

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(complete=exc_type is None)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<RunWriter {self._final} {state}, {self._n_snapshots} snapshots>"


def _check_keys(kind: str, given: Mapping[str, Any], expected: tuple[str, ...]) -> None:
    missing = [n for n in expected if n not in given]
    extra = sorted(str(n) for n in given if n not in expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {kind}s {missing}")
        if extra:
            parts.append(f"unexpected {kind}s {extra}")
        raise ValueError("; ".join(parts) + f" (layout has {list(expected)})")


def _cast_column(name: str, arr: np.ndarray, dt: np.dtype) -> np.ndarray:
    if arr.dtype == dt:
        return arr
    if not np.can_cast(arr.dtype, dt, casting="same_kind") and not (
        dt.kind == "f" and arr.dtype.kind in "iub"
    ):
        raise ValueError(f"cell column {name!r}: cannot store dtype {arr.dtype} as {dt}")
    if dt.kind in "iu" and arr.size:
        info = np.iinfo(dt)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise ValueError(f"cell column {name!r}: values {lo}..{hi} do not fit {dt}")
    return arr.astype(dt)


def _gzip_options(level: int) -> dict[str, Any]:
    """h5py dataset options of the compressed datasets: gzip ``level`` with shuffle."""
    return {"compression": "gzip", "compression_opts": int(level), "shuffle": True}


def _put_row(ds: h5py.Dataset, index: int, value: Any) -> None:
    ds.resize(index + 1, axis=0)
    ds[index] = value


@dataclass(frozen=True)
class ResumePoint:
    """The state an interrupted run file continues from (see :meth:`RunWriter.reopen`).

    Attributes
    ----------
    checkpoint
        Where the chosen checkpoint was found (``"checkpoint"``, a hidden
        staging name, or a kept ``"checkpoints/s<index>"``).
    snapshot
        Index of the snapshot it belongs to (the file keeps snapshots
        ``0 .. snapshot``).
    tick, time_min
        The tick and simulated time of the state.
    arrays, attrs
        The checkpoint itself, as :meth:`RunWriter.write_checkpoint` was given it.
    """

    checkpoint: str
    snapshot: int
    tick: int
    time_min: float
    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]


def _snapshot_of(f: h5py.File, time_min: float, tick: int) -> int | None:
    """Index of the snapshot taken at ``time_min`` if its data (and the series
    up to ``tick``) are complete in ``f``; None otherwise."""
    try:
        n_time = int(f["time"].shape[0])
        copies = f["lattice/time"][:]
        hits = np.flatnonzero(copies == time_min)
        if len(hits) == 0:
            return None
        i = int(hits[0])
        if i > n_time:
            return None
        if i == n_time:  # written but not committed: every part must be there
            if float(f["fields/time"][i]) != time_min or float(f["cells/time"][i]) != time_min:
                return None
        grids = [f["lattice/cell_type"], *(ds for ds in f["fields"].values()
                                           if isinstance(ds, h5py.Dataset) and ds.ndim > 1)]
        if any(ds.shape[0] <= i for ds in grids):
            return None
        row_size = f["cells/row_size"]
        if row_size.shape[0] <= i:
            return None
        rows = int(row_size[: i + 1].sum())
        cells = f["cells"]
        for name, ds in cells.items():
            if isinstance(ds, h5py.Dataset) and name not in ("time", "row_size") and (
                ds.shape[0] < rows
            ):
                return None
        ts = f["timeseries"]
        if any(ds.shape[0] <= tick for ds in ts.values() if isinstance(ds, h5py.Dataset)):
            return None
        if float(ts[TICK_DIM][tick]) != time_min:
            return None
        return i
    except (KeyError, OSError, ValueError, RuntimeError):
        return None


def _choose_resume_point(f: h5py.File) -> ResumePoint:
    tried: list[str] = []
    for info in checkpoint_candidates(f, hidden=True):
        i = _snapshot_of(f, info.time_min, info.tick)
        if i is None:
            tried.append(f"{info.name} (day {info.day:g}: its snapshot is incomplete)")
            continue
        try:
            arrays, attrs = read_checkpoint_group(f[info.name])
        except CheckpointError as exc:
            tried.append(f"{info.name} ({exc})")
            continue
        return ResumePoint(info.name, i, info.tick, info.time_min, arrays, attrs)
    detail = "; ".join(tried) if tried else "it holds none (killed before its first snapshot)"
    raise CheckpointError(f"no usable checkpoint: {detail}")
