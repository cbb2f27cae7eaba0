"""Read tme-abm run files: summaries, snapshots, time series and checkpoints.

The job of this module is the *reading* side of the run-file format written
by :mod:`tme_abm.io.writer`, with plain h5py. It works on complete files and
on ``*.partial`` files left by an interrupted run: ``len(/time)`` is the number
of complete snapshots, and any extra row a killed writer left in the other
datasets is ignored.

This module imports only numpy and h5py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tme_abm.io.checkpoints import (
    CHECKPOINT_GROUP,
    CheckpointError,
    checkpoint_candidates,
    read_checkpoint_group,
)
from tme_abm.io.writer import (
    CELL_DIM,
    EMPTY_CODE,
    EMPTY_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    PARTIAL_SUFFIX,
    TICK_DIM,
    RunLayout,
)

__all__ = [
    "RunFileError",
    "cell_type_labels",
    "format_summary",
    "read_checkpoint",
    "read_run_info",
    "read_snapshot",
    "read_timeseries",
    "run_summary",
]

_MIN_PER_DAY = 1440.0
_NOT_COLUMNS = frozenset({"time", CELL_DIM, "row_size"})
# root attributes shown under their own headings rather than in "attrs"
_KNOWN_ROOT_ATTRS = frozenset(
    {
        "format",
        "format_version",
        "tme_abm_version",
        "created",
        "finished",
        "Conventions",
        "site_um",
        "lattice_shape",
        "complete",
        "n_snapshots",
        "n_timeseries_rows",
        "seed",
        "scenario",
        "scenario_name",
    }
)


class RunFileError(Exception):
    """The file is missing, not HDF5, not a tme-abm run, or unreadable."""


def _py(value: Any) -> Any:
    """Convert an h5py attribute value into plain Python."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_py(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_scale(ds: h5py.Dataset) -> bool:
    return ds.attrs.get("CLASS") == b"DIMENSION_SCALE"


