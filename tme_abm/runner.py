"""Run a scenario to completion and record it in a run file.

This is the piece between the model and the file: it decides when to take
snapshots (tick 0, every ``output.snapshot_every_min``, and the last tick),
records the model-level series every tick (straight to the run file: the
model keeps none of them in memory, so a long run's memory stays flat), and
commits a restart checkpoint with each snapshot (keeping a copy at the
snapshots nearest ``output.checkpoint_days``). :func:`advance` is the loop
shared with resumed and forked runs (:mod:`tme_abm.restart`).
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tme_abm.core.cells import CELL_COLUMNS
from tme_abm.io import RunLayout, RunWriter
from tme_abm.model import TMEModel
from tme_abm.scenario import LoadedScenario

_SERIES_UNITS = {"count": "cells", "stat3_mean": "1", "field_mean": "ng/mL"}


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced."""

    path: Path
    seconds: float
    ticks: int
    snapshots: int
    final: dict[str, float]

    @classmethod
    def of(cls, model: TMEModel, path: Path, started: float, snapshots: int) -> RunResult:
        """The result of a run that ended with ``model`` in ``path``; ``started``
        is its ``time.perf_counter()`` at the start."""
        return cls(path=path, seconds=time.perf_counter() - started, ticks=model.n_ticks,
                   snapshots=snapshots, final=dict(model.summary()))


def _series_meta(name: str, fields_units: dict[str, str]) -> tuple[str, str, str]:
    for prefix, units in _SERIES_UNITS.items():
        if name.startswith(prefix + "_"):
            what = name[len(prefix) + 1 :]
            if prefix == "field_mean":
                return name, fields_units.get(what, units), f"mean concentration of {what}"
            if prefix == "count":
                return name, units, f"number of {what} cells"
            return name, units, f"mean STAT3 activation of {what} cells"
    event, _, cell_type = name.partition("_")
    return name, "cells/tick", f"{event} of {cell_type} cells during the tick"


def run_layout(model: TMEModel) -> RunLayout:
    """The run-file layout of a model."""
    sc, p = model.scenario, model.params
    saved = sc.output.fields if sc.output.fields is not None else list(sc.fields)
    units = {name: f.units for name, f in sc.fields.items()}
    attrs = {
        "seed": model.seed,
        "scenario_name": sc.name,
        "scenario_description": sc.description,
        "scenario": model.loaded.text,
        "scenario_path": str(model.loaded.path or ""),
        "overrides": "\n".join(model.loaded.overrides),
        "scenario_resolved_json": sc.model_dump_json(),
        "dt_min": p.dt_min,
        "n_ticks": p.n_ticks,
        "snapshot_every_min": sc.output.snapshot_every_min,
        "cell_type_colours": " ".join(ct.colour for ct in sc.cell_types.values()),
        "cell_type_labels": "|".join(ct.label or name for name, ct in sc.cell_types.items()),
    }
    if sc.tissue is not None:
        from tme_abm.scenario.tissue import placed_tissue

        attrs["tissue_file"] = sc.tissue.file
        attrs["tissue_sha256"] = sc.tissue.sha256 or ""
        attrs["tissue_report"] = json.dumps(placed_tissue(sc).report.to_dict())
    return RunLayout(
        shape=tuple(sc.domain.shape),
        site_um=sc.domain.site_um,
        field_names=tuple(saved),
        field_units=tuple(units[f] for f in saved),
        field_long_names=tuple(sc.fields[f].label or f for f in saved),
        cell_type_names=tuple(sc.cell_types),
        cell_columns=CELL_COLUMNS if sc.output.cells else (),
        timeseries=tuple(_series_meta(n, units) for n in model.series_names()),
        attrs=attrs,
    )


def snapshot_every(model: TMEModel) -> int:
    """Ticks between snapshots (``output.snapshot_every_min`` in ticks, at least 1)."""
    return max(1, round(model.scenario.output.snapshot_every_min / model.params.dt_min))


def is_snapshot_tick(tick: int, every: int, n_ticks: int) -> bool:
    """Whether a run takes a snapshot after ``tick`` (tick 0, every ``every``, the last)."""
    return tick % every == 0 or tick == n_ticks


