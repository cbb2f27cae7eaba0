"""Rewrite a finished run file without the space its replaced checkpoints left.

A run replaces ``/checkpoint`` at every snapshot. HDF5 reuses the freed space
while the file is open, but cannot give back space in the middle of a file
when it closes, so a finished file keeps about one checkpoint's worth of
unused bytes (measured on a short 200³ run: 261 MB of 901 MB). When that is
a large share of the file, :func:`repack_if_wasteful` copies every object
into a fresh file (HDF5 copies compressed chunks as they are, without
recompressing), attaches the dimension scales again (object references do
not survive a copy between files), and the writer renames the copy into
place. The datasets and attributes are unchanged.

This module imports only numpy and h5py.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

__all__ = ["REPACK_MIN_FRACTION", "repack", "repack_if_wasteful", "unused_bytes"]

#: Repack when unused bytes exceed this share of the file (and 1 MiB).
REPACK_MIN_FRACTION = 0.1
_REPACK_MIN_BYTES = 1 << 20
_REFERENCE_ATTRS = ("DIMENSION_LIST", "REFERENCE_LIST")


def unused_bytes(path: str | Path) -> int:
    """Bytes of a file that no dataset's data occupy (unused space plus HDF5's
    own metadata, which is small next to a run's data)."""
    used = 0

    def visit(_name: str, obj: h5py.HLObject) -> None:
        nonlocal used
        if isinstance(obj, h5py.Dataset):
            used += obj.id.get_storage_size()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return os.path.getsize(path) - used


def repack(src: str | Path, dst: str | Path) -> None:
    """Copy every object and root attribute of ``src`` into a new file ``dst``.

    Dataset layouts, filters, chunks and attributes are kept; dimension
    scales are attached again in ``dst`` as they were in ``src``.
    """
    with h5py.File(src, "r") as s, h5py.File(dst, "w", track_order=True) as d:
        for key in s.attrs:
            d.attrs.create(key, s.attrs[key], dtype=s.attrs.get_id(key).dtype)
        for name in s:
            s.copy(s[name], d, name=name)
        scales: list[tuple[str, int, str]] = []

        def collect(name: str, obj: h5py.HLObject) -> None:
            if isinstance(obj, h5py.Dataset) and "DIMENSION_LIST" in obj.attrs:
                for i, dim in enumerate(obj.dims):
                    scales.extend((name, i, scale.name) for scale in dim.values())

        s.visititems(collect)

        def drop_references(_name: str, obj: h5py.HLObject) -> None:
            for attr in _REFERENCE_ATTRS:
                if attr in obj.attrs:
                    del obj.attrs[attr]

        d.visititems(drop_references)
        for name, i, scale in scales:
            d[name].dims[i].attach_scale(d[scale])


def repack_if_wasteful(path: str | Path) -> Path | None:
    """Repack ``path`` into ``<path>.repack`` if its unused bytes exceed
    :data:`REPACK_MIN_FRACTION` of it; returns the new file, or None."""
    path = Path(path)
    waste = unused_bytes(path)
    if waste <= max(_REPACK_MIN_BYTES, REPACK_MIN_FRACTION * path.stat().st_size):
        return None
    out = path.with_name(path.name + ".repack")
    try:
        repack(path, out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out
