"""``tme-abm resume``: complete an interrupted run from its last checkpoint.

The finished file equals, dataset by dataset and in every attribute but the
wall-clock ones (``created``, ``finished``, ``resumed``, a checkpoint's
``written``), the file the uninterrupted run would have written: the engine
is deterministic given its state, and the checkpoint is the whole state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import h5py

from tme_abm.io import RunWriter, partial_path_for
from tme_abm.io.checkpoints import CheckpointError
from tme_abm.io.writer import PARTIAL_SUFFIX, ResumePoint, _utc_now
from tme_abm.model import TMEModel
from tme_abm.restart.source import (
    RestartError,
    check_format,
    engine_scenario,
    read_record,
    scenario_differences,
    text,
)
from tme_abm.runner import RunResult, advance, run_scenario
from tme_abm.scenario import LoadedScenario


def _paths(path: str | Path) -> tuple[Path, Path]:
    """``(partial, final)`` for a path given either way."""
    p = Path(path)
    if p.name.endswith(PARTIAL_SUFFIX):
        return p, p.with_name(p.name[: -len(PARTIAL_SUFFIX)])
    return partial_path_for(p), p


def _is_complete(partial: Path) -> bool:
    try:
        with h5py.File(partial, "r", locking=False) as f:
            return int(f.attrs.get("complete", 0)) == 1
    except (OSError, KeyError, ValueError):
        return False


def resume_run(
    path: str | Path,
    *,
    expect: LoadedScenario | None = None,
    expect_seed: int | None = None,
    progress: bool | None = True,
    on_tick: Callable[[TMEModel], None] | None = None,
) -> RunResult:
    """Continue an interrupted run from its last checkpoint and complete its file.

    Parameters
    ----------
    path
        The interrupted run's ``<name>.partial`` (or ``<name>``: its
        ``.partial`` is used).
    expect
        If given, the scenario the caller believes the run is of: it must
        validate to the run's recorded scenario, else nothing is changed.
    expect_seed
        If given, the seed the run must have.
    progress, on_tick
        As for :func:`tme_abm.runner.run_scenario`.

    Returns
    -------
    RunResult
        ``snapshots`` counts those written by this call.

    Raises
    ------
    RestartError
        If there is nothing to resume, the file is not a run file or is of a
        newer format, its checkpoint is damaged, or it does not match
        ``expect``; the file is left as it was.
    """
    start = time.perf_counter()
    partial, final = _paths(path)
    if not partial.exists():
        if final.exists():
            raise RestartError(f"{final} is already complete: there is nothing to resume")
        raise RestartError(f"{partial}: no such file (nothing to resume)")
    if final.exists():
        if _is_complete(partial):  # killed between writing the final file and cleaning up
            partial.unlink()
            raise RestartError(f"{final} is already complete: there is nothing to resume "
                               f"(removed the leftover {partial.name})")
        raise RestartError(
            f"both {final} and {partial} exist: the complete run would be replaced; move one "
            "of them away first"
        )
    try:
        f = h5py.File(partial, "r", locking=False)
    except OSError as exc:
        raise RestartError(
            f"{partial} cannot be opened ({exc}): the run was killed before its first flush "
            "and holds nothing; start it again with tme-abm run ... --force"
        ) from None
    try:
        check_format(f, partial)
        record = read_record(f, partial)
        n_snapshots = int(f["time"].shape[0]) if "time" in f else 0
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        if isinstance(exc, RestartError):
            raise
        raise RestartError(
            f"{partial} cannot be read ({exc}): the run was killed before its first flush "
            "and holds nothing; start it again with tme-abm run ... --force"
        ) from None
    finally:
        f.close()
    sc = record.scenario()
    if expect is not None:
        diff = scenario_differences(expect.scenario, sc)
        if diff:
            raise RestartError(
                f"{partial} was started with another scenario (differs at "
                f"{', '.join(diff)}); resume continues the recorded scenario only: "
                "to change it from a checkpoint on, use tme-abm fork"
            )
    if expect_seed is not None and expect_seed != record.seed:
        raise RestartError(f"{partial} was started with seed {record.seed}, not {expect_seed}")
    holder: dict[str, TMEModel] = {}

    def build(point: ResumePoint) -> None:
        """Build and restore the model before the file is touched."""
        if int(point.attrs.get("seed", record.seed)) != record.seed:
            raise RestartError(f"{partial}: its checkpoint's seed differs from the run's")
        model = TMEModel(
            record.loaded(engine_scenario(sc, point.arrays)), seed=record.seed, series_rows=0
        )
        try:
            model.restore_checkpoint(point.arrays, point.attrs)
        except ValueError as exc:
            raise RestartError(
                f"{partial}: its checkpoint does not fit its scenario ({exc})"
            ) from None
        holder["model"] = model

    try:
        writer, _point = RunWriter.reopen(partial, before_truncate=build)
    except CheckpointError as exc:
        if n_snapshots == 0 and "holds none" in str(exc):
            # killed before its first snapshot: nothing was kept, start it again
            partial.unlink()
            return run_scenario(record.loaded(), final, seed=record.seed, progress=progress,
                                on_tick=on_tick)
        hint = ""
        if "parent_run" in record.attrs:
            hint = ("; it is a fork killed while copying its parent's history: run the "
                    "fork command again with --force")
        raise RestartError(f"{partial} cannot be resumed: {exc}{hint}") from None
    except OSError as exc:
        raise RestartError(f"{partial} cannot be opened for writing ({exc})") from None
    model = holder["model"]
    with writer:
        stamps = text(writer.attrs.get("resumed", ""))
        writer.attrs["resumed"] = (stamps + " " + _utc_now()).strip()
        snapshots = advance(model, writer, progress=progress, on_tick=on_tick)
    return RunResult.of(model, writer.final_path, start, snapshots)
