"""A run's snapshot as AnnData or SpatialData, so scanpy and squidpy analyse it unchanged.

The job of this module is to turn one snapshot of a run file into the objects
the scverse tools read:

* :func:`to_anndata`: one row per cell; ``obs`` holds ``cell_id``,
  ``cell_type`` (categorical, in the scenario's order, with the run's colours
  in ``uns["cell_type_colors"]``), ``stat3``, ``socs3``, ``kills``,
  ``stat3_knockout``, the position in µm and the distance from the tumour
  edge; ``obsm["spatial"]`` the position (x, y[, z]) in µm; ``X`` the
  concentration of every saved field at the cell's site (ng/mL; ``var``
  holds units and long names), so squidpy's spatial statistics treat the
  cytokines like genes; ``uns["tme_abm"]`` the run's provenance.
* :func:`to_spatialdata`: the same table, plus the fields as a multi-channel
  image, the lattice as a label image of cell instances, and the cells as
  circles (points in 3D), all in one µm coordinate system (``global``).

anndata (and spatialdata) are imported only here, from the ``scverse`` extra.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tme_abm.io import read_run_info, read_snapshot

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import spatialdata

__all__ = ["EXPORT_FORMATS", "snapshot_for_day", "table_to_anndata", "to_anndata",
           "to_spatialdata", "write_export"]

#: ``tme-abm export --format`` values and their file endings.
EXPORT_FORMATS = {"anndata": ".h5ad", "spatialdata": ".zarr"}

_MIN_PER_DAY = 1440.0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tme_abm")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        why = "it is not installed" if exc.name == package else f"importing it failed: {exc}"
        raise ImportError(
            f"exporting needs {package} ({why}): pip install 'tme_abm[scverse]'"
        ) from None


def snapshot_for_day(times_min: np.ndarray, day: float | None) -> int:
    """Index of the snapshot nearest ``day`` (the last one for None).

    Raises
    ------
    ValueError
        If there is no snapshot, or ``day`` lies before the first or more than
        half a snapshot interval after the last.
    """
    n = len(times_min)
    if n == 0:
        raise ValueError("the run file holds no complete snapshot")
    if day is None:
        return n - 1
    t = float(day) * _MIN_PER_DAY
    step = float(np.median(np.diff(times_min))) if n > 1 else 0.0
    first, last = float(times_min[0]), float(times_min[-1])
    if not math.isfinite(t) or t < first - 0.5 * step or t > last + 0.5 * step:
        raise ValueError(
            f"day {day:g} is outside the run's snapshots (days {first / _MIN_PER_DAY:g} to "
            f"{last / _MIN_PER_DAY:g})"
        )
    return int(np.argmin(np.abs(np.asarray(times_min) - t)))


def _positions_um(sites: np.ndarray, shape: tuple[int, ...], site_um: float) -> np.ndarray:
    """(n, ndim) site-centre positions, x first (x, y[, z]), in µm."""
    idx = np.unravel_index(np.asarray(sites, dtype=np.int64), shape)  # (z,) y, x
    return np.stack([(i + 0.5) * site_um for i in idx[::-1]], axis=1)


def _snapshot_cells(snap: dict, shape: tuple[int, ...]) -> tuple[dict[str, np.ndarray], bool]:
    """The snapshot's per-cell columns, or ones made from the lattice (second value False)."""
    cells = snap.get("cells") or {}
    if cells and all(k in cells for k in ("id", "type", "site")):
        order = np.argsort(np.asarray(cells["id"]), kind="stable")
        return {k: np.asarray(v)[order] for k, v in cells.items()}, True
    lattice = np.asarray(snap["cell_type"]).ravel()
    sites = np.flatnonzero(lattice >= 0)
    return {"site": sites, "type": lattice[sites].astype(np.int64)}, False


