"""Measure HDF5 chunk shapes and compression for the run file on real snapshot data.

The one job of this module: given real snapshots (the cell-type lattice,
a few float32 fields and the per-cell columns, as :class:`SnapshotData`),
write them with several candidate layouts (:class:`Candidate`: the spatial
chunk shape and the compression filter of the lattice and field datasets)
into a temporary folder the way :class:`tme_abm.io.RunWriter` writes a run
(one row per snapshot, flushed), and report for each candidate the bytes on
disk, the seconds to write a snapshot, and the seconds to read the typical
slices of a run file (:data:`READ_PATTERNS`). It also measures how the
restart checkpoint is stored (:func:`measure_checkpoint`) and how a real
:class:`~tme_abm.io.RunWriter` file grows per snapshot with its checkpoint
(:func:`measure_growth`).

The figures in ``docs/run_file_layout.md`` come from
``python -m tme_abm.benchmark.h5layout`` (see :func:`main`), which builds the
snapshots by running the engine briefly on a 2D and a 3D lattice.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tme_abm.benchmark.timing import median
from tme_abm.scenario.library import examples_dir

__all__ = [
    "READ_PATTERNS",
    "Candidate",
    "CheckpointResult",
    "GrowthResult",
    "LayoutResult",
    "SnapshotData",
    "default_candidates",
    "engine_snapshots",
    "format_checkpoint_table",
    "format_growth",
    "format_table",
    "main",
    "measure_cell_columns",
    "measure_checkpoint",
    "measure_growth",
    "measure_layouts",
]

#: Read patterns timed for every candidate, in table order: ``snapshot`` the
#: lattice and every field at the last time; ``zslice`` one z plane of one
#: field at one time (3D only); ``window`` a 64 x 64 (y, x) window of one
#: field over all times (on one z plane in 3D); ``site`` one site's value
#: over all times. Each timed repeat reads at another seeded random place.
READ_PATTERNS = ("snapshot", "zslice", "window", "site")
WINDOW = 64


@dataclass(frozen=True)
class Candidate:
    """One layout of the lattice and field datasets.

    Parameters
    ----------
    name
        Label in the table.
    tile
        Spatial chunk shape (the time axis is always chunked by 1); None
        chunks one whole snapshot per chunk. Longer than the lattice on an
        axis means the whole axis.
    compression
        ``"gzip"``, ``"lzf"`` (h5py only) or None (uncompressed).
    level
        gzip level 0-9 (ignored for other filters).
    shuffle
        Apply the byte-shuffle filter before compressing.
    """

    name: str
    tile: tuple[int, ...] | None
    compression: str | None = "gzip"
    level: int = 1
    shuffle: bool = True

    def chunks(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Chunk shape ``(1, *tile)`` for a lattice of ``shape``.

        Parameters
        ----------
        shape
            Lattice shape, ``(ny, nx)`` or ``(nz, ny, nx)``.

        Returns
        -------
        tuple of int
            The chunk shape including the leading time axis.
        """
        if self.tile is None:
            return (1, *shape)
        if len(self.tile) != len(shape):
            raise ValueError(f"tile {self.tile} does not fit a {len(shape)}D lattice")
        return (1, *(min(t, n) for t, n in zip(self.tile, shape, strict=True)))

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for ``h5py.Group.create_dataset``.

        Returns
        -------
        dict
            ``compression``, ``compression_opts`` and ``shuffle`` as needed.
        """
        if self.compression is None:
            return {}
        if self.compression == "gzip":
            return {"compression": "gzip", "compression_opts": self.level, "shuffle": self.shuffle}
        return {"compression": self.compression, "shuffle": self.shuffle}


@dataclass(frozen=True)
class SnapshotData:
    """A few real snapshots of one run, and where they came from.

    Parameters
    ----------
    cell_type
        One int8 lattice per snapshot.
    fields
        One mapping field name -> float32 lattice per snapshot.
    cells
        One mapping column name -> 1D array per snapshot (may be empty).
    source
        How the data were made (scenario, lattice, ticks).
    checkpoint
        The engine's checkpoint arrays at the last snapshot (may be empty).
    """

    cell_type: Sequence[np.ndarray]
    fields: Sequence[Mapping[str, np.ndarray]]
    cells: Sequence[Mapping[str, np.ndarray]]
    source: str = ""
    checkpoint: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.cell_type)
        if n == 0 or len(self.fields) != n or len(self.cells) != n:
            raise ValueError("need one cell_type, fields and cells entry per snapshot (>= 1)")
        shape = self.shape
        for ct, flds in zip(self.cell_type, self.fields, strict=True):
            if ct.shape != shape or any(a.shape != shape for a in flds.values()):
                raise ValueError("all lattices must have the same shape")

    @property
    def shape(self) -> tuple[int, ...]:
        """Lattice shape."""
        return tuple(self.cell_type[0].shape)

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the fields, in order."""
        return tuple(self.fields[0])

    def raw_bytes(self) -> int:
        """Uncompressed bytes of the lattice and fields of one snapshot."""
        n = math.prod(self.shape)
        return n * (1 + 4 * len(self.field_names))