@contextmanager
def _open_run(path: str | Path) -> Iterator[h5py.File]:
    """Open a run file read-only, checking that it is one."""
    p = Path(path)
    if not p.is_file():
        raise RunFileError(f"{p}: no such run file")
    if not h5py.is_hdf5(p):
        raise RunFileError(f"{p} is not an HDF5 file (and so not a tme-abm run file)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        if "lock" not in str(exc).lower():
            raise RunFileError(
                f"{p} cannot be read ({exc}); a writer killed before its first flush "
                "leaves an unreadable file"
            ) from exc
        try:  # a run still being written holds a lock; reading is still safe
            f = h5py.File(p, "r", locking=False)
        except OSError as exc2:
            raise RunFileError(f"{p} cannot be read ({exc2})") from exc2
    try:
        fmt = _py(f.attrs.get("format"))
        if fmt != FORMAT_NAME:
            raise RunFileError(
                f"{p} is an HDF5 file but not a tme-abm run file (root attribute "
                f"format={fmt!r}, expected {FORMAT_NAME!r})"
            )
        version = str(_py(f.attrs.get("format_version", "")))
        if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
            raise RunFileError(
                f"{p} has run-file format version {version!r}; this tme_abm reads "
                f"{FORMAT_VERSION.split('.')[0]}.x"
            )
        yield f
    except (KeyError, OSError) as exc:
        raise RunFileError(
            f"{p} is damaged or incomplete ({exc}); a run killed before its first "
            "snapshot was flushed leaves such a file"
        ) from exc
    finally:
        f.close()


def _n_snapshots(f: h5py.File) -> int:
    return int(f["time"].shape[0])


def cell_type_labels(ds: h5py.Dataset) -> dict[int, str]:
    """Cell-type code -> name, from a type-coded dataset's CF flag attributes.

    Pairs ``flag_values`` with ``flag_meanings`` (never indexes the names by
    code), so it reads format 1.1 files (``empty`` listed last) and 1.0
    files (``empty`` first) alike.

    Parameters
    ----------
    ds
        ``/lattice/cell_type``, ``/cells/type`` (format 1.1) or
        ``/checkpoint/type`` of an open run file.

    Returns
    -------
    dict
        ``{0: "tumour", 1: "cd8", ..., -1: "empty"}``, type codes in
        increasing order, then -1.

    Raises
    ------
    RunFileError
        If the attributes are missing or do not pair up one to one.
    """
    where = f"{ds.file.filename}:{ds.name}"
    if "flag_values" not in ds.attrs or "flag_meanings" not in ds.attrs:
        raise RunFileError(f"{where} has no flag_values / flag_meanings (cell-type labels)")
    values = [int(v) for v in np.asarray(ds.attrs["flag_values"]).ravel()]
    meanings = str(_py(ds.attrs["flag_meanings"])).split()
    if len(values) != len(meanings) or len(set(values)) != len(values):
        raise RunFileError(
            f"{where}: flag_values ({len(values)}) and flag_meanings ({len(meanings)}) "
            "do not pair up one to one"
        )
    labels = dict(zip(values, meanings, strict=True))
    types = sorted(v for v in values if v != EMPTY_CODE)
    if types != list(range(len(types))) or labels.get(EMPTY_CODE) != EMPTY_NAME:
        raise RunFileError(
            f"{where}: flag_values {values} / flag_meanings {meanings} are not the codes "
            f"0..n-1 plus {EMPTY_CODE} = {EMPTY_NAME!r}"
        )
    return {**{v: labels[v] for v in types}, EMPTY_CODE: EMPTY_NAME}


def _cell_type_names(f: h5py.File) -> list[str]:
    """Type names in code order (0, 1, ...), without ``empty``."""
    return [n for c, n in cell_type_labels(f["lattice/cell_type"]).items() if c != EMPTY_CODE]


def _field_names(f: h5py.File) -> list[str]:
    return [k for k, v in f["fields"].items() if isinstance(v, h5py.Dataset) and not _is_scale(v)]


def _column_names(f: h5py.File) -> list[str]:
    return [
        k
        for k, v in f["cells"].items()
        if isinstance(v, h5py.Dataset) and k not in _NOT_COLUMNS and not _is_scale(v)
    ]


def _series_names(f: h5py.File) -> list[str]:
    return [
        k
        for k, v in f["timeseries"].items()
        if isinstance(v, h5py.Dataset) and k != TICK_DIM and not _is_scale(v)
    ]


def read_layout(f: h5py.File) -> RunLayout:
    """The :class:`~tme_abm.io.RunLayout` an open run file was written with
    (what :meth:`~tme_abm.io.RunWriter.reopen` needs to go on writing it)."""

    def attr(ds: h5py.Dataset, key: str, default: str = "") -> str:
        return str(_py(ds.attrs.get(key, default)))

    fields = [(k, f["fields"][k]) for k in _field_names(f)]
    columns = [(k, f["cells"][k]) for k in _column_names(f)]
    series = [(k, f["timeseries"][k]) for k in _series_names(f)]
    return RunLayout(
        shape=tuple(int(n) for n in f.attrs["lattice_shape"]),
        site_um=float(f.attrs["site_um"]),
        field_names=tuple(k for k, _ in fields),
        field_units=tuple(attr(ds, "units") for _, ds in fields),
        field_long_names=tuple(attr(ds, "long_name", k) for k, ds in fields),
        cell_type_names=tuple(_cell_type_names(f)),
        cell_columns=tuple((k, ds.dtype.name, attr(ds, "units")) for k, ds in columns),
        timeseries=tuple((k, attr(ds, "units"), attr(ds, "description")) for k, ds in series),
    )


def _counts(f: h5py.File, index: int, names: list[str]) -> dict[str, int]:
    codes = f["lattice/cell_type"][index].astype(np.int64).ravel() - EMPTY_CODE
    counts = np.bincount(codes, minlength=len(names) + 1)
    return {name: int(c) for name, c in zip([EMPTY_NAME, *names], counts, strict=False)}


def run_summary(path: str | Path) -> dict[str, Any]:
    """Collect everything ``tme-abm inspect`` shows about a run file.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.

    Returns
    -------
    dict
        Machine-readable summary: ``file``, ``file_size_bytes``, ``complete``,
        ``note``, ``format``, ``format_version``, ``tme_abm_version``,
        ``created``, ``seed``, ``scenario_name``, ``shape``, ``dims``,
        ``site_um``, ``physical_size_mm``, ``n_snapshots``, ``time_min`` and
        ``time_days`` (first, last) or None, ``fields`` (list of dicts with
        ``name``, ``long_name``, ``units``, ``min``, ``mean``, ``max`` at the
        last snapshot), ``cell_types``, ``cell_counts_first`` and
        ``cell_counts_last`` (from the lattice, ``"empty"`` first),
        ``n_cell_rows``, ``timeseries``, ``n_ticks``, ``checkpoint`` (its
        attributes or None) and ``attrs`` (other provenance).

    Raises
    ------
    RunFileError
        If the file is not a readable tme-abm run file.
    """
    p = Path(path)
    with _open_run(p) as f:
        a = f.attrs
        n = _n_snapshots(f)
        shape = tuple(int(s) for s in f["lattice/cell_type"].shape[1:])
        dims = ("z", "y", "x")[-len(shape) :]
        site_um = float(_py(a.get("site_um", float("nan"))))
        complete = bool(_py(a.get("complete", 0)))
        names = _cell_type_names(f)
        times = f["time"][:n]
        summary: dict[str, Any] = {
            "file": str(p),
            "file_size_bytes": p.stat().st_size,
            "complete": complete,
            "note": None,
            "format": FORMAT_NAME,
            "format_version": _py(a.get("format_version")),
            "tme_abm_version": _py(a.get("tme_abm_version", "unknown")),
            "created": _py(a.get("created")),
            "finished": _py(a.get("finished")),
            "seed": _py(a.get("seed")),
            "scenario_name": _py(a.get("scenario_name")),
            "shape": shape,
            "dims": dims,
            "site_um": site_um,
            "physical_size_mm": tuple(s * site_um / 1000.0 for s in shape),
            "n_snapshots": n,
            "time_min": (float(times[0]), float(times[-1])) if n else None,
            "time_days": (float(times[0]) / _MIN_PER_DAY, float(times[-1]) / _MIN_PER_DAY)
            if n
            else None,
            "fields": [],
            "cell_types": names,
            "cell_counts_first": _counts(f, 0, names) if n else None,
            "cell_counts_last": _counts(f, n - 1, names) if n else None,
            "n_cell_rows": int(f["cells/row_size"][:n].sum()),
            "timeseries": _series_names(f),
            "n_ticks": int(f["timeseries"][TICK_DIM].shape[0]),
            "checkpoint": None,
            "attrs": {k: _py(v) for k, v in a.items() if k not in _KNOWN_ROOT_ATTRS},
        }
        for name in _field_names(f):
            ds = f["fields"][name]
            entry: dict[str, Any] = {
                "name": name,
                "long_name": _py(ds.attrs.get("long_name", name)),
                "units": _py(ds.attrs.get("units", "")),
                "min": None,
                "mean": None,
                "max": None,
            }
            if n:
                data = ds[n - 1].astype(np.float64)
                finite = data[np.isfinite(data)]
                if finite.size:
                    entry.update(
                        min=float(finite.min()), mean=float(finite.mean()), max=float(finite.max())
                    )
            summary["fields"].append(entry)
        if CHECKPOINT_GROUP in f:
            summary["checkpoint"] = {k: _py(v) for k, v in f[CHECKPOINT_GROUP].attrs.items()}
        summary["kept_checkpoint_days"] = [
            c.day for c in reversed(checkpoint_candidates(f)) if c.kept
        ]
    if not complete:
        summary["note"] = (
            f"partial file: an interrupted (or still running) run; its {n} completed "
            f"snapshots are all readable; continue it with: tme-abm resume {p}"
        )
    elif p.name.endswith(PARTIAL_SUFFIX):
        summary["note"] = "run completed but the file was not renamed from .partial"
    return summary


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}"