def to_anndata(path: str | Path, day: float | None = None) -> anndata.AnnData:
    """One snapshot of a run file as an AnnData (one row per cell).

    Parameters
    ----------
    path
        A run file (complete or ``.partial``).
    day
        The snapshot nearest this day; default the last.

    Returns
    -------
    anndata.AnnData
        See the module docstring for its layout.  A run written with
        ``output.cells = false`` has no per-cell rows: the cells are then
        taken from the lattice (type and position only; ``uns["tme_abm"]
        ["cells_from_lattice"]`` is True).

    Raises
    ------
    tme_abm.io.RunFileError
        If ``path`` is not a readable run file.
    ValueError
        If ``day`` is outside the run.
    ImportError
        Without anndata (``pip install 'tme_abm[scverse]'``).
    """
    ad = _need("anndata")
    import pandas as pd

    from tme_abm.analysis.spatial import codes_for_role, distance_from_tumour_edge_um

    info = read_run_info(path)
    index = snapshot_for_day(info["time_min"], day)
    snap = read_snapshot(path, index)
    shape, site_um = info["shape"], info["site_um"]
    cells, per_cell = _snapshot_cells(snap, shape)
    sites = np.asarray(cells["site"], dtype=np.int64)
    types = np.asarray(cells["type"], dtype=np.int64)
    names = info["cell_types"]
    present = [n for k, n in enumerate(names) if np.any(types == k)]
    codes = {n: k for k, n in enumerate(names)}
    attrs = info["attrs"]
    colours = str(attrs.get("cell_type_colours", "")).split()
    spatial = _positions_um(sites, shape, site_um)

    obs = pd.DataFrame(index=pd.Index(
        [str(int(i)) for i in cells["id"]] if per_cell else [f"site{s}" for s in sites],
        name="cell",
    ))
    if per_cell:
        obs["cell_id"] = np.asarray(cells["id"], dtype=np.int64)
    obs["cell_type"] = pd.Categorical.from_codes(
        [present.index(names[t]) for t in types], categories=present
    )
    for col in ("stat3", "socs3"):
        if col in cells:
            obs[col] = np.asarray(cells[col], dtype=np.float32)
    if "kills" in cells:
        obs["kills"] = np.asarray(cells["kills"], dtype=np.int16)
    if "flags" in cells:
        obs["stat3_knockout"] = (np.asarray(cells["flags"]) & 1).astype(bool)
    for k, axis in enumerate("xyz"[: spatial.shape[1]]):
        obs[f"{axis}_um"] = spatial[:, k]
    tumour = codes_for_role(codes, "tumour")
    if tumour:
        d = distance_from_tumour_edge_um(np.asarray(snap["cell_type"]), tumour, site_um)
        obs["tumour_edge_distance_um"] = d.ravel()[sites]

    field_names = list(snap["fields"])
    x = np.empty((sites.size, len(field_names)), dtype=np.float32)
    for j, name in enumerate(field_names):
        x[:, j] = np.asarray(snap["fields"][name]).ravel()[sites]
    var = pd.DataFrame(index=pd.Index(field_names, name="field"))
    var["units"] = [info["fields"][f]["units"] for f in field_names]
    var["long_name"] = [info["fields"][f]["long_name"] for f in field_names]

    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.obsm["spatial"] = spatial
    if len(colours) == len(names):
        adata.uns["cell_type_colors"] = [colours[codes[n]] for n in present]
    time_min = float(snap["time_min"])
    provenance: dict[str, Any] = {
        "run_file": str(Path(path).resolve()),
        "run_complete": info["complete"],
        "snapshot_index": int(index),
        "time_min": time_min,
        "day": time_min / _MIN_PER_DAY,
        "site_um": site_um,
        "lattice_shape": list(shape),
        "spatial_units": "um",
        "X": "field concentration at the cell's site (units in var)",
        "cells_from_lattice": not per_cell,
    }
    for key in ("seed", "scenario_name", "scenario_path", "overrides", "tme_abm_version",
                "format_version", "created", "tissue_file", "tissue_sha256", "scenario"):
        if key in attrs:
            value = attrs[key]
            provenance[key] = value if isinstance(value, int | float | str) else str(value)
    provenance["exported_by"] = f"tme_abm {_version()}"
    adata.uns["tme_abm"] = provenance
    return adata


