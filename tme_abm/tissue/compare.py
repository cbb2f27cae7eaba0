"""One set of spatial metrics for a real section and a simulated one, side by side.

The job of this module is to measure a real cell table with exactly the
numbers :mod:`tme_abm.analysis` measures on a run: the table is placed on a
lattice of the run's spacing (:mod:`tme_abm.tissue.placement`, the same
geometry a run starting from the table would get), and the snapshot metrics
(:func:`tme_abm.analysis.spatial.snapshot_metrics`) and the immune
composition of the tumour sample
(:func:`tme_abm.analysis.composition.immune_composition`) are computed on it
as on any snapshot.  :func:`compare_tissue` puts a run's snapshot beside a
table; only sizes that do not depend on how large the section is (densities,
fractions, ratios) are compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tme_abm.tissue.placement import PlacedTissue, TissueReport, place_spec_table
from tme_abm.tissue.table import TissueError, read_spec_table

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from tme_abm.scenario.schema import Tissue

__all__ = ["COMPARED_METRICS", "compare_tissue", "load_tissue_spec", "snapshot_summary",
           "tissue_metrics", "tissue_snapshot"]

#: Metrics of :func:`snapshot_summary` that do not scale with the section's size.
COMPARED_METRICS = (
    "immune_fraction",
    "cd8_per_treg",
    "cd8_core_density",
    "cd8_margin_density",
    "cd8_core_margin_ratio",
    "tumour_cd8_contact_fraction",
    "cd8_touching_tumour_fraction",
    "stat3_high_fraction_tumour",
    "stat3_high_fraction_cd8",
    "stat3_high_fraction_treg",
)


def load_tissue_spec(source: str | Path | Mapping[str, Any] | Tissue) -> tuple[Tissue, Path]:
    """A ``[tissue]`` spec from a TOML file (a scenario, whose ``[tissue]`` may
    come from a file it ``extends``, or a file holding only ``[tissue]``; or a
    shipped scenario's name such as ``"tissue_section"``), a
    dict of its keys, or a :class:`~tme_abm.scenario.schema.Tissue`.

    Returns the spec (with ``file`` made absolute: relative to the TOML file's
    folder, else the working folder) and that folder.

    Raises
    ------
    TissueError
        If the file has no ``[tissue]`` table or a key is invalid.
    """
    from pydantic import ValidationError

    from tme_abm.scenario.schema import Tissue

    folder = Path.cwd()
    if isinstance(source, Tissue):
        spec = source
    else:
        if isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                from tme_abm.scenario.library import find

                shipped = find(str(source), "scenario") if path.suffix == "" else None
                if shipped is None:
                    raise TissueError("", f"no such file: {path}")
                path = shipped
            from tme_abm.scenario import ScenarioError
            from tme_abm.scenario.load import read_composed

            try:  # a scenario's [tissue] may come from a file it extends
                data, _ = read_composed(path)
            except ScenarioError as exc:
                raise TissueError("", exc.format()) from None
            if "tissue" not in data:
                raise TissueError("", f"{path} has no [tissue] table (a scenario with one, or a "
                                  "file holding just [tissue], is needed)")
            data, folder = data["tissue"], path.resolve().parent
        else:
            data = dict(source)
        try:
            spec = Tissue.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise TissueError(key, err["msg"]) from None
    path = Path(spec.file).expanduser()
    if not path.is_absolute():
        path = (folder / path).resolve()
    return spec.model_copy(update={"file": str(path)}), folder


def tissue_snapshot(
    spec: Tissue, type_names: Sequence[str], site_um: float, pad_sites: int = 3,
    shape: tuple[int, int] | None = None,
) -> tuple[dict[str, Any], TissueReport]:
    """A real cell table as a lattice snapshot of spacing ``site_um`` (2D).

    With ``shape``, the table is placed on a lattice of that shape exactly as
    a run of that shape starting from the table would place it (the spec's
    ``centre_um`` included).  Without, the lattice is sized to the (windowed,
    scaled, rotated) table plus ``pad_sites`` empty sites on each side.
    Collisions are resolved as in a run (:mod:`tme_abm.tissue.placement`).

    Returns
    -------
    tuple
        A snapshot dict (``cell_type`` lattice and ``cells`` with ``type``,
        ``site``, ``stat3`` when the spec names a STAT3 column) and the
        placement report.
    """
    table = read_spec_table(spec)
    centre, keep = spec.centre_um, spec.keep_coordinates
    if shape is None:
        shape, centre, keep = _fitted_shape(table, spec, site_um, pad_sites), None, False
    placed: PlacedTissue = place_spec_table(
        table, spec, dims=(1, *shape), ndim=2, site_um=site_um,
        type_codes={name: k for k, name in enumerate(type_names)},
        centre_um=centre, keep_coordinates=keep, z_um=None, outside="error",
    )
    lattice = np.full(shape[0] * shape[1], -1, dtype=np.int8)
    lattice[placed.sites] = placed.types
    cells: dict[str, np.ndarray] = {"type": placed.types, "site": placed.sites}
    if placed.stat3 is not None:
        cells["stat3"] = placed.stat3
    return {"cell_type": lattice.reshape(shape), "cells": cells}, placed.report


def _fitted_shape(table, spec: Tissue, site_um: float, pad_sites: int) -> tuple[int, int]:
    """A 2D lattice shape holding the windowed, scaled, rotated table with a rim."""
    keep = np.ones(table.n, dtype=bool)
    if spec.window is not None:
        w = spec.window
        keep = (table.x >= w[0]) & (table.x < w[1]) & (table.y >= w[2]) & (table.y < w[3])
    if not keep.any():
        raise TissueError("window", f"no row of {table.path} lies inside the window")
    wx = float(np.ptp(table.x[keep])) * spec.scale_um
    wy = float(np.ptp(table.y[keep])) * spec.scale_um
    if spec.rotate_deg % 180 != 0:
        wx = wy = math.hypot(wx, wy)
    return (int(math.ceil(wy / site_um)) + 2 * pad_sites,
            int(math.ceil(wx / site_um)) + 2 * pad_sites)


def snapshot_summary(
    snapshot: Mapping[str, Any], type_codes: Mapping[str, int], site_um: float,
    margin_um: float = 100.0, stat3_threshold: float = 0.5,
) -> dict[str, float]:
    """The snapshot metrics and immune composition of one snapshot (real or simulated).

    Returns :data:`COMPARED_METRICS` plus ``share_<type>`` (each immune type's
    share of immune cells in the tumour sample), ``n_cells`` and
    ``n_tumour_sample`` (counts, which do depend on the section's size).
    """
    from tme_abm.analysis.composition import immune_composition
    from tme_abm.analysis.spatial import codes_for_role, infiltrating_cd8, snapshot_metrics

    lattice = np.asarray(snapshot["cell_type"])
    cells = dict(snapshot.get("cells") or {})
    if "stat3" not in cells:
        cells = {}
    metrics = snapshot_metrics({"cell_type": lattice, "cells": cells}, type_codes, site_um,
                               margin_um, stat3_threshold)
    comp = immune_composition(lattice, type_codes, site_um, margin_um)
    out: dict[str, float] = {
        "immune_fraction": comp["immune_fraction"],
        "cd8_per_treg": comp["cd8_per_treg"],
        **{k: metrics[k] for k in COMPARED_METRICS if k in metrics},
    }
    cd8, tumour = codes_for_role(type_codes, "cd8"), codes_for_role(type_codes, "tumour")
    n_cd8 = int(np.count_nonzero(np.isin(lattice, cd8))) if cd8 else 0
    touching = infiltrating_cd8(lattice, cd8, tumour, lattice.ndim) if cd8 and tumour else 0
    out["cd8_touching_tumour_fraction"] = touching / n_cd8 if n_cd8 else math.nan
    out = {k: float(out.get(k, math.nan)) for k in COMPARED_METRICS}
    for name, share in comp["immune_share"].items():
        out[f"share_{name}"] = float(share)
    out["n_cells"] = float(np.count_nonzero(lattice >= 0))
    out["n_tumour_sample"] = float(comp["n_tumour"] + comp["n_immune"])
    return out


def tissue_metrics(
    tissue: str | Path | Mapping[str, Any] | Tissue,
    site_um: float = 20.0,
    margin_um: float = 100.0,
    stat3_threshold: float = 0.5,
) -> tuple[dict[str, float], TissueReport]:
    """:func:`snapshot_summary` of a real cell table alone, placed at ``site_um``.

    The cell types are the ones its ``labels`` map to (type roles by name, as
    for runs: ``tumour``, ``cd8``, ``treg``); the lattice is fitted to the
    table (:func:`tissue_snapshot`).

    Returns
    -------
    tuple
        The metrics and the placement report.
    """
    spec, _ = load_tissue_spec(tissue)
    names = list(dict.fromkeys(spec.labels.values()))
    snap, report = tissue_snapshot(spec, names, site_um)
    codes = {n: k for k, n in enumerate(names)}
    return snapshot_summary(snap, codes, site_um, margin_um, stat3_threshold), report


def compare_tissue(
    run: str | Path,
    tissue: str | Path | Mapping[str, Any] | Tissue,
    day: float | None = None,
    margin_um: float = 100.0,
    stat3_threshold: float = 0.5,
) -> tuple[pd.DataFrame, TissueReport]:
    """A run's snapshot beside a real cell table, metric by metric.

    Parameters
    ----------
    run
        A run file.
    tissue
        The table's ``[tissue]`` spec (see :func:`load_tissue_spec`); its
        labels map onto the run's cell types.  The table is placed at the
        run's spacing: on the run's own lattice as a run starting from it
        would be (so a run compared with its own table at day 0 differs in
        nothing), or, if it does not fit there, on a lattice fitted to it.
    day
        The run's snapshot nearest this day; default the last.
    margin_um
        Width of the invasive margin and of the tumour sample's rim.
    stat3_threshold
        STAT3-high threshold (the table's STAT3 column rescaled to [0, 1]).

    Returns
    -------
    tuple
        A DataFrame with one row per metric (``metric``, ``tissue``, ``run``,
        ``difference`` = run - tissue, ``ratio`` = run / tissue), size-free
        metrics first and the two counts last, and the table's placement
        report.
    """
    import pandas as pd

    from tme_abm.io import read_run_info, read_snapshot
    from tme_abm.tissue.export import snapshot_for_day

    spec, _ = load_tissue_spec(tissue)
    info = read_run_info(run)
    if len(info["shape"]) != 2:
        raise ValueError(
            f"{run} is a 3D run ({' x '.join(map(str, info['shape']))} sites); a tissue "
            "section is compared with a 2D run (densities per mm², contacts in a plane)"
        )
    index = snapshot_for_day(info["time_min"], day)
    snap = read_snapshot(run, index)
    names = info["cell_types"]
    codes = {n: k for k, n in enumerate(names)}
    sample_snap, report = None, None
    try:  # on the run's lattice, as a run starting from the table would be placed
        sample_snap, report = tissue_snapshot(spec, names, info["site_um"],
                                              shape=info["shape"])
    except TissueError as exc:
        if exc.key != "outside":
            raise
    if sample_snap is None:  # it does not fit there: on a lattice of its own
        sample_snap, report = tissue_snapshot(spec, names, info["site_um"])
    a = snapshot_summary(sample_snap, codes, info["site_um"], margin_um, stat3_threshold)
    b = snapshot_summary(snap, codes, info["site_um"], margin_um, stat3_threshold)
    keys = [*COMPARED_METRICS, *sorted(k for k in {*a, *b} if k.startswith("share_")),
            "n_cells", "n_tumour_sample"]
    rows = []
    for k in keys:
        x, y = a.get(k, math.nan), b.get(k, math.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = y / x if x else math.nan
        rows.append({"metric": k, "tissue": x, "run": y, "difference": y - x, "ratio": ratio})
    frame = pd.DataFrame(rows)
    frame.attrs["run_day"] = float(info["time_min"][index]) / 1440.0
    return frame, report
