"""Restart checkpoints inside a run file: where they live, and reading them safely.

A run file holds the latest checkpoint at ``/checkpoint`` and, for the
snapshots a scenario asks to keep (``output.checkpoint_days``), a copy under
``/checkpoints/s<snapshot index>``. Each checkpoint group carries the state
arrays (one dataset each, with a ``crc32`` attribute of its bytes as stored)
and the scalars (``tick``, ``time_min``, ``next_id``, ``n_cells``, ``seed``)
as attributes. While a snapshot is being committed the writer also uses two
hidden names (``_checkpoint_tmp``, ``_checkpoint_old``); a writer killed
mid-commit can leave either behind, and :func:`checkpoint_candidates` lists
them so that a resume can pick the newest checkpoint that reads back whole.

This module imports only numpy and h5py.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

__all__ = [
    "CHECKPOINT_GROUP",
    "CHECKPOINT_OLD",
    "CHECKPOINT_TMP",
    "KEPT_GROUP",
    "CheckpointError",
    "CheckpointInfo",
    "array_crc32",
    "checkpoint_candidates",
    "kept_name",
    "read_checkpoint_group",
]

CHECKPOINT_GROUP = "checkpoint"
#: Group holding the checkpoints kept at chosen snapshots (for forks).
KEPT_GROUP = "checkpoints"
CHECKPOINT_TMP = "_checkpoint_tmp"
CHECKPOINT_OLD = "_checkpoint_old"
#: Attribute of each checkpoint array: CRC-32 of its bytes as stored.
CRC_ATTR = "crc32"


class CheckpointError(ValueError):
    """A checkpoint is missing, torn or does not match the run file."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Where one checkpoint is in a run file and when it was taken.

    Attributes
    ----------
    name
        HDF5 path of its group, e.g. ``"checkpoint"`` or ``"checkpoints/s000005"``.
    tick, time_min
        The tick and simulated time (minutes) of the state it holds.
    kept
        Whether it is one of the kept checkpoints (``/checkpoints/...``).
    """

    name: str
    tick: int
    time_min: float
    kept: bool

    @property
    def day(self) -> float:
        """Simulated time in days."""
        return self.time_min / 1440.0


def kept_name(snapshot_index: int) -> str:
    """HDF5 path of the kept checkpoint taken at a snapshot."""
    return f"{KEPT_GROUP}/s{int(snapshot_index):06d}"


def array_crc32(arr: np.ndarray) -> int:
    """CRC-32 of an array's bytes in C order (what a checkpoint stores)."""
    return zlib.crc32(np.ascontiguousarray(arr).view(np.uint8).reshape(-1)) & 0xFFFFFFFF


def _is_scale(ds: h5py.Dataset) -> bool:
    return ds.attrs.get("CLASS") == b"DIMENSION_SCALE"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_checkpoint_group(
    group: h5py.Group, *, verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read one checkpoint group: its arrays and its attributes.

    Parameters
    ----------
    group
        An open checkpoint group.
    verify
        Check every array against its stored ``crc32`` (arrays written by
        format 1.1 have none and are read unchecked).

    Returns
    -------
    tuple of dict
        ``(arrays, attrs)``: bool and str arrays restored to their dtypes,
        attributes as plain Python values.

    Raises
    ------
    CheckpointError
        If an array cannot be read or its bytes do not match its checksum.
    """
    arrays: dict[str, np.ndarray] = {}
    try:
        for name, ds in group.items():
            if not isinstance(ds, h5py.Dataset) or _is_scale(ds):
                continue
            kind = _plain(ds.attrs.get("tme_abm_dtype", ""))
            raw = ds[()]
            if verify and CRC_ATTR in ds.attrs and kind != "str":
                if array_crc32(np.asarray(raw)) != int(ds.attrs[CRC_ATTR]):
                    raise CheckpointError(
                        f"checkpoint {group.name}: array {name!r} does not match its checksum"
                    )
            if kind == "str":
                arrays[name] = np.asarray(ds.asstr()[()], dtype=str)
            elif kind == "bool":
                arrays[name] = np.asarray(raw).astype(bool)
            else:
                arrays[name] = np.asarray(raw)
        attrs = {k: _plain(v) for k, v in group.attrs.items()}
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {group.name} cannot be read ({exc})") from exc
    return arrays, attrs


def _info(f: h5py.File, name: str, kept: bool) -> CheckpointInfo | None:
    try:
        grp = f[name]
        return CheckpointInfo(
            name=name,
            tick=int(grp.attrs.get("tick", -1)),
            time_min=float(grp.attrs.get("time_min", np.nan)),
            kept=kept,
        )
    except (KeyError, OSError, ValueError, TypeError, RuntimeError):
        return None  # torn by a kill: not a candidate


def checkpoint_candidates(f: h5py.File, *, hidden: bool = False) -> list[CheckpointInfo]:
    """Every checkpoint group in an open run file whose attributes read back.

    Parameters
    ----------
    f
        An open run file.
    hidden
        Also list the groups a writer killed mid-commit may leave
        (``_checkpoint_tmp``, ``_checkpoint_old``); only a resume wants them.

    Returns
    -------
    list of CheckpointInfo
        Latest first (by tick; ``/checkpoint`` before a kept copy of the same
        tick). Their arrays are not checked here: see
        :func:`read_checkpoint_group`.
    """
    names: list[tuple[str, bool]] = []
    try:
        if CHECKPOINT_GROUP in f:
            names.append((CHECKPOINT_GROUP, False))
        if hidden:
            names += [(n, False) for n in (CHECKPOINT_TMP, CHECKPOINT_OLD) if n in f]
        if KEPT_GROUP in f:
            names += [(f"{KEPT_GROUP}/{k}", True) for k in f[KEPT_GROUP]]
    except (OSError, KeyError, RuntimeError):
        pass
    infos = [i for i in (_info(f, n, kept) for n, kept in names) if i is not None]
    order = {n: k for k, (n, _) in enumerate(names)}
    return sorted(infos, key=lambda i: (-i.tick, order[i.name]))