def table_to_anndata(tissue: Any, colours: dict[str, str] | None = None) -> anndata.AnnData:
    """A real cell table as an AnnData laid out like :func:`to_anndata`'s, for the same analyses.

    Rows whose label maps to a cell type (``[tissue] labels``) are kept, at
    their own positions (not on a lattice): ``obsm["spatial"]`` is x, y in µm
    (``scale_um`` applied, ``flip_y`` and ``rotate_deg`` about the table's
    centre; no cropping to a lattice).  ``obs`` holds ``cell_type`` (the
    model's type names, categorical), ``label`` (the table's own label) and
    ``stat3`` when the spec names a STAT3 column (rescaled as for a run).

    Parameters
    ----------
    tissue
        A ``[tissue]`` spec: a TOML file, a dict or a
        :class:`~tme_abm.scenario.schema.Tissue` (see
        :func:`tme_abm.tissue.compare.load_tissue_spec`).
    colours
        Optional cell-type name -> colour, stored as ``uns["cell_type_colors"]``.
    """
    ad = _need("anndata")
    import pandas as pd

    from tme_abm.tissue.compare import load_tissue_spec
    from tme_abm.tissue.placement import stat3_from_values, table_positions_um, window_mask
    from tme_abm.tissue.table import read_spec_table

    spec, _ = load_tissue_spec(tissue)
    table = read_spec_table(spec)
    labels = np.asarray(table.labels, dtype=object)
    keep = np.isin(labels, list(spec.labels)) & window_mask(table, spec.window, spec.z_slab)
    if table.vessel is not None:
        keep &= ~table.vessel
    # the geometry a run would use (scale, flip, rotation), then shifted to start at 0
    pos = table_positions_um(
        table, keep, (1, 1, 1), 2, 1.0, spec.scale_um, spec.rotate_deg, spec.flip_y, None,
        [0.0, 0.0], None, False, spec.keep_coordinates,
    )
    spatial = np.stack([pos[:, 2] - pos[:, 2].min(), pos[:, 1] - pos[:, 1].min()], axis=1)
    types = [spec.labels[label] for label in labels[keep]]
    order = list(dict.fromkeys(spec.labels.values()))
    obs = pd.DataFrame(index=pd.Index([str(i) for i in np.flatnonzero(keep)], name="row"))
    obs["cell_type"] = pd.Categorical(types, categories=[t for t in order if t in set(types)])
    obs["label"] = pd.Categorical(labels[keep].astype(str))
    if table.values is not None:
        obs["stat3"], _ = stat3_from_values(table.values[keep], spec.stat3_range)
    adata = ad.AnnData(obs=obs)
    adata.obsm["spatial"] = spatial
    if colours:
        adata.uns["cell_type_colors"] = [colours.get(t, "#7f7f7f")
                                         for t in obs["cell_type"].cat.categories]
    adata.uns["tme_abm"] = {"tissue_file": spec.file, "spatial_units": "um",
                            "scale_um": spec.scale_um, "exported_by": f"tme_abm {_version()}"}
    return adata