@dataclass(frozen=True)
class LayoutResult:
    """What one candidate costs.

    Attributes
    ----------
    candidate
        The layout measured.
    chunks
        Chunk shape of the field datasets (time axis first).
    chunk_kib
        Uncompressed KiB of one float32 field chunk.
    file_bytes
        Size of the whole file (lattice, fields, uncompressed cell columns).
    grid_bytes
        Stored bytes of the lattice and field datasets only.
    n_times
        Snapshots written.
    write_s
        Median seconds to write and flush one snapshot (lattice, fields, cells).
    read_s
        Median seconds per read pattern (:data:`READ_PATTERNS`; NaN if the
        pattern does not apply).
    """

    candidate: Candidate
    chunks: tuple[int, ...]
    chunk_kib: float
    file_bytes: int
    grid_bytes: int
    n_times: int
    write_s: float
    read_s: dict[str, float]


@dataclass(frozen=True)
class CheckpointResult:
    """Storage of the checkpoint's lattice-sized array under one layout.

    Attributes
    ----------
    name
        Label.
    chunks
        Chunk shapes of ``conc`` and ``behaviours`` (None: contiguous).
    stored_bytes
        Bytes stored for the whole checkpoint (all arrays).
    raw_bytes
        Uncompressed bytes of the whole checkpoint.
    write_s
        Median seconds to write the checkpoint.
    """

    name: str
    chunks: dict[str, tuple[int, ...] | None]
    stored_bytes: int
    raw_bytes: int
    write_s: float


@dataclass(frozen=True)
class GrowthResult:
    """How a real run file grows when each snapshot also rewrites the checkpoint.

    Attributes
    ----------
    sizes
        File size after each snapshot + checkpoint, bytes.
    snapshot_bytes
        Stored bytes of one snapshot's lattice, fields and cell rows (median).
    checkpoint_bytes
        Stored bytes of the final checkpoint.
    live_bytes
        Sum of the stored bytes of every dataset in the final file.
    final_bytes
        Size of the closed file.
    """

    sizes: list[int]
    snapshot_bytes: int
    checkpoint_bytes: int
    live_bytes: int
    final_bytes: int

    @property
    def growth(self) -> list[int]:
        """File growth at each snapshot after the first, bytes."""
        return [b - a for a, b in zip(self.sizes, self.sizes[1:], strict=False)]