def kept_checkpoint_ticks(model: TMEModel) -> frozenset[int]:
    """Snapshot ticks whose checkpoint is kept: for each of
    ``output.checkpoint_days``, the snapshot nearest that day (the earlier
    one on a tie)."""
    every, n = snapshot_every(model), model.n_ticks
    out = set()
    for day in model.scenario.output.checkpoint_days:
        tick = min(n, max(0, round(day * 1440.0 / model.params.dt_min)))
        lo = (tick // every) * every
        hi = min(lo + every, n)
        out.add(lo if tick - lo <= hi - tick else hi)
    return frozenset(out)


def _snapshot(writer: RunWriter, model: TMEModel, layout: RunLayout, keep: bool = False) -> None:
    """Write the model's current state as a snapshot, with its checkpoint."""
    e = model.engine
    index = {f: i for i, f in enumerate(model.params.field_names)}
    fields = {f: e.field_grid(index[f]) for f in layout.field_names}
    cells = e.cells.columns() if layout.cell_columns else {}
    arrays, scalars = e.checkpoint()
    writer.write_snapshot(
        e.time_min, e.cell_type_grid(), fields, cells,
        checkpoint=(arrays, {**scalars, "time_min": e.time_min, "seed": model.seed}),
        keep_checkpoint=keep,
    )


class _InterruptAtTickEnd:
    """Turn Ctrl-C (SIGINT) into a KeyboardInterrupt raised between ticks.

    Python raises KeyboardInterrupt at whatever bytecode runs next, and when
    that is a weakref callback (h5py frees objects through them) the
    exception is printed as "ignored" and lost: the run went on to the end
    (seen twice in a row on the 7-day baseline). The first Ctrl-C now only
    sets a flag that the tick loop checks; a second one interrupts at once.
    Outside the main thread (a worker's thread) nothing is installed.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _InterruptAtTickEnd:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed since the last check."""
        if self.requested:
            raise KeyboardInterrupt


def advance(
    model: TMEModel,
    writer: RunWriter,
    *,
    progress: bool | None = True,
    on_tick: Callable[[TMEModel], None] | None = None,
) -> int:
    """Step ``model`` to the end of its run, writing every tick's series and
    each due snapshot (with its checkpoint) to ``writer``.

    The model may start at any tick (a resumed or forked run): snapshots
    fall on the same ticks as in a run from the start.

    Returns
    -------
    int
        Snapshots written.
    """
    layout = writer.layout
    every = snapshot_every(model)
    keep = kept_checkpoint_ticks(model)
    n_ticks = model.n_ticks
    snapshots = 0
    days = n_ticks * model.params.dt_min / 1440.0
    bar = tqdm(
        total=n_ticks, initial=model.engine.tick,
        disable=None if progress is None else not progress,
        unit="tick", file=sys.stderr, dynamic_ncols=True,
        desc=f"{model.scenario.name} ({days:g} d)",
    )
    with bar, _InterruptAtTickEnd() as interrupt:
        while model.running:
            interrupt.check()
            model.step()
            writer.append_timeseries(model.time_min, model.summary())
            tick = model.engine.tick
            if is_snapshot_tick(tick, every, n_ticks):
                _snapshot(writer, model, layout, keep=tick in keep)
                snapshots += 1
                s = model.summary()
                bar.set_postfix(
                    tumour=s.get("count_tumour", math.nan),
                    cells=model.engine.cells.n,
                    refresh=False,
                )
            bar.update(1)
            if on_tick is not None:
                on_tick(model)
    return snapshots


def run_scenario(
    loaded: LoadedScenario,
    out: str | Path,
    *,
    seed: int | None = None,
    force: bool = False,
    progress: bool | None = True,
    on_tick: Callable[[TMEModel], None] | None = None,
) -> RunResult:
    """Run a scenario from start to end, writing ``out``.

    Parameters
    ----------
    loaded
        A validated scenario.
    out
        Run-file path; written as ``out.partial`` and renamed when complete.
    seed
        Overrides the scenario's seed.
    force
        Replace an existing ``out`` (only once the new run is complete).
    progress
        Show a tqdm bar on stderr (None: only when stderr is a terminal).
    on_tick
        Called with the model after every tick, once that tick's series (and
        snapshot, if one is due) have been handed to the writer; the memory
        benchmark samples resident memory here.

    Raises
    ------
    tme_abm.io.RunExistsError
        If ``out`` exists and ``force`` is false (before any work is done).
    """
    start = time.perf_counter()
    out = Path(out)
    # the series go to the file as they are made: keeping them in the model's
    # DataCollector too would grow memory by ~1.5 KB a tick for nothing
    model = TMEModel(loaded, seed=seed, series_rows=0)
    layout = run_layout(model)
    with RunWriter(
        out, layout, force=force, compression_level=loaded.scenario.output.compression_level
    ) as writer:
        writer.append_timeseries(model.time_min, model.summary())
        _snapshot(writer, model, layout, keep=0 in kept_checkpoint_ticks(model))
        snapshots = 1 + advance(model, writer, progress=progress, on_tick=on_tick)
        path = writer.close()
    return RunResult.of(model, path, start, snapshots)