def _fmt_size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{nbytes} B"  # pragma: no cover


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(out)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def format_summary(summary: Mapping[str, Any]) -> str:
    """Render :func:`run_summary` output as readable, aligned text.

    Parameters
    ----------
    summary
        A dict returned by :func:`run_summary`.

    Returns
    -------
    str
        Multi-line text (no trailing newline).
    """
    s = summary
    n = s["n_snapshots"]
    status = "complete" if s["complete"] else "PARTIAL (interrupted or still running)"
    dims = " x ".join(str(v) for v in s["shape"])
    phys = " x ".join(f"{v:.2f}" for v in s["physical_size_mm"])
    scenario = s.get("scenario_name") or "(unnamed)"
    seed = s.get("seed")
    rows: list[tuple[str, str]] = [
        ("file", str(s["file"])),
        ("status", status),
        ("format", f"{s['format']} {s['format_version']} (tme_abm {s['tme_abm_version']})"),
        ("created", str(s.get("created") or "-")),
        ("scenario", f"{scenario}" + (f", seed {seed}" if seed is not None else "")),
        (
            "lattice",
            f"{dims} sites ({', '.join(s['dims'])}), {s['site_um']:g} um each = {phys} mm",
        ),
    ]
    if s.get("cell_types"):
        codes = [f"{code} {name}" for code, name in enumerate(s["cell_types"])]
        rows.append(("type codes", ", ".join([*codes, f"{EMPTY_CODE} {EMPTY_NAME}"])))
    if n:
        t0, t1 = s["time_min"]
        d0, d1 = s["time_days"]
        rows.append(("snapshots", f"{n}, t = {t0:g} .. {t1:g} min ({d0:.3g} .. {d1:.3g} days)"))
    else:
        rows.append(("snapshots", "0"))
    rows.append(("cell rows", f"{s['n_cell_rows']} (all snapshots)"))
    series = s["timeseries"]
    rows.append(
        (
            "time series",
            f"{len(series)} series x {s['n_ticks']} rows (ticks 0..{s['n_ticks'] - 1})"
            if series
            else "none",
        )
    )
    ck = s.get("checkpoint")
    if ck:
        where = ", ".join(f"{k} {ck[k]}" for k in ("tick", "time_min") if k in ck)
        rows.append(("checkpoint", where or "present"))
    kept = s.get("kept_checkpoint_days")
    if kept:
        rows.append(("kept checkpoints", "days " + ", ".join(f"{d:g}" for d in kept)))
    rows.append(("file size", _fmt_size(s["file_size_bytes"])))
    for key, value in sorted(s.get("attrs", {}).items()):
        text = str(value)
        rows.append((key, text if len(text) <= 60 else text[:57] + "..."))
    width = max(len(k) for k, _ in rows)
    lines = [f"tme-abm run file {s['file']}"]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows[1:]]
    if s.get("note"):
        lines.append(f"  note: {s['note']}")

    if s["fields"]:
        when = f"last snapshot, t = {s['time_min'][1]:g} min" if n else "no snapshots"
        lines += ["", f"fields ({when})"]
        lines += _table(
            ["name", "long name", "units", "min", "mean", "max"],
            [
                [
                    fd["name"],
                    str(fd["long_name"]),
                    str(fd["units"]),
                    _fmt_num(fd["min"]),
                    _fmt_num(fd["mean"]),
                    _fmt_num(fd["max"]),
                ]
                for fd in s["fields"]
            ],
            right={3, 4, 5},
        )
    if n:
        first, last = s["cell_counts_first"], s["cell_counts_last"]
        lines += ["", "sites by cell type (lattice)"]
        lines += _table(
            ["type", f"t = {s['time_min'][0]:g} min", f"t = {s['time_min'][1]:g} min"],
            [[name, str(first[name]), str(last[name])] for name in first],
            right={1, 2},
        )
    if series:
        lines += ["", "time series"]
        text, line = [], "  "
        for name in series:
            if len(line) + len(name) > 78 and line.strip():
                text.append(line.rstrip())
                line = "  "
            line += name + "  "
        text.append(line.rstrip())
        lines += text
    return "\n".join(lines)


