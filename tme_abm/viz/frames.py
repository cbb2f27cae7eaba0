"""What the page shows, from a live model or from a snapshot of a run file.

The page's panels read a :class:`FrameSource`: the cell-type plane, a
per-cell quantity scattered onto its sites (STAT3, SOCS3, kills and, for a
live model, any behaviour value), a field plane, the counts, and what lies at
one site (for hover).  :class:`LiveSource` reads a running
:class:`~tme_abm.model.TMEModel`; :class:`RunSource` reads one snapshot of a
run file at a time (only that snapshot's plane and cell rows are read, so a
659 MB run opens as fast as a small one).  :class:`Catalogue` holds what does
not change: names, the scenario's labels and colours, units, the shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from tme_abm.io.reader import (
    RunFileError,
    _cell_type_names,
    _column_names,
    _field_names,
    _open_run,
    _py,
)

if TYPE_CHECKING:  # the model (Mesa, numba) loads only where it runs
    from tme_abm.model import TMEModel
    from tme_abm.scenario.schema import Scenario

#: Suffix of a run file still being written.
PARTIAL_SUFFIX = ".partial"
#: The colour-by choice that colours sites by cell type.
CELL_TYPE = "cell type"
#: Per-cell columns of the engine and the run file shown under these names.
CELL_COLUMNS = {"STAT3": "stat3", "SOCS3": "socs3", "kills": "kills"}
#: Quantities drawn on a fixed 0-1 scale (STAT3 is the active fraction; SOCS3
#: is in arbitrary units, >= 0, and gets a fitted scale).
UNIT_RANGE = frozenset({"STAT3"})
#: Behaviours offered for colouring a live model (all are shown on hover).
COLOUR_BEHAVIOURS = ("division", "death", "migration_speed", "kill", "kill_resistance",
                     "stat3_activation")


@dataclass(frozen=True)
class Catalogue:
    """The fixed description of what a source shows.

    ``field_reference`` is, per field, the lowest half-max at which the
    scenario's cells respond to it (STAT3 inputs, rules, recruitment), else
    1 ng/mL: the top of a field's colour scale while it is still zero.
    """

    type_names: tuple[str, ...]
    type_labels: tuple[str, ...]
    type_colours: tuple[str, ...]
    field_names: tuple[str, ...]
    field_labels: tuple[str, ...]
    field_units: tuple[str, ...]
    field_reference: tuple[float, ...]
    dims: tuple[int, int, int]  # (nz, ny, nx); nz == 1 in 2D
    site_um: float
    dt_min: float
    tumour_codes: tuple[int, ...]
    quantities: tuple[str, ...]  # colour-by choices besides CELL_TYPE
    behaviour_names: tuple[str, ...] = ()  # live models: the behaviour matrix's columns
    behaviour_units: tuple[str, ...] = ()

    @property
    def is_3d(self) -> bool:
        return self.dims[0] > 1

    def type_label(self, code: int) -> str:
        return self.type_labels[code] if 0 <= code < len(self.type_labels) else "empty"

    @classmethod
    def from_scenario(
        cls,
        sc: Scenario,
        field_names: Sequence[str] | None = None,
        columns: Sequence[str] = tuple(CELL_COLUMNS.values()),
        behaviours: Sequence[str] = (),
    ) -> Catalogue:
        """The catalogue of a scenario (``field_names``: the stored subset)."""
        from tme_abm.core.rules import BEHAVIOUR_UNITS

        names = tuple(field_names if field_names is not None else sc.fields)
        reference = {name: np.inf for name in names}

        def note(name: str | None, half_max: float) -> None:
            if name in reference:
                reference[name] = min(reference[name], float(half_max))

        for ct in sc.cell_types.values():
            for inp in ct.stat3.inputs:
                note(inp.field, inp.half_max_ng_per_ml)
            if ct.recruitment is not None:
                note(ct.recruitment.signal, ct.recruitment.half_max_ng_per_ml)
        for rule in sc.rules:
            note(rule.signal, rule.half_max)
        if sc.stat3_inhibitor is not None:
            note(sc.stat3_inhibitor.field, sc.stat3_inhibitor.half_max_ng_per_ml)
        killed = sorted({t for ct in sc.cell_types.values() for t in ct.kill_targets})
        type_names = tuple(sc.cell_types)
        tumour = killed or [n for n in type_names if n.startswith("tumour")]
        shape = tuple(sc.domain.shape)
        dims = (1, *shape) if len(shape) == 2 else shape
        quantities = tuple(q for q, col in CELL_COLUMNS.items() if col in columns)
        quantities += tuple(b for b in COLOUR_BEHAVIOURS if b in behaviours)
        return cls(
            type_names=type_names,
            type_labels=tuple(ct.label or n for n, ct in sc.cell_types.items()),
            type_colours=tuple(ct.colour for ct in sc.cell_types.values()),
            field_names=names,
            field_labels=tuple(sc.fields[n].label or n for n in names),
            field_units=tuple(sc.fields[n].units for n in names),
            field_reference=tuple(r if np.isfinite(r) else 1.0 for r in reference.values()),
            dims=(int(dims[0]), int(dims[1]), int(dims[2])),
            site_um=float(sc.domain.site_um),
            dt_min=float(sc.domain.dt_min),
            tumour_codes=tuple(type_names.index(n) for n in tumour if n in type_names),
            quantities=quantities,
            behaviour_names=tuple(behaviours),
            behaviour_units=tuple(BEHAVIOUR_UNITS.get(b.split(":")[0], "") for b in behaviours),
        )


def _plane(array: np.ndarray, dims: tuple[int, int, int], z: int) -> np.ndarray:
    """The 2D plane ``z`` of a flat or shaped site array."""
    grid = np.asarray(array).reshape(dims)
    return grid[min(max(z, 0), dims[0] - 1)]


@dataclass
class SiteInfo:
    """What lies at one site (for the page's hover panel)."""

    x: int
    y: int
    z: int
    cell: dict[str, Any] = field(default_factory=dict)  # empty: no cell
    fields: dict[str, float] = field(default_factory=dict)

    def rows(self, cat: Catalogue) -> list[tuple[str, str]]:
        """(name, value) lines, ready to show."""
        s = cat.site_um
        where = f"x {self.x}, y {self.y}" + (f", z {self.z}" if cat.is_3d else "")
        out = [("site", f"{where} ({(self.x + 0.5) * s:.0f}, {(self.y + 0.5) * s:.0f} µm)")]
        if not self.cell:
            out.append(("cell", "none"))
        for key, value in self.cell.items():
            out.append((key, value if isinstance(value, str) else f"{value:.4g}"))
        for label, value in self.fields.items():
            out.append((label, f"{value:.4g}"))
        return out


class FrameSource:
    """Base of :class:`LiveSource` and :class:`RunSource`."""

    catalogue: Catalogue

    @property
    def tick(self) -> int:
        raise NotImplementedError

    @property
    def time_min(self) -> float:
        raise NotImplementedError

    def types(self, z: int = 0) -> np.ndarray:
        """Plane ``z`` of cell-type codes (-1 empty)."""
        raise NotImplementedError

    def quantity(self, name: str, z: int = 0) -> np.ndarray:
        """Plane ``z`` of a per-cell quantity (float32, NaN where no cell)."""
        raise NotImplementedError

    def field(self, name: str, z: int = 0) -> np.ndarray:
        """Plane ``z`` of a field (float32, ng/mL)."""
        raise NotImplementedError

    def counts(self) -> list[int]:
        """Cells of each type."""
        raise NotImplementedError

    def site(self, x: int, y: int, z: int = 0) -> SiteInfo:
        """What lies at site (x, y, z)."""
        raise NotImplementedError

    def _scatter(self, sites: np.ndarray, values: np.ndarray, z: int) -> np.ndarray:
        nz, ny, nx = self.catalogue.dims
        plane = np.full(ny * nx, np.nan, dtype=np.float32)
        lo = min(max(z, 0), nz - 1) * ny * nx
        keep = (sites >= lo) & (sites < lo + ny * nx)
        plane[sites[keep] - lo] = values[keep]
        return plane.reshape(ny, nx)


class LiveSource(FrameSource):
    """The current state of a running model (read as the stepping thread leaves it)."""

    def __init__(self, model: TMEModel) -> None:
        from tme_abm.core.rules import behaviour_names

        self.model = model
        p = model.params
        behaviours = behaviour_names(p.field_names, p.type_names)
        self.catalogue = Catalogue.from_scenario(
            model.scenario, p.field_names, behaviours=behaviours)

    @property
    def tick(self) -> int:
        return int(self.model.engine.tick)

    @property
    def time_min(self) -> float:
        return float(self.model.time_min)

    def types(self, z: int = 0) -> np.ndarray:
        return _plane(self.model.engine.cell_type_grid(), self.catalogue.dims, z)

    def quantity(self, name: str, z: int = 0) -> np.ndarray:
        c = self.model.engine.cells
        n = c.n  # read once: the stepping thread may change it
        if name in CELL_COLUMNS:
            values = getattr(c, CELL_COLUMNS[name])[:n]
        else:
            values = c.behaviours[:n, self.catalogue.behaviour_names.index(name)]
        return self._scatter(c.site[:n], values.astype(np.float32), z)

    def field(self, name: str, z: int = 0) -> np.ndarray:
        index = self.catalogue.field_names.index(name)
        return _plane(self.model.engine.field_grid(index), self.catalogue.dims, z)

    def counts(self) -> list[int]:
        return [int(v) for v in self.model.engine.counts()]

    def site(self, x: int, y: int, z: int = 0) -> SiteInfo:
        cat = self.catalogue
        nz, ny, nx = cat.dims
        flat = (z * ny + y) * nx + x
        e = self.model.engine
        info = SiteInfo(x, y, z)
        row = int(e.cells.site_cell[flat])
        if row >= 0:
            c = e.cells
            code = int(c.type[row])
            info.cell = {"cell": cat.type_label(code), "id": f"{int(c.id[row])}",
                         "STAT3": float(c.stat3[row]), "SOCS3": float(c.socs3[row]),
                         "kills": float(c.kills[row])}
            if int(c.flags[row]) & 1:
                info.cell["STAT3 knockout"] = "yes"
            for b, (name, units) in enumerate(zip(cat.behaviour_names, cat.behaviour_units,
                                                  strict=True)):
                value = float(c.behaviours[row, b])
                if name in COLOUR_BEHAVIOURS or value != 0.0:
                    info.cell[f"{name} ({units})"] = value
        conc = e.conc.reshape(-1, len(cat.field_names)) if cat.field_names else None
        for f, (label, units) in enumerate(zip(cat.field_labels, cat.field_units, strict=True)):
            info.fields[f"{label} ({units})"] = float(conc[flat, f])
        return info


def _scenario_of(f: h5py.File) -> Scenario | None:
    """The run's validated scenario, from its resolved JSON (None if absent or
    if this version's schema no longer accepts it)."""
    from tme_abm.scenario import validate_data

    text = f.attrs.get("scenario_resolved_json")
    if text is None:
        return None
    try:
        return validate_data(json.loads(str(_py(text))), str(f.filename))
    except ValueError:  # ScenarioError, ValidationError and JSONDecodeError are ValueErrors
        return None


def _catalogue_of_attributes(f: h5py.File, fields: list[str], columns: list[str]) -> Catalogue:
    """The catalogue from the run file's own attributes (labels, colours,
    units), for a file whose scenario this version cannot read."""
    names = tuple(_cell_type_names(f))
    labels = str(_py(f.attrs.get("cell_type_labels", ""))).split("|")
    colours = str(_py(f.attrs.get("cell_type_colours", ""))).split()
    if len(labels) != len(names):
        labels = list(names)
    if len(colours) != len(names):
        colours = ["#808080"] * len(names)
    shape = [int(n) for n in f.attrs["lattice_shape"]]
    dims = (1, *shape) if len(shape) == 2 else tuple(shape)

    def attr(name: str, key: str, default: str) -> str:
        return str(_py(f["fields"][name].attrs.get(key, default)))

    return Catalogue(
        type_names=names, type_labels=tuple(labels), type_colours=tuple(colours),
        field_names=tuple(fields), field_labels=tuple(attr(n, "long_name", n) for n in fields),
        field_units=tuple(attr(n, "units", "ng/mL") for n in fields),
        field_reference=(1.0,) * len(fields),
        dims=(int(dims[0]), int(dims[1]), int(dims[2])), site_um=float(f.attrs["site_um"]),
        dt_min=float(f.attrs["dt_min"]),
        tumour_codes=tuple(i for i, n in enumerate(names) if n.startswith("tumour")),
        quantities=tuple(q for q, col in CELL_COLUMNS.items() if col in columns),
    )


class RunSource(FrameSource):
    """One snapshot at a time of a run file, complete or ``.partial``.

    Parameters
    ----------
    path
        The run file.

    Raises
    ------
    tme_abm.io.RunFileError
        If the file is not a readable run file or holds no complete snapshot.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._follow_rename()
        with _open_run(self.path) as f:
            n = int(f["time"].shape[0])
            if n == 0:
                raise RunFileError(f"{self.path} holds no complete snapshot yet")
            fields = _field_names(f)
            columns = _column_names(f)
            sc = _scenario_of(f)
            if sc is not None and tuple(sc.cell_types) == tuple(_cell_type_names(f)):
                self.catalogue = Catalogue.from_scenario(sc, fields, columns=columns)
            else:
                self.catalogue = _catalogue_of_attributes(f, fields, columns)
            self.name = sc.name if sc is not None else str(_py(f.attrs.get("scenario_name",
                                                                              self.path.stem)))
        self.n_snapshots = n
        self.index = -1
        self._time = 0.0
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._cells: dict[str, np.ndarray] = {}
        self.load(n - 1)

    def _follow_rename(self) -> None:
        """A ``.partial`` whose run has finished is renamed to its final
        name: follow it there."""
        if not self.path.exists() and self.path.name.endswith(PARTIAL_SUFFIX):
            final = self.path.with_name(self.path.name[: -len(PARTIAL_SUFFIX)])
            if final.exists():
                self.path = final

    def refresh(self) -> int:
        """Re-read how many snapshots are complete (a run still writing grows;
        a finished one is followed from its ``.partial`` to its final name)."""
        self._follow_rename()
        with _open_run(self.path) as f:
            self.n_snapshots = int(f["time"].shape[0])
        return self.n_snapshots

    def snapshot_days(self) -> np.ndarray:
        """Times of the complete snapshots (days)."""
        with _open_run(self.path) as f:
            return f["time"][: self.n_snapshots] / 1440.0

    def load(self, index: int) -> None:
        """Show snapshot ``index`` (reads its cell rows; planes are read when asked)."""
        index = min(max(int(index), 0), self.n_snapshots - 1)
        if index == self.index:
            return
        self._follow_rename()
        with _open_run(self.path) as f:
            self._time = float(f["time"][index])
            cells = f["cells"]
            sizes = cells["row_size"][: index + 1]
            start = int(sizes[:index].sum())
            stop = start + int(sizes[index])
            self._cells = {k: cells[k][start:stop]
                           for k in ("site", "type", *CELL_COLUMNS.values(), "id", "flags")
                           if k in cells}
        sites = self._cells.get("site", np.zeros(0, dtype=np.int64))
        order = np.argsort(sites, kind="stable")
        self._sorted_sites = sites[order]
        self._order = order
        self._cache = {}
        self.index = index

    @property
    def tick(self) -> int:
        return int(round(self._time / self.catalogue.dt_min))

    @property
    def time_min(self) -> float:
        return self._time

    def _read_plane(self, dataset: str, z: int) -> np.ndarray:
        key = (dataset, z)
        if key not in self._cache:
            with _open_run(self.path) as f:
                ds = f[dataset]
                self._cache[key] = ds[self.index, z] if ds.ndim == 4 else ds[self.index]
        return self._cache[key]

    def types(self, z: int = 0) -> np.ndarray:
        return self._read_plane("lattice/cell_type", z)

    def quantity(self, name: str, z: int = 0) -> np.ndarray:
        values = self._cells[CELL_COLUMNS[name]].astype(np.float32)
        return self._scatter(self._cells["site"].astype(np.int64), values, z)

    def field(self, name: str, z: int = 0) -> np.ndarray:
        return self._read_plane(f"fields/{name}", z)

    def counts(self) -> list[int]:
        n = len(self.catalogue.type_names)
        if "type" in self._cells:
            return [int(v) for v in np.bincount(self._cells["type"], minlength=n)[:n]]
        with _open_run(self.path) as f:  # no cell columns stored: the series at this tick
            grp = f["timeseries"]
            row = min(self.tick, grp["tick_time"].shape[0] - 1)
            return [int(grp[f"count_{name}"][row]) if f"count_{name}" in grp else 0
                    for name in self.catalogue.type_names]

    def site(self, x: int, y: int, z: int = 0) -> SiteInfo:
        cat = self.catalogue
        nz, ny, nx = cat.dims
        flat = (z * ny + y) * nx + x
        info = SiteInfo(x, y, z)
        k = int(np.searchsorted(self._sorted_sites, flat))
        if k < len(self._sorted_sites) and self._sorted_sites[k] == flat:
            row = int(self._order[k])
            c = self._cells
            info.cell = {"cell": cat.type_label(int(c["type"][row]))}
            if "id" in c:
                info.cell["id"] = f"{int(c['id'][row])}"
            for q, col in CELL_COLUMNS.items():
                if col in c:
                    info.cell[q] = float(c[col][row])
            if "flags" in c and int(c["flags"][row]) & 1:
                info.cell["STAT3 knockout"] = "yes"
        with _open_run(self.path) as f:
            for name, label, units in zip(cat.field_names, cat.field_labels, cat.field_units,
                                          strict=True):
                ds = f["fields"][name]
                where = (self.index, z, y, x) if ds.ndim == 4 else (self.index, y, x)
                info.fields[f"{label} ({units})"] = float(ds[where])
        return info
