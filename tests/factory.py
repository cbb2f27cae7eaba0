"""Build small scenarios and engines by hand for kernel-level tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tme_abm.core.engine import Engine
from tme_abm.scenario import compile_scenario, validate_data


def minimal(shape=(41, 41), days: float = 1.0, dt_min: float = 5.0, seed: int = 1) -> dict:
    """A valid scenario dict with one field and one inert cell type, no placement."""
    return {
        "name": "test",
        "seed": seed,
        "domain": {"shape": list(shape), "site_um": 20.0, "dt_min": dt_min, "duration_days": days},
        "output": {"snapshot_every_min": dt_min},
        "fields": {"signal": {"diffusion_um2_per_min": 0.0}},
        "cell_types": {"a": {}},
    }


def with_type(data: dict, name: str, **spec: Any) -> dict:
    """Copy of ``data`` with cell type ``name`` set to ``spec``."""
    out = copy.deepcopy(data)
    out["cell_types"][name] = spec
    return out


def engine(data: dict, seed: int | None = None) -> Engine:
    """An Engine for a scenario dict (validated like a file)."""
    return Engine(compile_scenario(validate_data(data, "test"), seed=seed))


TINY = Path(__file__).parent / "data" / "tiny.toml"


def partial_run_file(folder: Path, snapshots: int = 2, steps_between: int = 1) -> Path:
    """The tiny scenario written for ``snapshots`` snapshots and left as an
    interrupted run leaves it (``cut.h5.partial`` in ``folder``)."""
    from tme_abm.io import RunWriter
    from tme_abm.model import TMEModel
    from tme_abm.runner import _snapshot, run_layout

    model = TMEModel(TINY)
    layout = run_layout(model)
    writer = RunWriter(Path(folder) / "cut.h5", layout)
    for _ in range(snapshots):
        writer.append_timeseries(model.time_min, model.summary())
        _snapshot(writer, model, layout)
        for _ in range(steps_between):
            model.step()
    return writer.close(complete=False)


def as_format_1_0(path: Path) -> Path:
    """Rewrite a run file's cell-type labels the way format 1.0 wrote them:
    ``empty`` first on the lattice, no labels on ``/cells/type`` or
    ``/checkpoint/type``."""
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "1.0"
        ct = f["lattice/cell_type"]
        names = [n for n in str(ct.attrs["flag_meanings"]).split() if n != "empty"]
        ct.attrs["flag_values"] = np.arange(-1, len(names), dtype="i1")
        ct.attrs["flag_meanings"] = " ".join(("empty", *names))
        for where in ("cells/type", "checkpoint/type"):
            if where in f:
                for key in ("flag_values", "flag_meanings", "long_name"):
                    if key in f[where].attrs:
                        del f[where].attrs[key]
    return path
