"""Compare two run files as a user would: every dataset and attribute.

Used by the resume and fork tests: a resumed run must equal the
uninterrupted one in everything but the wall-clock attributes.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

#: Attributes that record when, not what (they may differ between equal runs).
WALL_CLOCK = frozenset({"created", "finished", "resumed", "written"})


def _attrs(obj: h5py.HLObject, skip: frozenset[str]) -> dict:
    out = {}
    for k, v in obj.attrs.items():
        if k in skip or k in ("DIMENSION_LIST", "REFERENCE_LIST"):
            continue
        out[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def run_file_contents(path: Path, skip_root: frozenset[str] = frozenset()) -> dict:
    """``{hdf5 path: (attrs, data or None)}`` for every object in a run file."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        out["/"] = (_attrs(f, WALL_CLOCK | skip_root), None)

        def visit(name: str, obj: h5py.HLObject) -> None:
            data = obj[()] if isinstance(obj, h5py.Dataset) else None
            out[name] = (_attrs(obj, WALL_CLOCK), data)

        f.visititems(visit)
    return out


def differences(a: Path, b: Path, skip_root: frozenset[str] = frozenset(),
                only: str = "") -> list[str]:
    """Where two run files differ (empty: equal but for wall-clock attributes).

    ``skip_root`` names further root attributes to ignore; ``only`` limits
    the comparison to paths starting with it.
    """
    ca, cb = run_file_contents(a, skip_root), run_file_contents(b, skip_root)
    out = []
    for name in sorted(set(ca) | set(cb)):
        if only and not name.startswith(only):
            continue
        if name not in ca or name not in cb:
            out.append(f"{name}: only in {'first' if name in ca else 'second'}")
            continue
        (attrs_a, data_a), (attrs_b, data_b) = ca[name], cb[name]
        if attrs_a != attrs_b:
            keys = sorted(k for k in set(attrs_a) | set(attrs_b)
                          if attrs_a.get(k) != attrs_b.get(k))
            out.append(f"{name}: attributes {keys}")
        if data_a is not None or data_b is not None:
            same = (
                isinstance(data_a, np.ndarray) and isinstance(data_b, np.ndarray)
                and data_a.shape == data_b.shape and data_a.dtype == data_b.dtype
                and np.array_equal(data_a, data_b, equal_nan=data_a.dtype.kind == "f")
            ) or (not isinstance(data_a, np.ndarray) and data_a == data_b)
            if not same:
                out.append(f"{name}: data")
    return out


def broken_scales(path: Path) -> list[str]:
    """Datasets whose dimension scales do not resolve (dangling references)."""
    bad: list[str] = []

    def check(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset) and "DIMENSION_LIST" in obj.attrs:
            try:
                for dim in obj.dims:
                    dim.values()
            except RuntimeError:
                bad.append(name)

    with h5py.File(path, "r") as f:
        f.visititems(check)
    return bad
