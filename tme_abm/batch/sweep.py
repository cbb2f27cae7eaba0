"""Running a sweep: every planned run through an Executor, into one folder.

``DIR/runs/<run id>.h5`` holds each run, ``DIR/summary.csv`` one row per run
(parameters, seed, status, key outputs), ``DIR/sweep.log`` plain progress
lines, and ``DIR/sweep.toml`` a copy of the sweep file.  Running the same
sweep again skips runs whose complete file matches (same scenario text, seed
and overrides), resumes interrupted ones from their checkpoints (``resumed``
in the summary) and retries the others; a failing run records its error and
does not stop the sweep.  A sweep with a ``[parent]`` forks every run from
one pre-grown run's checkpoint (:mod:`tme_abm.restart`).  Nothing is ever
overwritten: a folder that holds another sweep's results is refused before
any run, one sweep at a time may write into a folder
(:mod:`tme_abm.batch.guard`), and pool workers die with the sweep process.
Results do not depend on the executor or the number of workers: every run
is a pure function of its scenario, overrides and seed.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import shutil
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import h5py
import numba
from tqdm import tqdm

from tme_abm.analysis.spatial import SNAPSHOT_METRICS, run_metrics
from tme_abm.batch import DONE_STATUSES
from tme_abm.batch.guard import FolderLock, bind_worker_to_parent
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


def _scenario_text(spec: RunSpec) -> str | None:
    """The scenario text a run file of ``spec`` records (None if it cannot be read)."""
    from tme_abm.scenario import ScenarioError
    from tme_abm.scenario.load import composed_text, read_composed

    try:
        return composed_text(read_composed(spec.scenario)[1])
    except ScenarioError:
        return None


def _run_file_state(path: Path, spec: RunSpec, text: str | None) -> str:
    """What ``path`` holds for ``spec``: "missing", "done" (a complete run of
    this very scenario text, seed and overrides), or why it is another run."""
    if not path.exists():
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            if int(a.get("complete", 0)) != 1:
                return "an incomplete run file"
            if int(a.get("seed", -1)) != spec.seed:
                return f"a run with seed {int(a.get('seed', -1))}, not {spec.seed}"
            if str(a.get("overrides", "")) != "\n".join(spec.overrides):
                return "a run with other overrides"
            if text is not None and str(a.get("scenario", "")) != text:
                return "a run of another scenario text (the scenario file changed since)"
            if spec.parent is not None:
                import json

                parent = json.loads(str(a.get("parent_run", "{}")) or "{}")
                if parent.get("file") != str(spec.parent):
                    return "a run from another parent run (or none)"
            elif "parent_run" in a:
                return "a fork of another run, not a run from day 0"
            return "done"
    except (OSError, ValueError, TypeError) as exc:
        return f"a file that cannot be read as a run file ({type(exc).__name__})"


def _resumed(partial: Path, loaded, spec: RunSpec) -> bool:
    """Complete an interrupted attempt at ``spec`` from its checkpoint; False
    (and the attempt removed) if there is none or it cannot be resumed."""
    if not partial.exists():
        return False
    from tme_abm.restart import RestartError, resume_run

    try:
        resume_run(partial, expect=None if spec.parent is not None else loaded,
                   expect_seed=spec.seed, progress=False)
        return True
    except RestartError:
        partial.unlink(missing_ok=True)
        return False


def run_one(spec: RunSpec, runs_dir: str) -> dict[str, Any]:
    """Run (or reuse) one planned run; never raises: failures become rows.

    A top-level function so that process pools and Dask can ship it.  In a
    worker process (one per core) the numba kernels get one thread: with two
    threads per worker the workers oversubscribe the cores, and a parallel
    region that waits for a descheduled thread ran ~3x slower (measured on 2
    cores with the other core busy).  ``row["threads"]`` records the count.
    A run file that holds another run is never replaced: the row fails.
    """
    from tme_abm.io import partial_path_for
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
        loaded = load_scenario(spec.scenario, spec.overrides)
        state = _run_file_state(path, spec, loaded.text)
        if state == "done":
            row["status"] = "reused"
        elif state == "missing":
            # a leftover .partial is this run slot's own interrupted attempt:
            # continue it from its checkpoint, or start it again if it cannot be
            if _resumed(partial_path_for(path), loaded, spec):
                row["status"] = "resumed"
            elif spec.parent is not None:
                from tme_abm.restart import fork_run

                fork_run(spec.parent, spec.parent_day, path, scenario=spec.scenario,
                         overrides=spec.overrides, seed=spec.seed, progress=False,
                         start_therapies_at_fork=spec.treat_from_fork)
                row["status"] = "ok"
            else:
                run_scenario(loaded, path, seed=spec.seed, force=False, progress=False)
                row["status"] = "ok"
        else:
            raise FileExistsError(f"{path} holds {state}; it is left as it is")
        row.update(outputs_of(path))
    except Exception as exc:  # recorded in the summary, the sweep goes on
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " | ")[:2000]
        row["traceback"] = traceback.format_exc()
    row["wall_s"] = round(time.perf_counter() - start, 3)
    return row


class SweepConflictError(ValueError):
    """The sweep folder holds results that this sweep would overwrite or drop."""

    def __init__(self, folder: Path, problems: list[str]) -> None:
        self.folder = folder
        self.problems = problems
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10
                                 else [])
        super().__init__(
            f"{folder} holds results of another sweep, which this one would overwrite or "
            "drop; nothing was run. Give this sweep another --out folder (or name), or move "
            "the old results away:\n" + "\n".join(f"  {p}" for p in shown)
        )


def _conflicts(sweep_path: Path, out: Path, specs: list[RunSpec]) -> list[str]:
    """Results in ``out`` that running ``specs`` would overwrite or drop."""
    problems = []
    copy = out / "sweep.toml"
    if copy.is_file() and sweep_path.resolve() != copy.resolve():
        try:
            same = tomllib.loads(copy.read_text(encoding="utf-8")) == tomllib.loads(
                sweep_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            same = False
        if not same:
            problems.append(f"{copy} is a different sweep file than {sweep_path}")
    planned = {s.run_id for s in specs}
    summary = out / "summary.csv"
    if summary.is_file():
        with summary.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                done = row.get("status") in DONE_STATUSES
                if row.get("run_id") not in planned and done:
                    problems.append(f"summary.csv lists run {row.get('run_id')}, which this "
                                    "sweep does not plan")
    texts: dict[Path, str | None] = {}
    for spec in specs:
        path = out / "runs" / f"{spec.run_id}.h5"
        if not path.exists():
            continue
        if spec.scenario not in texts:
            texts[spec.scenario] = _scenario_text(spec)
        state = _run_file_state(path, spec, texts[spec.scenario])
        if state not in ("done", "missing"):
            problems.append(f"runs/{path.name} holds {state}")
    return problems


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
            row = {"run_id": s.run_id, "scenario": s.label or s.scenario.stem, "point": s.point,
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
    tme_abm.batch.guard.FolderBusyError
        If another live sweep (or its workers) is writing into the folder.
    SweepConflictError
        If the folder holds results of another sweep (a different sweep file,
        or run files of other seeds, overrides or scenario text) that this one
        would overwrite or drop from its summary; nothing is run or written.
    """
    sweep, specs = parse_sweep_file(sweep_path)
    out = Path(out_dir) if out_dir is not None else Path("output") / "sweeps" / sweep.name
    with FolderLock(out):
        return _run_locked(Path(sweep_path), out, sweep.name, specs, workers=workers,
                           executor=executor, progress=progress, log=log)


