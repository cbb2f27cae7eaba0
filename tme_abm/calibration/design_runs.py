"""The emulator method's model runs: a design's points run once, kept in ``design.csv``.

:func:`evaluate_design` is the ``evaluate`` that
:func:`tme_abm.calibration.emulator.history_match` calls for each wave: it
runs the points that ``design.csv`` does not hold yet (same wave, run, seed
and parameter values) in chunks of :data:`CHUNK` on the calibration's
executor, and rewrites the file after each chunk, so a killed calibration
loses at most one chunk and the same command goes on with the same result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from tme_abm.calibration.simulate import Simulator, map_in_order
from tme_abm.calibration.spec import Calibration

__all__ = ["CHUNK", "evaluate_design", "write_csv"]

#: Runs between two rewrites of ``design.csv``.
CHUNK = 8


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a table through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def evaluate_design(
    calibration: Calibration,
    design: pd.DataFrame,
    path: Path,
    executor: Executor | None,
    progress: bool | None,
    say: Callable[[str], None],
) -> pd.DataFrame:
    """The model's summaries at a design's points, reusing and extending ``design.csv``.

    Runs already in the file (same wave, run, seed and parameter values) are
    reused; the rest run in chunks and the file is rewritten after each, so a
    killed calibration loses at most one chunk.
    """
    names = [p.name for p in calibration.spec.parameters]
    keys = [pt.key for pt in calibration.data]
    old = pd.DataFrame()
    if path.is_file():
        try:
            old = pd.read_csv(path)
        except (OSError, ValueError):
            old = pd.DataFrame()
    done: dict[tuple[int, int], dict] = {}
    if len(old) and all(c in old for c in ["wave", "run", "seed", *names, *keys]):
        for _, r in old.iterrows():
            done[(int(r.wave), int(r.run))] = r.to_dict()

    def matches(row: pd.Series) -> bool:
        prev = done.get((int(row.wave), int(row.run)))
        return (
            prev is not None
            and int(prev["seed"]) == int(row.seed)
            and np.allclose([prev[n] for n in names], [row[n] for n in names], rtol=1e-12)
        )

    rows: list[dict] = []
    todo: list[pd.Series] = []
    for _, row in design.iterrows():
        if matches(row):
            prev = done[(int(row.wave), int(row.run))]
            rows.append({**row.to_dict(), **{k: prev[k] for k in keys}})
        else:
            todo.append(row)
    wave = int(design["wave"].iloc[0])
    if rows:
        say(f"wave {wave}: {len(rows)} run(s) reused from {path.name}")
    kept = [r for k, r in done.items() if k[0] != wave]
    sim = Simulator.from_calibration(calibration)
    bar = tqdm(
        total=len(todo),
        unit="run",
        desc=f"wave {wave}",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None if progress is None else not progress,
    )
    with bar:
        for a in range(0, len(todo), CHUNK):
            part = todo[a : a + CHUNK]
            values = map_in_order(
                sim,
                [({n: float(r[n]) for n in names}, int(r.seed)) for r in part],
                executor=executor,
                on_done=bar.update,
            )
            rows += [{**r.to_dict(), **v} for r, v in zip(part, values, strict=True)]
            write_csv(_design_table(kept + rows), path)
    write_csv(_design_table(kept + rows), path)
    result = _design_table(rows)
    for k in keys:
        result[k] = result[k].astype(float)
    return result


def _design_table(rows: list[dict]) -> pd.DataFrame:
    """Design rows in (wave, run) order, with wave, run and seed as integers."""
    table = pd.DataFrame(rows)
    for c in ("wave", "run", "seed"):
        table[c] = table[c].astype("int64")
    return table.sort_values(["wave", "run"]).reset_index(drop=True)