def default_candidates(shape: Sequence[int]) -> list[Candidate]:
    """The candidate layouts measured for a 2D or 3D lattice.

    Parameters
    ----------
    shape
        Lattice shape, ``(ny, nx)`` or ``(nz, ny, nx)``.

    Returns
    -------
    list of Candidate
        Whole-snapshot chunks, the writer's rule
        (:func:`tme_abm.io.writer.tile_shape`) and fixed tiles at gzip 1 +
        shuffle; no filter, gzip 4 and 6 on one tile and on whole snapshots;
        gzip without shuffle, and lzf.
    """
    from tme_abm.io.writer import tile_shape

    ndim = len(shape)
    if ndim == 2:
        tiles: list[tuple[int, ...]] = [(128, 128), (256, 256), (512, 512)]
        main_tile: tuple[int, ...] = (256, 256)
    elif ndim == 3:
        tiles = [(32, 32, 32), (32, 64, 64), (64, 64, 64), (16, 128, 128)]
        main_tile = (32, 64, 64)
    else:
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")

    def label(tile: tuple[int, ...] | None) -> str:
        return "whole" if tile is None else "x".join(str(t) for t in tile)

    rule = tile_shape(tuple(shape))
    out = [Candidate(f"{label(None)} gzip1", None)]
    out += [Candidate(f"rule {label(rule)} gzip1", rule)]
    out += [Candidate(f"{label(t)} gzip1", t) for t in tiles if t != rule]
    out += [Candidate(f"{label(None)} none", None, None)]
    out += [Candidate(f"{label(main_tile)} none", main_tile, None)]
    out += [Candidate(f"{label(main_tile)} gzip{lv}", main_tile, level=lv) for lv in (4, 6)]
    out += [Candidate(f"{label(None)} gzip4", None, level=4)]
    out += [Candidate(f"{label(main_tile)} gzip1 noshuffle", main_tile, shuffle=False)]
    out += [Candidate(f"{label(main_tile)} lzf", main_tile, "lzf")]
    return out


def _snapshot_dataset(
    group: h5py.Group, name: str, shape: tuple[int, ...], dtype: str, cand: Candidate
) -> h5py.Dataset:
    return group.create_dataset(
        name,
        shape=(0, *shape),
        maxshape=(None, *shape),
        dtype=dtype,
        chunks=cand.chunks(shape),
        **cand.filters(),
    )


def _write_file(
    path: Path, data: SnapshotData, cand: Candidate, n_times: int
) -> tuple[list[float], int]:
    """Write ``n_times`` snapshots (cycling through ``data``); per-snapshot seconds."""
    shape = data.shape
    seconds: list[float] = []
    with h5py.File(path, "w") as f:
        ct = _snapshot_dataset(f.create_group("lattice"), "cell_type", shape, "i1", cand)
        grp = f.create_group("fields")
        flds = {n: _snapshot_dataset(grp, n, shape, "f4", cand) for n in data.field_names}
        cgrp = f.create_group("cells")
        cols = {
            n: cgrp.create_dataset(n, shape=(0,), maxshape=(None,), dtype=a.dtype, chunks=(16384,))
            for n, a in data.cells[0].items()
        }
        rows = 0
        for t in range(n_times):
            k = t % len(data.cell_type)
            t0 = time.perf_counter()
            ct.resize(t + 1, axis=0)
            ct[t] = data.cell_type[k]
            for name, ds in flds.items():
                ds.resize(t + 1, axis=0)
                ds[t] = data.fields[k][name]
            m = 0
            for name, ds in cols.items():
                arr = data.cells[k][name]
                m = arr.shape[0]
                ds.resize((rows + m,))
                ds[rows:] = arr
            rows += m
            f.flush()
            seconds.append(time.perf_counter() - t0)
        grid = ct.id.get_storage_size() + sum(ds.id.get_storage_size() for ds in flds.values())
    return seconds, int(grid)