def read_run_info(path: str | Path) -> dict[str, Any]:
    """What a run file is, without reading its data: a cheap companion to :func:`read_snapshot`.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.

    Returns
    -------
    dict
        ``attrs`` (every root attribute, as plain Python), ``shape``
        (lattice, ``(ny, nx)`` or ``(nz, ny, nx)``), ``site_um``,
        ``time_min`` (the complete snapshots' times, float64 array),
        ``cell_types`` (names in code order), ``fields`` (name -> dict of
        ``units`` and ``long_name``), ``cell_columns`` (names) and
        ``complete`` (bool).

    Raises
    ------
    RunFileError
        If the file is not a readable tme-abm run file.
    """
    with _open_run(path) as f:
        n = _n_snapshots(f)
        return {
            "attrs": {k: _py(v) for k, v in f.attrs.items()},
            "shape": tuple(int(s) for s in f["lattice/cell_type"].shape[1:]),
            "site_um": float(_py(f.attrs.get("site_um", float("nan")))),
            "time_min": np.asarray(f["time"][:n], dtype=np.float64),
            "cell_types": _cell_type_names(f),
            "fields": {
                name: {
                    "units": str(_py(f["fields"][name].attrs.get("units", ""))),
                    "long_name": str(_py(f["fields"][name].attrs.get("long_name", name))),
                }
                for name in _field_names(f)
            },
            "cell_columns": _column_names(f),
            "complete": bool(_py(f.attrs.get("complete", 0))),
        }


