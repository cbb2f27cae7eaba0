"""Running a sweep: every planned run through an Executor, into one folder.

``DIR/runs/<run id>.h5`` holds each run, ``DIR/summary.csv`` one row per run
(parameters, seed, status, key outputs), ``DIR/sweep.log`` plain progress
lines, and ``DIR/sweep.toml`` a copy of the sweep file.  Running the same
sweep again skips runs whose complete file matches (same seed and
overrides) and retries the others; a failing run records its error and does
not stop the sweep.  Results do not depend on the executor or the number of
workers: every run is a pure function of its scenario, overrides and seed.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import h5py
import numba
from tqdm import tqdm

from tme_abm.analysis.spatial import SNAPSHOT_METRICS, run_metrics
from tme_abm.batch.plan import RunSpec, parse_sweep_file

#: Key outputs in the summary: first from each run file's time series (last
#: tick), then the spatial metrics of its last snapshot
#: (:data:`tme_abm.analysis.SNAPSHOT_METRICS`, default margin of 100 µm).
TIMESERIES_OUTPUTS = (
    "final_tumour", "final_cd8", "final_treg", "cd8_treg_ratio", "tumour_stat3_mean"
)
OUTPUTS = (*TIMESERIES_OUTPUTS, *SNAPSHOT_METRICS)


def outputs_of(path: str | Path) -> dict[str, float]:
    """The key outputs of one run file (:data:`OUTPUTS`, in that order).

    The time-series outputs are taken at the last tick; the spatial ones
    (:func:`tme_abm.analysis.run_metrics`) on the last complete snapshot, NaN
    when the file holds none.
    """
    return {**_timeseries_outputs(path), **run_metrics(path)}


def _timeseries_outputs(path: str | Path) -> dict[str, float]:
    with h5py.File(path, "r") as f:
        ts = f["timeseries"]

        def last(name: str) -> float:
            return float(ts[name][-1]) if name in ts else math.nan

        tumour, cd8, treg = last("count_tumour"), last("count_cd8"), last("count_treg")
        return {
            "final_tumour": tumour,
            "final_cd8": cd8,
            "final_treg": treg,
            "cd8_treg_ratio": cd8 / treg if treg and treg > 0 else math.nan,
            "tumour_stat3_mean": last("stat3_mean_tumour"),
        }


def _is_done(path: Path, spec: RunSpec) -> bool:
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            return (
                int(a.get("complete", 0)) == 1
                and int(a.get("seed", -1)) == spec.seed
                and str(a.get("overrides", "")) == "\n".join(spec.overrides)
            )
    except (OSError, ValueError, TypeError):
        return False


def run_one(spec: RunSpec, runs_dir: str) -> dict[str, Any]:
    """Run (or reuse) one planned run; never raises: failures become rows.

    A top-level function so that process pools and Dask can ship it.  In a
    worker process (one per core) the numba kernels get one thread: with two
    threads per worker the workers oversubscribe the cores, and a parallel
    region that waits for a descheduled thread ran ~3x slower (measured on 2
    cores with the other core busy).  ``row["threads"]`` records the count.
    """
    from tme_abm.runner import run_scenario
    from tme_abm.scenario import load_scenario

    if multiprocessing.parent_process() is not None:
        numba.set_num_threads(1)

    path = Path(runs_dir) / f"{spec.run_id}.h5"
    row: dict[str, Any] = {
        "run_id": spec.run_id, "file": str(path), "error": "",
        "threads": numba.get_num_threads(),
    }
    start = time.perf_counter()
    try:
        if _is_done(path, spec):
            row["status"] = "reused"
        else:
            loaded = load_scenario(spec.scenario, spec.overrides)
            run_scenario(loaded, path, seed=spec.seed, force=True, progress=False)
            row["status"] = "ok"
        row.update(outputs_of(path))
    except Exception as exc:  # recorded in the summary, the sweep goes on
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " | ")[:2000]
        row["traceback"] = traceback.format_exc()
    row["wall_s"] = round(time.perf_counter() - start, 3)
    return row


def _columns(params: Iterable[str]) -> list[str]:
    return ["run_id", "scenario", "point", "replicate", "seed", *params, "status",
            *OUTPUTS, "wall_s", "error", "file"]


def write_summary(path: Path, specs: list[RunSpec], rows: dict[str, dict[str, Any]]) -> None:
    """Write the summary table atomically (one row per planned run, in plan order)."""
    params = list(dict.fromkeys(k for s in specs for k in s.params))
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=_columns(params), extrasaction="ignore")
        w.writeheader()
        for s in specs:
            row = {"run_id": s.run_id, "scenario": s.scenario.stem, "point": s.point,
                   "replicate": s.replicate, "seed": s.seed, **s.params,
                   "status": "pending", **rows.get(s.run_id, {})}
            w.writerow(row)
    os.replace(tmp, path)


def run_sweep(
    sweep_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    workers: int = 1,
    executor: Executor | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], Path]:
    """Run every planned run of a sweep file; return (rows by run id, folder).

    Parameters
    ----------
    sweep_path
        The sweep TOML file.
    out_dir
        Folder of the sweep (default ``output/sweeps/<name>``).
    workers
        Processes of the default pool (1: run in this process).
    executor
        Any :class:`concurrent.futures.Executor` (e.g. a Dask client's); its
        results are identical to the default pool's.
    progress
        tqdm bar on stderr (None: only on a terminal).

    Raises
    ------
    tme_abm.scenario.ScenarioError
        If the sweep file or a scenario it names is invalid (before any run).
    """
    sweep, specs = parse_sweep_file(sweep_path)
    out = Path(out_dir) if out_dir is not None else Path("output") / "sweeps" / sweep.name
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    if Path(sweep_path).resolve() != (out / "sweep.toml").resolve():
        shutil.copyfile(sweep_path, out / "sweep.toml")
    rows: dict[str, dict[str, Any]] = {}
    summary = out / "summary.csv"
    log_path = out / "sweep.log"
    write_summary(summary, specs, rows)

    with log_path.open("a", encoding="utf-8") as log_file:

        def say(line: str) -> None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"{stamp} {line}\n")
            log_file.flush()
            if log is not None:
                log(line)

        say(f"sweep {sweep.name}: {len(specs)} runs, {workers} worker(s), into {out}")
        bar = tqdm(total=len(specs), unit="run", file=sys.stderr, dynamic_ncols=True,
                   disable=None if progress is None else not progress, desc=sweep.name)

        def record(row: dict[str, Any]) -> None:
            rows[row["run_id"]] = row
            write_summary(summary, specs, rows)
            say(f"{row['run_id']}: {row['status']}"
                + (f" ({row['error']})" if row["status"] == "failed" else
                   f" tumour {row.get('final_tumour', math.nan):g}"))
            bar.update(1)

        with bar:
            if executor is None and workers <= 1:
                for spec in specs:
                    record(run_one(spec, str(runs_dir)))
            else:
                pool = executor or ProcessPoolExecutor(max_workers=workers)
                try:
                    futures = {pool.submit(run_one, s, str(runs_dir)): s for s in specs}
                    for fut in as_completed(futures):
                        record(fut.result())
                finally:
                    if executor is None:
                        pool.shutdown()
        failed = sum(r["status"] == "failed" for r in rows.values())
        say(f"done: {len(rows) - failed} ok, {failed} failed; summary in {summary}")
    return rows, out


