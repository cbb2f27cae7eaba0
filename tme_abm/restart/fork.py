"""``tme-abm fork``: a new run that starts from a checkpoint of an existing run.

A fork may change what happens from its start on (therapies that begin then
or later, rates, the seed, the duration) but not what the state *is*: the
lattice, the time step, the cell types, the fields and what the run file
records must stay the parent's, and every therapy that differs from the
parent's must begin at or after the fork. Breaking a rule is a
:class:`ForkError` naming the key. The new file holds the parent's history
up to the fork (snapshots, series, kept checkpoints), so it reads as one
time course, and records its parent (path, SHA-256, day, seed) and the whole
chain of forks above it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tme_abm.io import RunWriter
from tme_abm.io.checkpoints import (
    CheckpointError,
    CheckpointInfo,
    checkpoint_candidates,
    read_checkpoint_group,
)
from tme_abm.model import TMEModel
from tme_abm.restart.source import (
    ForkError,
    RunRecord,
    check_format,
    file_sha256,
    read_record,
    text,
)
from tme_abm.runner import (
    RunResult,
    _snapshot,
    advance,
    kept_checkpoint_ticks,
    run_layout,
)
from tme_abm.scenario import LoadedScenario, Scenario, ScenarioError

#: Root attributes copied from the parent: the cell table the state descends from.
_INHERITED_ATTRS = ("tissue_file", "tissue_sha256", "tissue_report")


@dataclass
class ForkPlan:
    """A model restored at a parent's checkpoint, ready to continue.

    Attributes
    ----------
    model
        The model at the fork's tick (``model.loaded`` is the fork's scenario).
    parent
        The parent's run file.
    record
        The parent's provenance.
    checkpoint
        Which of the parent's checkpoints it starts from.
    snapshot
        Index of the parent's snapshot at that checkpoint.
    therapy_shift_days
        How far the fork's new therapies were moved (``start_therapies_at_fork``).
    """

    model: TMEModel
    parent: Path
    record: RunRecord
    checkpoint: CheckpointInfo
    snapshot: int
    #: days by which the fork's new therapies were moved to start at the fork
    therapy_shift_days: float = 0.0

    @property
    def time_min(self) -> float:
        """Simulated time of the fork (minutes)."""
        return self.checkpoint.time_min


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise ForkError(f"{path}: no such run file")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise ForkError(f"{path} cannot be read as a run file ({exc})") from None


def _forkable(f: h5py.File) -> list[tuple[CheckpointInfo, int]]:
    """Checkpoints of complete snapshots, with their snapshot index, earliest first."""
    times = f["time"][:] if "time" in f else np.zeros(0)
    out: dict[int, tuple[CheckpointInfo, int]] = {}
    for info in checkpoint_candidates(f):
        hits = np.flatnonzero(times == info.time_min)
        if len(hits) and info.tick not in out:
            out[info.tick] = (info, int(hits[0]))
    return [out[t] for t in sorted(out)]


def forkable_days(path: str | Path) -> list[float]:
    """The days a run file can be forked at (its checkpoints at complete snapshots).

    Raises
    ------
    ForkError
        If the file cannot be read as a run file.
    """
    p = Path(path)
    with _open(p) as f:
        check_format(f, p)
        return [info.day for info, _ in _forkable(f)]


def _choose(f: h5py.File, path: Path, day: float | None) -> tuple[CheckpointInfo, int]:
    found = _forkable(f)
    days = ", ".join(f"{info.day:g}" for info, _ in found) or "none"
    if not found:
        raise ForkError(f"{path} holds no checkpoint to fork from")
    if day is None:
        return found[-1]
    times = f["time"][:]
    nearest = int(np.argmin(np.abs(times - float(day) * 1440.0)))
    for info, index in found:
        if index == nearest:
            return info, index
    raise ForkError(
        f"--day {day:g}: the nearest snapshot (day {times[nearest] / 1440.0:g}) has no "
        f"checkpoint; {path} can be forked at day {days}. To fork elsewhere, keep "
        "checkpoints when running the parent: --set output.checkpoint_days=[...]"
    )


def _therapy_start_day(th: Any) -> float:
    for key in ("start_day", "first_dose_day", "day"):
        if hasattr(th, key):
            return float(getattr(th, key))
    return 0.0


def _fork_problems(parent: Scenario, fork: Scenario, time_min: float) -> list[tuple[str, str]]:
    """What a fork at ``time_min`` may not change, where it changes it."""
    problems: list[tuple[str, str]] = []
    day = time_min / 1440.0
    for key in ("shape", "site_um", "dt_min"):
        a, b = getattr(parent.domain, key), getattr(fork.domain, key)
        if a != b:
            problems.append((f"domain.{key}", f"is {b!r}, the parent's is {a!r}; a fork "
                             "continues the parent's lattice and time step"))
    if list(parent.cell_types) != list(fork.cell_types):
        problems.append(("cell_types", f"are {list(fork.cell_types)}, the parent's "
                         f"{list(parent.cell_types)} (same names in the same order)"))
    if list(parent.fields) != list(fork.fields):
        problems.append(("fields", f"are {list(fork.fields)}, the parent's "
                         f"{list(parent.fields)} (same names in the same order)"))
    for key in ("fields", "cells"):
        a, b = getattr(parent.output, key), getattr(fork.output, key)
        if a != b:
            problems.append((f"output.{key}", f"is {b!r}, the parent's is {a!r}; the fork's "
                             "file holds the parent's history, so it records the same things"))
    if fork.n_ticks * fork.domain.dt_min <= time_min:
        problems.append(("domain.duration_days", f"{fork.domain.duration_days:g} days ends "
                         f"at or before the fork (day {day:g})"))
    for k, th in enumerate(fork.therapy):
        if th in parent.therapy:
            continue
        start = _therapy_start_day(th)
        if start * 1440.0 < time_min - 1e-9:
            problems.append((f"therapy.{k}", f"{th.kind} starts at day {start:g}, before the "
                             f"fork (day {day:g}), and differs from the parent's therapies; a "
                             f"fork can only change what happens from day {day:g} on"))
    return problems


#: Keys of a therapy that hold days, moved together by ``start_therapies_at_fork``.
_THERAPY_DAY_KEYS = ("start_day", "end_day", "first_dose_day", "day")


def _shift_new_therapies(
    data: dict[str, Any], sc: Scenario, parent: Scenario, day: float
) -> tuple[dict[str, Any], float]:
    """Move the therapies ``sc`` adds to ``parent`` so that the earliest starts
    on ``day``, keeping their schedule relative to each other; returns the
    new raw data and the shift in days (0: nothing started earlier)."""
    new = [k for k, th in enumerate(sc.therapy) if th not in parent.therapy]
    if not new:
        return data, 0.0
    shift = day - min(_therapy_start_day(sc.therapy[k]) for k in new)
    if shift <= 0:
        return data, 0.0
    out = json.loads(json.dumps(data))
    for k in new:
        entry = out["therapy"][k]
        for key in _THERAPY_DAY_KEYS:
            value = getattr(sc.therapy[k], key, None)
            if value is not None:
                entry[key] = float(value) + shift
    return out, shift


def _fork_scenario(
    record: RunRecord,
    scenario: str | Path | None,
    overrides: tuple[str, ...],
    has_vessel_sites: bool,
    start_therapies_at: float | None = None,
) -> tuple[LoadedScenario, float]:
    """The fork's scenario: a file, or the parent's; then the overrides; then,
    with ``start_therapies_at`` (a day), its new therapies moved to start then.
    Returns the scenario and that move in days."""
    from tme_abm.scenario.load import (
        apply_overrides,
        composed_text,
        nesting_problems,
        read_composed,
        validate_data,
    )

    if scenario is not None:
        from tme_abm.scenario.library import resolve

        path = resolve(scenario)
        data, sources = read_composed(path)
        body, folder, all_overrides = composed_text(sources), Path(path).resolve().parent, ()
        source = str(path)
        where: Path | None = Path(path)
    else:
        data = json.loads(record.resolved_json)
        body, folder, all_overrides = record.scenario_text, None, record.overrides
        source = f"{record.path} (its recorded scenario)"
        where = Path(record.scenario_path) if record.scenario_path else None
    problems = apply_overrides(data, overrides) or nesting_problems(data)
    if problems:
        raise ScenarioError(source, problems)
    if has_vessel_sites:
        data.pop("tissue", None)  # sets only the initial state, which the checkpoint replaces
    sc = validate_data(data, source, folder)
    shift = 0.0
    if start_therapies_at is not None:
        data, shift = _shift_new_therapies(data, sc, record.scenario(), start_therapies_at)
        if shift:
            sc = validate_data(data, source, folder)
    return LoadedScenario(sc, body, where, (*all_overrides, *overrides)), shift


def fork_model(
    path: str | Path,
    day: float | None = None,
    *,
    scenario: str | Path | None = None,
    overrides: Iterable[str] = (),
    seed: int | None = None,
    series_rows: int | None = None,
    start_therapies_at_fork: bool = False,
) -> ForkPlan:
    """Restore a model at a run file's checkpoint, with the fork's changes applied.

    Parameters
    ----------
    path
        The parent run file (complete or ``.partial``).
    day
        Fork at the snapshot nearest this day, which must have a checkpoint
        (the last snapshot always has; others if the parent kept them with
        ``output.checkpoint_days``). None: the latest checkpoint.
    scenario
        A scenario file (or shipped name) to continue with; default the
        parent's recorded scenario.
    overrides
        ``dotted.key=value`` strings applied to that scenario.
    seed
        The seed from the fork on (default: the parent's).
    series_rows
        As for :class:`TMEModel`.
    start_therapies_at_fork
        Move the therapies the scenario adds to the parent's so that the
        earliest of them starts at the fork (the others keep their delays
        after it): "treat from day D" with a scenario written to treat from
        day 0 or 1. Without it such therapies are refused.

    Raises
    ------
    ForkError
        If the file cannot be forked there or the changes are not allowed.
    tme_abm.scenario.ScenarioError
        If the scenario or an override is invalid.
    """
    parent = Path(path)
    record, info, index, loaded, shift, checkpoint = _prepare(
        parent, day, scenario, tuple(overrides), start_therapies_at_fork, read_arrays=True
    )
    assert checkpoint is not None
    arrays, attrs = checkpoint
    model = TMEModel(loaded, seed=record.seed if seed is None else int(seed),
                     series_rows=series_rows)
    try:
        model.restore_checkpoint(arrays, attrs)
    except ValueError as exc:
        raise ForkError(f"{parent}: its checkpoint does not fit the fork's scenario ({exc})"
                        ) from None
    return ForkPlan(model, parent, record, info, index, shift)


def check_fork(
    path: str | Path,
    day: float | None = None,
    *,
    scenario: str | Path | None = None,
    overrides: Iterable[str] = (),
    start_therapies_at_fork: bool = False,
) -> None:
    """Make every check :func:`fork_model` makes, without building the model
    or reading the checkpoint's arrays (a sweep checks each of its arms).

    Raises
    ------
    ForkError, tme_abm.scenario.ScenarioError
        As :func:`fork_model` would.
    """
    _prepare(Path(path), day, scenario, tuple(overrides), start_therapies_at_fork,
             read_arrays=False)


def _prepare(
    parent: Path,
    day: float | None,
    scenario: str | Path | None,
    overrides: tuple[str, ...],
    start_therapies_at_fork: bool,
    *,
    read_arrays: bool,
) -> tuple[RunRecord, CheckpointInfo, int, LoadedScenario, float,
           tuple[dict[str, np.ndarray], dict[str, Any]] | None]:
    """The parent's record, the chosen checkpoint (and its arrays), and the
    fork's checked scenario with the therapy shift in days."""
    with _open(parent) as f:
        check_format(f, parent)
        record = read_record(f, parent)
        try:
            info, index = _choose(f, parent, day)
            has_vessel_sites = "vessel_sites" in f[info.name]
            checkpoint = read_checkpoint_group(f[info.name]) if read_arrays else None
        except CheckpointError as exc:
            raise ForkError(f"{parent}: {exc}") from None
        except (OSError, KeyError, RuntimeError) as exc:  # e.g. caught mid-write
            raise ForkError(f"{parent} cannot be read ({exc}); if a run is still writing "
                            "it, try again after its next snapshot") from None
    loaded, shift = _fork_scenario(
        record, scenario, overrides, has_vessel_sites,
        info.day if start_therapies_at_fork else None,
    )
    problems = _fork_problems(record.scenario(), loaded.scenario, info.time_min)
    if problems:
        raise ForkError("; ".join(f"{k}: {m}" for k, m in problems))
    return record, info, index, loaded, shift, checkpoint


def _parent_entry(plan: ForkPlan) -> dict[str, Any]:
    return {
        "file": str(plan.parent.resolve()),
        "sha256": file_sha256(plan.parent),
        "complete": plan.record.complete,
        "scenario_name": json.loads(plan.record.resolved_json).get("name", ""),
        "seed": plan.record.seed,
        "day": plan.time_min / 1440.0,
        "time_min": plan.time_min,
        "tick": plan.checkpoint.tick,
        "snapshot": plan.snapshot,
        "therapy_shift_days": plan.therapy_shift_days,
    }


def _copy_history(f: h5py.File, writer: RunWriter, plan: ForkPlan) -> None:
    """The parent's snapshots before the fork, its series up to the fork's tick,
    and its kept checkpoints there; then the fork's own first snapshot."""
    layout = writer.layout
    times = f["time"][: plan.snapshot + 1]
    row_size = f["cells/row_size"][: plan.snapshot + 1]
    offsets = np.concatenate([[0], np.cumsum(row_size)])
    ts = f["timeseries"]
    tick_time = ts["tick_time"][: plan.checkpoint.tick + 1]
    series = {name: ts[name][: plan.checkpoint.tick + 1] for name in layout.timeseries_names}
    kept = {info.time_min: info for info in checkpoint_candidates(f) if info.kept}
    done = 0

    def append_until(t: float) -> None:
        nonlocal done
        while done < len(tick_time) and tick_time[done] <= t:
            writer.append_timeseries(
                float(tick_time[done]), {k: float(v[done]) for k, v in series.items()}
            )
            done += 1

    for i in range(plan.snapshot):
        append_until(times[i])
        fields = {name: f["fields"][name][i] for name in layout.field_names}
        cells = {name: f["cells"][name][offsets[i] : offsets[i + 1]]
                 for name, _, _ in layout.cell_columns}
        checkpoint = None
        if float(times[i]) in kept:
            checkpoint = read_checkpoint_group(f[kept[float(times[i])].name])
        writer.write_snapshot(
            float(times[i]), f["lattice/cell_type"][i], fields, cells,
            checkpoint=checkpoint, keep_checkpoint=checkpoint is not None,
        )
    append_until(times[plan.snapshot])
    model = plan.model
    _snapshot(writer, model, layout, keep=model.engine.tick in kept_checkpoint_ticks(model))


def fork_run(
    path: str | Path,
    day: float | None,
    out: str | Path,
    *,
    scenario: str | Path | None = None,
    overrides: Iterable[str] = (),
    seed: int | None = None,
    force: bool = False,
    progress: bool | None = True,
    on_tick: Callable[[TMEModel], None] | None = None,
    start_therapies_at_fork: bool = False,
) -> RunResult:
    """Fork a run at a checkpoint and run the fork to its end into ``out``.

    Parameters are those of :func:`fork_model`, plus ``out`` (the new run
    file), ``force`` (replace an existing ``out`` once the fork completes),
    and ``progress``/``on_tick`` as for :func:`tme_abm.runner.run_scenario`.

    Returns
    -------
    RunResult
        ``snapshots`` counts every snapshot in the new file.

    Raises
    ------
    ForkError, tme_abm.scenario.ScenarioError, tme_abm.io.RunExistsError
        Before anything is written.
    """
    start = time.perf_counter()
    out = Path(out)
    parent = Path(path)
    if out.resolve() == parent.resolve() or out.resolve() == parent.resolve().with_name(
        parent.name.removesuffix(".partial")
    ):
        raise ForkError(f"--out {out} is the parent run itself; a fork writes a new file")
    plan = fork_model(parent, day, scenario=scenario, overrides=overrides, seed=seed,
                      series_rows=0, start_therapies_at_fork=start_therapies_at_fork)
    model = plan.model
    layout = run_layout(model)
    entry = _parent_entry(plan)
    parent_attrs = plan.record.attrs  # read with the checkpoint, no second open
    lineage = json.loads(text(parent_attrs.get("lineage", "[]")) or "[]")
    attrs = dict(layout.attrs)
    for key in _INHERITED_ATTRS:
        if key in parent_attrs:
            attrs.setdefault(key, text(parent_attrs[key]))
    attrs["parent_run"] = json.dumps(entry, sort_keys=True)
    attrs["lineage"] = json.dumps([*lineage, entry], sort_keys=True)
    layout = type(layout)(**{**layout.__dict__, "attrs": attrs})
    with RunWriter(
        out, layout, force=force, compression_level=model.scenario.output.compression_level
    ) as writer:
        with _open(parent) as f:
            _copy_history(f, writer, plan)
        snapshots = plan.snapshot + 1 + advance(model, writer, progress=progress,
                                                on_tick=on_tick)
        path_out = writer.close()
    return RunResult.of(model, path_out, start, snapshots)