def to_spatialdata(path: str | Path, day: float | None = None) -> spatialdata.SpatialData:
    """One snapshot of a run file as a SpatialData object.

    Elements, all in the coordinate system ``global`` whose unit is µm:

    * ``images["fields"]``: every saved field, one channel each (ng/mL);
    * ``labels["cell_labels"]``: the lattice, each site holding its cell's
      instance id (the AnnData row + 1; 0 = empty);
    * ``shapes["cell_circles"]`` (2D: circles of radius ``site_um / 2`` at the
      site centres, indexed by instance id) or ``points["cell_points"]`` (3D);
    * ``tables["table"]``: :func:`to_anndata`'s table, annotating
      ``labels["cell_labels"]`` (``obs["region"]``, ``obs["instance_id"]``);
    * ``attrs``: ``units`` (``global``: µm; ``fields/<name>``: each channel's
      unit) and ``tme_abm`` (the provenance of :func:`to_anndata`).

    Parameters and errors are those of :func:`to_anndata` (spatialdata is
    needed as well).
    """
    sd = _need("spatialdata")
    models = _need("spatialdata.models")
    tf = _need("spatialdata.transformations")
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    adata = to_anndata(path, day)
    snap = read_snapshot(path, adata.uns["tme_abm"]["snapshot_index"])
    shape = tuple(adata.uns["tme_abm"]["lattice_shape"])
    site_um = float(adata.uns["tme_abm"]["site_um"])
    ndim = len(shape)
    axes = ("z", "y", "x")[3 - ndim:]
    scale = tf.Scale([site_um] * ndim, axes=axes)

    fields = np.stack([np.asarray(snap["fields"][f], dtype=np.float32)
                       for f in adata.var_names]) if adata.n_vars else None
    instance = np.arange(1, adata.n_obs + 1, dtype=np.int32)
    label_img = np.zeros(int(np.prod(shape)), dtype=np.int32)
    sites = np.ravel_multi_index(
        tuple(np.floor(adata.obsm["spatial"][:, k] / site_um).astype(np.int64)
              for k in range(ndim - 1, -1, -1)), shape)
    label_img[sites] = instance
    label_img = label_img.reshape(shape)

    image_model = models.Image3DModel if ndim == 3 else models.Image2DModel
    label_model = models.Labels3DModel if ndim == 3 else models.Labels2DModel
    images = {}
    if fields is not None:
        images["fields"] = image_model.parse(
            fields, dims=("c", *axes), c_coords=list(adata.var_names),
            transformations={"global": scale},
        )
    labels = {"cell_labels": label_model.parse(label_img, dims=axes,
                                         transformations={"global": scale})}
    xy = adata.obsm["spatial"]
    shapes, points = {}, {}
    if ndim == 2:
        frame = gpd.GeoDataFrame(
            {"radius": np.full(adata.n_obs, 0.5 * site_um)},
            geometry=[Point(float(a), float(b)) for a, b in xy],
            index=pd.Index(instance, name="instance_id"),
        )
        shapes["cell_circles"] = models.ShapesModel.parse(
            frame, transformations={"global": tf.Identity()}
        )
    else:
        pts = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "z": xy[:, 2],
                            "cell_type": adata.obs["cell_type"].to_numpy()})
        points["cell_points"] = models.PointsModel.parse(
            pts, coordinates={"x": "x", "y": "y", "z": "z"},
            transformations={"global": tf.Identity()},
        )
    table = adata.copy()
    table.obs["region"] = pd.Categorical(["cell_labels"] * table.n_obs)
    table.obs["instance_id"] = instance
    table = models.TableModel.parse(table, region="cell_labels", region_key="region",
                                    instance_key="instance_id")
    attrs = {
        "tme_abm": dict(adata.uns["tme_abm"]),
        "units": {"global": "um",
                  **{f"fields/{f}": u for f, u in zip(adata.var_names, adata.var["units"],
                                                       strict=True)}},
    }
    return sd.SpatialData(images=images, labels=labels, shapes=shapes, points=points,
                          tables={"table": table}, attrs=attrs)


def _remove_stale(out: Path, suffix: str) -> None:
    """Remove temporary exports to ``out`` left by processes that no longer run
    (a killed export leaves its ``.NAME.PID.tmp`` beside the target)."""
    for old in out.parent.glob(f".{out.name}.*.tmp{suffix}"):
        pid = old.name[len(out.name) + 2:].split(".")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _remove(old)
        except PermissionError:  # alive, someone else's
            continue


def default_export_path(run: str | Path, fmt: str, day: float | None) -> Path:
    """``RUN_dayD.h5ad`` (or ``.zarr``) beside the run file."""
    run = Path(run)
    stem = run.name.removesuffix(".partial").removesuffix(".h5")
    tag = "last" if day is None else f"day{day:g}"
    return run.with_name(f"{stem}_{tag}{EXPORT_FORMATS[fmt]}")


def write_export(
    run: str | Path, out: str | Path, fmt: str = "anndata", day: float | None = None,
    force: bool = False,
) -> Path:
    """Export a snapshot to ``out`` (``.h5ad`` or ``.zarr``), never leaving half a file.

    The export is written beside ``out`` under a temporary name
    (``.NAME.PID.tmp``) and renamed when complete; an existing ``out`` is kept
    unless ``force``, and even then it is only removed once the new export is
    complete.  Temporary exports to ``out`` left by killed processes are
    removed.

    Raises
    ------
    FileExistsError
        If ``out`` exists and ``force`` is False.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r}; allowed: {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; use --force to replace it")
    obj = to_anndata(run, day) if fmt == "anndata" else to_spatialdata(run, day)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out, EXPORT_FORMATS[fmt])
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{EXPORT_FORMATS[fmt]}")
    try:
        if fmt == "anndata":
            obj.write_h5ad(tmp)
        else:
            obj.write(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
            out.rename(old)
            tmp.rename(out)
            _remove(old)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            _remove(tmp)
    return out