def _read_patterns(
    shape: tuple[int, ...], names: Sequence[str], n_times: int, repeats: int
) -> dict[str, Callable[[h5py.File, int], Any] | None]:
    """Read functions ``fn(file, repeat)``; each repeat reads at another place.

    Positions are drawn once from a fixed seed, so every candidate reads the
    same places, and a tile that happens to align with one position does not
    decide the comparison.
    """
    first = names[0]
    rng = np.random.default_rng(20261121)
    sites = [tuple(int(rng.integers(0, n)) for n in shape) for _ in range(repeats)]
    corners = [
        tuple(int(rng.integers(0, max(1, n - WINDOW + 1))) for n in shape[-2:])
        for _ in range(repeats)
    ]
    last = n_times - 1

    def snapshot(f: h5py.File, i: int) -> Any:
        out = [f["lattice/cell_type"][last]]
        return out + [f["fields"][n][last] for n in names]

    def window(f: h5py.File, i: int) -> Any:
        y0, x0 = corners[i]
        win = (slice(y0, y0 + WINDOW), slice(x0, x0 + WINDOW))
        if len(shape) == 3:
            return f["fields"][first][:, sites[i][0], win[0], win[1]]
        return f["fields"][first][:, win[0], win[1]]

    def site(f: h5py.File, i: int) -> Any:
        return f["fields"][first][(slice(None), *sites[i])]

    def zslice(f: h5py.File, i: int) -> Any:
        return f["fields"][first][last, sites[i][0]]

    return {
        "snapshot": snapshot,
        "zslice": zslice if len(shape) == 3 else None,
        "window": window,
        "site": site,
    }


def _time_read(path: Path, read: Callable[[h5py.File, int], Any], repeats: int) -> float:
    """Median seconds to open the file (default 1 MiB chunk cache), read, close."""
    seconds = []
    for i in range(repeats):
        t0 = time.perf_counter()
        with h5py.File(path, "r") as f:
            read(f, i)
        seconds.append(time.perf_counter() - t0)
    return median(seconds)


