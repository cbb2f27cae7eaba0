"""The bench's tissue case: how long a large cell table takes to read and to place.

A synthetic table of ``n`` cells (default 10⁶) at a tissue-like density of
2,500 cells per mm² (one per 20 µm site on average, so about a third of the
cells meet a taken site and move) with seven labels, one of them ignored, is
written as CSV, Parquet and ``.h5ad`` (the last two when pyarrow and anndata
are installed) and read back with :func:`tme_abm.tissue.read_cell_table`;
the placement on a lattice that holds it (:func:`place_cell_table`, default
reach) is timed separately.  Medians over the repeats; the files are made
once, outside the timing.  Reading and placing run on one thread (numba's
thread count does not matter), so no thread columns are given.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Cells of the full and quick cases.
FULL_CELLS = 1_000_000
QUICK_CELLS = 20_000
#: Cells per mm² of the synthetic section (one per 20 µm site on average).
DENSITY_PER_MM2 = 2_500.0
#: Target for reading and placing 10⁶ cells from CSV ("seconds, not minutes").
TARGET_S = 10.0
SITE_UM = 20.0
LABELS = ("Tumour", "CD8", "Treg", "Macrophage", "DC", "NK", "Stroma")
MAPPING = {"Tumour": "tumour", "CD8": "cd8", "Treg": "treg", "Macrophage": "m2",
           "DC": "dc", "NK": "nk"}
TYPES = {"tumour": 0, "cd8": 1, "nk": 2, "treg": 3, "dc": 4, "m2": 5}


def make_tables(n: int, folder: Path) -> dict[str, Path]:
    """The synthetic table in every format that can be written here."""
    import pandas as pd

    rng = np.random.default_rng(0)
    side_um = math.sqrt(n / DENSITY_PER_MM2) * 1000.0
    frame = pd.DataFrame({
        "x": rng.uniform(0, side_um, n), "y": rng.uniform(0, side_um, n),
        "cell_type": rng.choice(LABELS, n, p=[0.5, 0.1, 0.03, 0.12, 0.05, 0.05, 0.15]),
        "pSTAT3": rng.gamma(2.0, 300.0, n),
    })
    out = {"csv": folder / "cells.csv"}
    frame.to_csv(out["csv"], index=False)
    try:
        frame.to_parquet(folder / "cells.parquet")
        out["parquet"] = folder / "cells.parquet"
    except ImportError:
        pass
    try:
        import anndata as ad

        a = ad.AnnData(obs=frame[["cell_type", "pSTAT3"]].set_axis(
            [str(i) for i in range(n)]).astype({"cell_type": "category"}))
        a.obsm["spatial"] = frame[["x", "y"]].to_numpy()
        a.write_h5ad(folder / "cells.h5ad")
        out["h5ad"] = folder / "cells.h5ad"
    except ImportError:
        pass
    return out


def measure(n: int, repeats: int, folder: str | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Median seconds to read each format and to place the table; file sizes."""
    from tme_abm.tissue import place_cell_table, read_cell_table

    side = int(math.ceil(math.sqrt(n / DENSITY_PER_MM2) * 1000.0 / SITE_UM)) + 1
    res: dict[str, Any] = {"cells": n, "lattice": [side, side], "site_um": SITE_UM,
                           "repeats": repeats, "read_s": {}, "bytes": {}}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        log(f"tissue: writing a {n:,}-cell table")
        paths = make_tables(n, Path(tmp))
        table = None
        for kind, path in paths.items():
            res["bytes"][kind] = path.stat().st_size
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                table = read_cell_table(path, value_column="pSTAT3")
                times.append(time.perf_counter() - t0)
            res["read_s"][kind] = float(np.median(times))
            log(f"tissue: read {kind} in {res['read_s'][kind]:.2f} s")
        place = dict(dims=(1, side, side), ndim=2, site_um=SITE_UM, labels=MAPPING,
                     type_codes=TYPES, ignore_labels=["Stroma"], centre_um=None)
        place_cell_table(table, **place)  # compiles the kernel (or loads it)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            placed = place_cell_table(table, **place)
            times.append(time.perf_counter() - t0)
        res["place_s"] = float(np.median(times))
        res["report"] = placed.report.to_dict()
        log(f"tissue: placed in {res['place_s']:.2f} s")
    return res


def tissue_load(config: Any, raw: dict[str, Any], log: Callable[[str], None]) -> list[Any]:
    """The bench's tissue figures, with the measurement in ``raw["tissue_load"]``."""
    from tme_abm.benchmark.report import Figure, Target

    n = QUICK_CELLS if config.quick else FULL_CELLS
    res = measure(n, max(1, min(config.repeats, 3)), config.write_folder, log)
    raw["tissue_load"] = res
    label = f"{n:,} cells"
    figures = [
        Figure(f"tissue_read_{kind}", f"tissue table: read {kind} ({label})", "s", value=s,
               details={"bytes": res["bytes"][kind]})
        for kind, s in res["read_s"].items()
    ]
    total = res["read_s"]["csv"] + res["place_s"]
    figures.append(Figure(
        "tissue_place", f"tissue table: place on a {res['lattice'][0]}^2 lattice ({label})",
        "s", value=res["place_s"],
        details={k: v for k, v in res["report"].items() if k != "extent_um"},
    ))
    figures.append(Figure(
        "tissue_csv_to_lattice", f"tissue table: read CSV and place ({label})", "s",
        value=total,
        target=Target("<=", TARGET_S, f"<= {TARGET_S:g} s for 10^6 cells",
                      applies=not config.quick, why_not="quick runs use a small table"),
    ))
    return figures