def _snapshot_index(n: int, index: int, path: Path) -> int:
    if n == 0:
        raise IndexError(f"{path} holds no complete snapshot")
    i = index + n if index < 0 else index
    if not 0 <= i < n:
        raise IndexError(f"snapshot index {index} out of range for {n} snapshots in {path}")
    return i


def read_snapshot(path: str | Path, index: int = -1) -> dict[str, Any]:
    """Read one complete snapshot.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.
    index
        Snapshot number; negative counts from the last complete snapshot.

    Returns
    -------
    dict
        ``index`` (non-negative), ``time_min``, ``cell_type`` (int8 lattice),
        ``fields`` (name -> float32 lattice) and ``cells`` (column -> 1D array
        holding this snapshot's rows).

    Raises
    ------
    RunFileError
        If the file is not a readable tme-abm run file.
    IndexError
        If there is no such complete snapshot.
    """
    p = Path(path)
    with _open_run(p) as f:
        n = _n_snapshots(f)
        i = _snapshot_index(n, index, p)
        row_size = f["cells/row_size"][:n]
        start = int(row_size[:i].sum())
        stop = start + int(row_size[i])
        return {
            "index": i,
            "time_min": float(f["time"][i]),
            "cell_type": f["lattice/cell_type"][i],
            "fields": {name: f["fields"][name][i] for name in _field_names(f)},
            "cells": {name: f["cells"][name][start:stop] for name in _column_names(f)},
        }


def read_timeseries(path: str | Path) -> dict[str, np.ndarray]:
    """Read the per-tick time series.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.

    Returns
    -------
    dict
        ``"time"`` (tick times, minutes) then one float64 array per series,
        all of equal length (truncated to the shortest if a writer died while
        appending).

    Raises
    ------
    RunFileError
        If the file is not a readable tme-abm run file.
    """
    with _open_run(path) as f:
        grp = f["timeseries"]
        names = _series_names(f)
        n = min([grp[TICK_DIM].shape[0], *(grp[k].shape[0] for k in names)])
        out = {"time": grp[TICK_DIM][:n]}
        out.update({k: grp[k][:n] for k in names})
        return out


def read_checkpoint(
    path: str | Path, day: float | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint: the latest one, or the one nearest a day.

    Parameters
    ----------
    path
        A run file, complete or ``.partial``.
    day
        None: the latest checkpoint (``/checkpoint``). A number: the
        checkpoint (latest or kept, see ``output.checkpoint_days``) whose
        time is nearest this simulated day.

    Returns
    -------
    tuple of dict
        ``(arrays, attrs)`` exactly as given to ``write_checkpoint`` (bool and
        str arrays restored), plus attr ``written`` (UTC time).

    Raises
    ------
    RunFileError
        If the file is not a run file, holds no checkpoint, or the checkpoint
        is damaged (an array does not match its checksum).
    """
    p = Path(path)
    with _open_run(p) as f:
        found = checkpoint_candidates(f)
        if not found:
            raise RunFileError(f"{p} holds no checkpoint")
        chosen = found[0]
        if day is not None:
            chosen = min(found, key=lambda c: (abs(c.day - float(day)), -c.tick))
        try:
            return read_checkpoint_group(f[chosen.name])
        except CheckpointError as exc:
            raise RunFileError(f"{p}: {exc}") from exc