def measure_layouts(
    data: SnapshotData,
    candidates: Iterable[Candidate],
    *,
    n_times: int = 8,
    repeats: int = 3,
    folder: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[LayoutResult]:
    """Write ``data`` with each candidate layout and time writes and reads.

    Parameters
    ----------
    data
        Real snapshots; ``n_times`` snapshots are written by cycling through
        them (each chunk is compressed on its own, so repeats cost the same
        bytes as new data of the same kind).
    candidates
        Layouts to compare.
    n_times
        Snapshots per file (a week every 12 h is 15).
    repeats
        Timed repeats of each read pattern, each at another place (the
        median is reported); writes report the median over the ``n_times``
        snapshots.
    folder
        Where the temporary files go (default: the system's temp folder).
        Files are read back hot from the page cache, so read times are the
        HDF5 and decompression cost, not the disk's.
    progress
        Called with a line of text after each candidate (e.g. ``print``).

    Returns
    -------
    list of LayoutResult
        One per candidate, in order.
    """
    shape = data.shape
    results = []
    patterns = _read_patterns(shape, data.field_names, n_times, repeats)
    with tempfile.TemporaryDirectory(prefix="tme_abm_h5layout_", dir=folder) as tmp:
        for i, cand in enumerate(candidates):
            path = Path(tmp) / f"layout{i}.h5"
            seconds, grid = _write_file(path, data, cand, n_times)
            reads = {
                name: math.nan if fn is None else _time_read(path, fn, repeats)
                for name, fn in patterns.items()
            }
            chunks = cand.chunks(shape)
            res = LayoutResult(
                candidate=cand,
                chunks=chunks,
                chunk_kib=math.prod(chunks) * 4 / 1024,
                file_bytes=path.stat().st_size,
                grid_bytes=grid,
                n_times=n_times,
                write_s=median(seconds),
                read_s=reads,
            )
            path.unlink()
            results.append(res)
            if progress is not None:
                progress(_row(res, data))
    return results


def _checkpoint_layouts(level: int) -> list[tuple[str, Callable[[tuple[int, ...]], Any], bool]]:
    """Ways to store checkpoint arrays: (label, chunks for a shape, compressed)."""
    from tme_abm.io.writer import checkpoint_chunks

    return [
        ("contiguous, no filter", lambda shape: None, False),
        (f"h5py automatic chunks, gzip{level}", lambda shape: True, True),
        (f"writer rule (checkpoint_chunks), gzip{level}", checkpoint_chunks, True),
    ]


def measure_checkpoint(
    arrays: Mapping[str, np.ndarray],
    *,
    level: int = 1,
    repeats: int = 3,
    folder: str | Path | None = None,
) -> list[CheckpointResult]:
    """Time and size the checkpoint under a few storage choices.

    Every non-empty array is stored in each way of :func:`_checkpoint_layouts`
    (uncompressed and contiguous; h5py's automatic chunks, which the writer
    used before; the writer's :func:`~tme_abm.io.writer.checkpoint_chunks`).
    The chunk shapes reported are those of the concentrations ``conc`` (all
    fields, ``(nz, ny, nx, nf)`` float32) and the behaviour cache.

    Parameters
    ----------
    arrays
        ``Engine.checkpoint()[0]``.
    level
        gzip level.
    repeats
        Timed writes (median reported).
    folder
        Where the temporary files go.

    Returns
    -------
    list of CheckpointResult
        One per storage choice.
    """
    raw = sum(np.asarray(a).nbytes for a in arrays.values())
    gz = {"compression": "gzip", "compression_opts": level, "shuffle": True}
    out = []
    with tempfile.TemporaryDirectory(prefix="tme_abm_h5ck_", dir=folder) as tmp:
        for i, (name, chunker, compressed) in enumerate(_checkpoint_layouts(level)):
            path = Path(tmp) / f"ck{i}.h5"
            seconds, stored = [], 0
            chunks: dict[str, Any] = {}
            for _ in range(repeats):
                t0 = time.perf_counter()
                with h5py.File(path, "w") as f:
                    for key, value in arrays.items():
                        arr = np.asarray(value)
                        if arr.ndim and arr.size:
                            kwargs = {"chunks": chunker(arr.shape)}
                            if compressed:
                                kwargs.update(gz)
                            ds = f.create_dataset(key, data=arr, **kwargs)
                        else:
                            ds = f.create_dataset(key, data=arr)
                        chunks[key] = ds.chunks
                    f.flush()
                    stored = sum(f[k].id.get_storage_size() for k in f)
                seconds.append(time.perf_counter() - t0)
            shown = {k: chunks.get(k) for k in ("conc", "behaviours")}
            out.append(CheckpointResult(name, shown, int(stored), int(raw), median(seconds)))
    return out


def measure_cell_columns(
    cells: Mapping[str, np.ndarray], *, level: int = 1, folder: str | Path | None = None
) -> tuple[int, int]:
    """Bytes of one snapshot's cell columns, as written and if gzip-compressed.

    The writer stores the cell columns uncompressed (an appended compressed
    dataset rewrites its last chunk elsewhere, which a SIGKILL can turn into
    a corrupt file; see :mod:`tme_abm.io.writer`); this says what compressing
    them would save.

    Parameters
    ----------
    cells
        One snapshot's columns.
    level
        gzip level (with shuffle), in the writer's 16384-row chunks.
    folder
        Where the temporary file goes.

    Returns
    -------
    tuple of int
        ``(raw_bytes, gzip_bytes)``.
    """
    raw = sum(np.asarray(a).nbytes for a in cells.values())
    gz = {"compression": "gzip", "compression_opts": level, "shuffle": True}
    with tempfile.TemporaryDirectory(prefix="tme_abm_h5cells_", dir=folder) as tmp:
        with h5py.File(Path(tmp) / "cells.h5", "w") as f:
            for key, value in cells.items():
                arr = np.asarray(value)
                if arr.size:
                    f.create_dataset(key, data=arr, chunks=(min(arr.size, 16384),), **gz)
            f.flush()
            stored = sum(f[k].id.get_storage_size() for k in f)
    return int(raw), int(stored)


def measure_growth(
    data: SnapshotData,
    *,
    n_times: int = 6,
    level: int = 1,
    folder: str | Path | None = None,
) -> GrowthResult:
    """Write a real run file with a checkpoint per snapshot and record its size.

    Uses :class:`tme_abm.io.RunWriter` exactly as the runner does (snapshot,
    then checkpoint), with ``data.checkpoint`` as every checkpoint.

    Parameters
    ----------
    data
        Snapshots and a checkpoint (``data.checkpoint`` must not be empty).
    n_times
        Snapshots written.
    level
        gzip level.
    folder
        Where the temporary file goes.

    Returns
    -------
    GrowthResult
        File size after each snapshot, and the final file's live bytes.
    """
    from tme_abm.io import RunLayout, RunWriter

    if not data.checkpoint:
        raise ValueError("data.checkpoint is empty")
    first = data.cells[0]
    layout = RunLayout(
        shape=data.shape,
        site_um=20.0,
        field_names=data.field_names,
        field_units=tuple("ng/mL" for _ in data.field_names),
        field_long_names=data.field_names,
        cell_type_names=tuple(
            f"type{i}" for i in range(int(max(ct.max() for ct in data.cell_type)) + 1)
        ),
        cell_columns=tuple((n, str(a.dtype), "1") for n, a in first.items()),
    )
    sizes = []
    with tempfile.TemporaryDirectory(prefix="tme_abm_h5growth_", dir=folder) as tmp:
        path = Path(tmp) / "growth.h5"
        with RunWriter(path, layout, compression_level=level) as w:
            for t in range(n_times):
                k = t % len(data.cell_type)
                w.write_snapshot(60.0 * t, data.cell_type[k], data.fields[k], data.cells[k])
                w.write_checkpoint(data.checkpoint, {"tick": t})
                sizes.append(w.partial_path.stat().st_size)
        with h5py.File(path, "r") as f:
            live, ck, snap = 0, 0, 0

            def visit(name: str, obj: Any) -> None:
                nonlocal live, ck
                if isinstance(obj, h5py.Dataset):
                    live += obj.id.get_storage_size()
                    if name.startswith("checkpoint/"):
                        ck += obj.id.get_storage_size()

            f.visititems(visit)
            snap = f["lattice/cell_type"].id.get_storage_size()
            snap += sum(f["fields"][n].id.get_storage_size() for n in data.field_names)
            snap += sum(f["cells"][n].id.get_storage_size() for n in first)
        final = path.stat().st_size
    return GrowthResult(sizes, int(snap / n_times), int(ck), int(live), int(final))


# ------------------------------------------------------------------ real data
def engine_snapshots(
    scenario: str | Path,
    shape: Sequence[int],
    ticks: int,
    *,
    n_snapshots: int = 3,
    overrides: Sequence[str] = (),
    seed: int = 1,
) -> SnapshotData:
    """Run a scenario briefly and keep a few snapshots (the runner's arrays).

    The tumour's disc or ball keeps the scenario's share of the lattice: a
    ``disc`` placement's radius is scaled with the smallest lattice side.

    Parameters
    ----------
    scenario
        A scenario file, e.g. the shipped ``large.toml``.
    shape
        Lattice shape to run on (replaces ``domain.shape``).
    ticks
        Ticks to run; snapshots are taken at ``ticks * (i + 1) / n_snapshots``.
    n_snapshots
        Snapshots kept.
    overrides
        Further ``dotted.key=value`` overrides.
    seed
        Scenario seed.

    Returns
    -------
    SnapshotData
        The saved fields (``output.fields``), lattice and cell columns at
        each snapshot, and the checkpoint arrays at the last.
    """
    from tme_abm.model import TMEModel
    from tme_abm.scenario import load_scenario

    plain = load_scenario(scenario).scenario
    scale = min(shape) / min(plain.domain.shape)
    extra = [f"domain.shape=[{', '.join(str(int(n)) for n in shape)}]", f"seed={seed}"]
    for k, pl in enumerate(plain.placement):
        if pl.region == "disc" and scale < 1:
            extra.append(f"placement.{k}.radius_um={pl.radius_um * scale:.6g}")
            break
    loaded = load_scenario(scenario, [*extra, *overrides])
    model = TMEModel(loaded)
    e = model.engine
    sc = model.scenario
    saved = sc.output.fields if sc.output.fields is not None else list(sc.fields)
    index = {f: i for i, f in enumerate(model.params.field_names)}
    at = {max(1, round(ticks * (i + 1) / n_snapshots)) for i in range(n_snapshots)}
    cell_type, fields, cells = [], [], []
    t0 = time.perf_counter()
    for tick in range(1, ticks + 1):
        e.step()
        if tick in at:
            cell_type.append(e.cell_type_grid())
            fields.append({f: e.field_grid(index[f]) for f in saved})
            cells.append({k: v.copy() for k, v in e.cells.columns().items()})
    seconds = time.perf_counter() - t0
    checkpoint, _ = e.checkpoint()
    name = Path(scenario).name
    dims = " x ".join(str(int(n)) for n in shape)
    source = (
        f"{name} on {dims} sites, {e.cells.n} cells, snapshots at ticks {sorted(at)} "
        f"({ticks} ticks of {model.params.dt_min:g} min in {seconds:.0f} s)"
    )
    return SnapshotData(cell_type, fields, cells, source, checkpoint)


# ---------------------------------------------------------------------- tables
def _fmt_s(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x * 1000:.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"


def _row(r: LayoutResult, data: SnapshotData) -> str:
    per = r.grid_bytes / r.n_times
    ratio = per / data.raw_bytes()
    chunks = "x".join(str(c) for c in r.chunks[1:])
    cells = [
        r.candidate.name,
        chunks,
        f"{r.chunk_kib:.0f}",
        f"{per / 1e6:.2f}",
        f"{ratio:.2f}",
        f"{r.file_bytes / 1e6:.1f}",
        _fmt_s(r.write_s),
        *(_fmt_s(r.read_s[p]) for p in READ_PATTERNS),
    ]
    return "| " + " | ".join(cells) + " |"


def format_table(results: Sequence[LayoutResult], data: SnapshotData) -> str:
    """A markdown table of :func:`measure_layouts` results.

    Parameters
    ----------
    results
        From :func:`measure_layouts`.
    data
        The data they were measured on.

    Returns
    -------
    str
        Header, separator and one row per candidate.
    """
    header = [
        "layout",
        "field chunk",
        "KiB/chunk",
        "MB/snapshot (grids)",
        "of raw",
        "file MB",
        "write/snapshot",
        "read snapshot",
        "read z slice",
        "read 64² window, all t",
        "read 1 site, all t",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [_row(r, data) for r in results]
    return "\n".join(lines)


def format_checkpoint_table(results: Sequence[CheckpointResult]) -> str:
    """A markdown table of :func:`measure_checkpoint` results.

    Parameters
    ----------
    results
        From :func:`measure_checkpoint`.

    Returns
    -------
    str
        Header, separator and one row per storage choice.
    """
    lines = [
        "| arrays stored as | conc chunk | behaviours chunk | checkpoint MB | of raw | write |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        shown = [
            "-" if c is None else "x".join(str(n) for n in c)
            for c in (r.chunks.get("conc"), r.chunks.get("behaviours"))
        ]
        lines.append(
            f"| {r.name} | {shown[0]} | {shown[1]} | {r.stored_bytes / 1e6:.1f} | "
            f"{r.stored_bytes / r.raw_bytes:.2f} | {_fmt_s(r.write_s)} |"
        )
    return "\n".join(lines)


def format_growth(g: GrowthResult) -> str:
    """One paragraph on how the file grew.

    Parameters
    ----------
    g
        From :func:`measure_growth`.

    Returns
    -------
    str
        Sizes after each snapshot, growth, and the dead bytes at the end.
    """
    sizes = ", ".join(f"{s / 1e6:.1f}" for s in g.sizes)
    growth = ", ".join(f"{s / 1e6:.1f}" for s in g.growth)
    return (
        f"file MB after each snapshot + checkpoint: {sizes}\n"
        f"growth per snapshot MB: {growth} (one snapshot stores "
        f"{g.snapshot_bytes / 1e6:.1f} MB, the checkpoint {g.checkpoint_bytes / 1e6:.1f} MB)\n"
        f"closed file {g.final_bytes / 1e6:.1f} MB, of which live data "
        f"{g.live_bytes / 1e6:.1f} MB; unused {(g.final_bytes - g.live_bytes) / 1e6:.1f} MB"
    )


# ------------------------------------------------------------------- command
PRESETS: dict[str, tuple[str, tuple[int, ...], int]] = {
    # scenario, lattice, ticks (5 min each)
    "2d": ("large.toml", (1024, 1024), 96),
    "3d": ("baseline_3d.toml", (128, 128, 128), 48),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the presets and print markdown tables (``python -m`` entry point).

    Parameters
    ----------
    argv
        Command-line arguments (default ``sys.argv[1:]``): ``--dims 2d 3d``,
        ``--ticks N`` (override the preset), ``--shape`` (e.g. ``512,512``),
        ``--times N``, ``--repeats N``, ``--folder DIR``, ``--quick`` (small
        lattices, for a smoke test), ``--select TEXT...`` (only candidates
        whose name contains one of the texts, e.g. ``rule``).

    Returns
    -------
    int
        Exit status (0).
    """
    ap = argparse.ArgumentParser(prog="python -m tme_abm.benchmark.h5layout", description=__doc__)
    ap.add_argument("--dims", nargs="+", choices=sorted(PRESETS), default=sorted(PRESETS))
    ap.add_argument("--shape", help="lattice shape, e.g. 512,512 (default: the preset's)")
    ap.add_argument("--ticks", type=int, help="ticks to run (default: the preset's)")
    ap.add_argument("--times", type=int, default=8, help="snapshots per file (default 8)")
    ap.add_argument("--repeats", type=int, default=3, help="timed reads (default 3)")
    ap.add_argument("--folder", help="folder for the temporary files")
    ap.add_argument("--quick", action="store_true", help="small lattices, few candidates")
    ap.add_argument(
        "--select", nargs="+", metavar="TEXT", help="only candidates whose name contains a TEXT"
    )
    args = ap.parse_args(argv)

    from tme_abm.benchmark.system import idle_check, machine_info

    info = machine_info()
    idle = idle_check(1.0)
    busy = "unknown" if idle.busy_fraction is None else f"{idle.busy_fraction:.0%}"
    print(
        f"machine: {info.get('cpu_model')}, {info.get('usable_cpus', '?')} cores; "
        f"other processes' CPU use before measuring: {busy} "
        f"({'idle' if idle.idle else 'NOT idle'}); h5py {h5py.__version__}, "
        f"HDF5 {h5py.version.hdf5_version}",
        flush=True,
    )
    for dims in args.dims:
        name, shape, ticks = PRESETS[dims]
        if args.shape:
            shape = tuple(int(s) for s in args.shape.split(","))
        if args.quick:
            shape, ticks = tuple(min(s, 96 if len(shape) == 2 else 32) for s in shape), 4
        if args.ticks is not None:
            ticks = args.ticks
        data = engine_snapshots(examples_dir() / name, shape, ticks)
        print(f"\n## {dims}: {data.source}\n", flush=True)
        cands = default_candidates(shape)
        if args.quick:
            cands = cands[:2]
        if args.select:
            cands = [c for c in cands if any(t in c.name for t in args.select)]
        print(format_table([], data), flush=True)
        measure_layouts(
            data,
            cands,
            n_times=args.times,
            repeats=args.repeats,
            folder=args.folder,
            progress=lambda line: print(line, flush=True),
        )
        raw, packed = measure_cell_columns(data.cells[-1], folder=args.folder)
        print(
            f"\ncell columns of the last snapshot: {raw / 1e6:.2f} MB as written "
            f"(uncompressed), {packed / 1e6:.2f} MB with gzip1 + shuffle",
            flush=True,
        )
        print("\ncheckpoint (all fields + cell state):\n", flush=True)
        print(format_checkpoint_table(measure_checkpoint(data.checkpoint, folder=args.folder)))
        print("\nRunWriter with a checkpoint per snapshot:\n", flush=True)
        print(format_growth(measure_growth(data, folder=args.folder)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