def _run_locked(
    sweep_path: Path,
    out: Path,
    name: str,
    specs: list[RunSpec],
    *,
    workers: int,
    executor: Executor | None,
    progress: bool | None,
    log: Callable[[str], None] | None,
) -> tuple[dict[str, dict[str, Any]], Path]:
    problems = _conflicts(sweep_path, out, specs)
    if problems:
        raise SweepConflictError(out, problems)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    if sweep_path.resolve() != (out / "sweep.toml").resolve():
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

        say(f"sweep {name}: {len(specs)} runs, {workers} worker(s), into {out}")
        bar = tqdm(total=len(specs), unit="run", file=sys.stderr, dynamic_ncols=True,
                   disable=None if progress is None else not progress, desc=name)

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
                pool = executor or ProcessPoolExecutor(
                    max_workers=workers, initializer=bind_worker_to_parent,
                    initargs=(os.getpid(), str(out)),
                )
                finished = False
                try:
                    futures = {pool.submit(run_one, s, str(runs_dir)): s for s in specs}
                    for fut in as_completed(futures):
                        record(fut.result())
                    finished = True
                finally:
                    if executor is None:
                        # interrupted: drop the queued runs instead of running them all
                        pool.shutdown(wait=True, cancel_futures=not finished)
        failed = sum(r["status"] == "failed" for r in rows.values())
        say(f"done: {len(rows) - failed} ok, {failed} failed; summary in {summary}")
    return rows, out


