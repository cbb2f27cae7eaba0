"""The ``tme-abm`` command: run, resume, fork, validate, inspect, sweep, calibrate,
sensitivity, plot, movie, viz, export, compare, bench, scenarios, init.

``run``, ``validate``, ``viz``, ``sweep`` and ``calibrate`` take a file or, when no
such file exists, the name of a shipped example (``tme-abm scenarios`` lists them).

Bad input (an invalid scenario, an unreadable run file, an existing output
without ``--force``) prints one line per problem on stderr and exits with
code 2, before any file is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tme_abm")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tme-abm",
        description="Agent-based model of the tumour microenvironment with per-cell STAT3.",
    )
    parser.add_argument("--version", action="version", version=f"tme-abm {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario and write its HDF5 run file")
    run.add_argument("scenario", type=Path,
                     help="scenario TOML file, or a shipped scenario's name (tme-abm scenarios)")
    run.add_argument("--out", type=Path, help="run file (default: output/<scenario name>.h5)")
    run.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set domain.duration_days=2 (repeatable)",
    )
    run.add_argument("--force", action="store_true", help="replace an existing run file")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--allow-large", action="store_true",
                     help="run even if it needs more memory than is available or more than "
                     "10 million ticks")

    val = sub.add_parser("validate", help="check a scenario file without running it")
    val.add_argument("scenario", type=Path, help="scenario TOML file or shipped name")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    val.add_argument("--allow-large", action="store_true",
                     help="accept a run larger than this machine's available memory")

    ins = sub.add_parser("inspect", help="summarise a run file")
    ins.add_argument("run", type=Path, help="run file (.h5 or .h5.partial)")

    sw = sub.add_parser("sweep", help="run a parameter sweep / replicates into a folder")
    sw.add_argument("sweep", type=Path,
                    help="sweep TOML file, or a shipped sweep's name (tme-abm scenarios)")
    sw.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    sw.add_argument("--out", type=Path, help="folder (default output/sweeps/<name>)")
    sw.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on a Dask cluster (tcp://host:8786), or 'local' for a LocalCluster "
        "of --workers processes; needs the dask extra",
    )
    sw.add_argument("--quiet", action="store_true", help="no progress bar")

    cal = sub.add_parser(
        "calibrate", help="fit parameters to observed data by ABC-SMC or a Gaussian-process "
        "emulator (needs the calibrate extra)"
    )
    cal.add_argument("calibration", type=Path, metavar="CALIBRATION",
                     help="calibration TOML file, or a shipped calibration's name")
    cal.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    cal.add_argument("--out", type=Path,
                     help="result folder (default output/calibrations/<name>)")
    cal.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on a Dask cluster (tcp://host:8786), or 'local' for a LocalCluster "
        "of --workers processes; needs the dask extra",
    )
    cal.add_argument("--check", action="store_true",
                     help="validate the file, its data and scenario, then stop")
    cal.add_argument("--quiet", action="store_true", help="no progress bars")

    sens = sub.add_parser(
        "sensitivity", help="Sobol' indices of a finished Saltelli sweep, or of a Gaussian-"
        "process emulator of a sobol/lhs sweep (sobol.csv, sobol.png)"
    )
    sens.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR",
                      help='folder of a sweep run with [design] kind = "saltelli", "sobol" '
                      'or "lhs"')
    sens.add_argument("--output", dest="outputs", action="append", metavar="NAME",
                      help="summary column to analyse (repeatable; default: the key outputs)")
    sens.add_argument("--out", type=Path, help="folder (default SWEEP_DIR/sensitivity)")
    sens.add_argument("--force", action="store_true", help="replace existing sobol.csv/png")

    plot = sub.add_parser("plot", help="PNG figures of a run file or a sweep folder")
    plot.add_argument("path", type=Path, metavar="PATH",
                      help="run file (.h5 or .h5.partial) or sweep folder (has summary.csv)")
    plot.add_argument("--out", type=Path, metavar="DIR",
                      help="folder (default: <run>_plots/ beside the run, SWEEP_DIR/plots/)")
    plot.add_argument("--days", type=float, nargs="+", metavar="D",
                      help="simulated days to draw, nearest snapshot each (run files; "
                      "default: first, middle, last snapshot)")
    plot.add_argument("--force", action="store_true", help="replace existing figures")

    movie = sub.add_parser("movie", help="MP4 or GIF of the lattice and a field over time")
    movie.add_argument("run", type=Path, metavar="RUN", help="run file (.h5 or .h5.partial)")
    movie.add_argument("--out", type=Path, metavar="FILE",
                       help="FILE.mp4 or FILE.gif (default: <run>.mp4 beside the run)")
    movie.add_argument("--field", metavar="NAME",
                       help="field drawn beside the lattice (default: the first saved)")
    movie.add_argument("--fps", type=float, default=10, help="frames per second (default 10)")
    movie.add_argument("--force", action="store_true", help="replace an existing movie")
    movie.add_argument("--quiet", action="store_true", help="no progress bar")

    viz = sub.add_parser("viz", help="serve the interactive page in the browser")
    viz.add_argument("scenario", type=Path, nargs="?",
                     help="scenario file or shipped name (default: baseline), or a run "
                          "file (.h5, complete or .partial) to replay")
    viz.add_argument("--from-run", type=Path, metavar="RUN",
                     help="open each tab at a checkpoint of this run file (see --day)")
    viz.add_argument("--day", type=float, metavar="D",
                     help="with --from-run: the checkpoint nearest day D (default: the last)")
    viz.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    viz.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    viz.add_argument("--max-models", type=int, default=None, metavar="N",
                     help="most browser tabs with a live model at once (default: as many "
                          "as half the free memory holds, at 512 MB each)")

    from tme_abm.restart.command import add_fork_arguments, add_resume_arguments
    from tme_abm.tissue.command import add_compare_arguments, add_export_arguments

    add_resume_arguments(sub.add_parser(
        "resume", help="complete an interrupted run from its last checkpoint"))
    add_fork_arguments(sub.add_parser(
        "fork", help="a new run from a checkpoint of a run, with changes from then on"))

    add_export_arguments(sub.add_parser(
        "export", help="a run's snapshot as AnnData (.h5ad) or SpatialData (.zarr) for "
        "scanpy/squidpy (needs the scverse extra)"))
    add_compare_arguments(sub.add_parser(
        "compare", help="a run's spatial metrics beside a real cell table's"))

    sub.add_parser("scenarios", help="list the shipped scenarios, sweeps and calibrations")
    init = sub.add_parser(
        "init", help="copy a shipped scenario, sweep or calibration (and the files it needs) "
        "to edit"
    )
    init.add_argument("name", metavar="NAME", help="a name listed by tme-abm scenarios")
    init.add_argument("dir", type=Path, nargs="?", default=Path("."), metavar="DIR",
                      help="folder to copy into (default: the current one); "
                      "existing files are never replaced")

    from tme_abm.benchmark.command import add_arguments as add_bench_arguments  # cheap import

    bench = sub.add_parser("bench", help="performance benchmarks: print a table, write JSON")
    add_bench_arguments(bench)
    return parser


def _fail(lines: str) -> int:
    for line in lines.splitlines():
        print(f"tme-abm: error: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _print_notes(loaded) -> None:
    from tme_abm.scenario.schema import scenario_notes
    from tme_abm.scenario.tissue import tissue_notes

    for key, message in scenario_notes(loaded.scenario) + tissue_notes(loaded.scenario):
        print(f"tme-abm: note: {key}: {message}", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    from tme_abm.scenario import ScenarioError, load_scenario
    from tme_abm.scenario.budget import estimate

    try:
        loaded = load_scenario(args.scenario, args.overrides, allow_large=args.allow_large)
    except ScenarioError as exc:
        return _fail(exc.format())
    sc = loaded.scenario
    shape = " x ".join(str(n) for n in sc.domain.shape)
    print(
        f"{args.scenario}: valid scenario {sc.name!r}: {shape} sites of {sc.domain.site_um:g} um, "
        f"{sc.n_ticks} ticks of {sc.domain.dt_min:g} min ({sc.domain.duration_days:g} days), "
        f"{len(sc.fields)} fields, {len(sc.cell_types)} cell types, {len(sc.rules)} rules"
    )
    print(f"  the run: {estimate(sc).describe()}")
    _print_notes(loaded)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from tme_abm.scenario import ScenarioError, default_output_path, load_scenario

    try:
        loaded = load_scenario(args.scenario, args.overrides, allow_large=args.allow_large)
    except ScenarioError as exc:
        return _fail(exc.format())
    if not args.quiet:
        _print_notes(loaded)
    if args.seed is not None and not 0 <= args.seed < 2**63:
        return _fail(f"--seed: must be a non-negative integer below 2**63, not {args.seed}")
    out = args.out if args.out is not None else default_output_path(loaded)
    if out.exists() and not args.force:
        return _fail(f"{out} already exists; use --force to replace it")
    from tme_abm.io.writer import partial_path_for

    if partial_path_for(out).exists() and not args.force:
        return _fail(
            f"{partial_path_for(out)} is an interrupted run: continue it with "
            f"tme-abm resume {partial_path_for(out)} (or start it again with --force)"
        )
    if out.exists() and out.is_dir():
        return _fail(f"{out} is a directory; --out needs a file name such as run.h5")
    # the model, Mesa and numba load only once the input is known to be good
    from tme_abm.io import RunExistsError
    from tme_abm.jit_notice import CompileNotice
    from tme_abm.runner import run_scenario
    from tme_abm.tissue import TissueError

    try:
        # a first run compiles the kernels for about a minute: say so on stderr
        with CompileNotice(enabled=not args.quiet):
            result = run_scenario(
                loaded, out, seed=args.seed, force=args.force,
                progress=False if args.quiet else None,
            )
    except RunExistsError as exc:
        return _fail(str(exc))
    except TissueError as exc:  # the cell table changed after the scenario was loaded
        return _fail(f"{args.scenario}: tissue.{exc.key}: {exc.message}")
    except OSError as exc:  # e.g. --out under a regular file, or an unwritable directory
        return _fail(f"cannot write {out}: {exc}")
    except KeyboardInterrupt:
        print(
            f"\ntme-abm: interrupted; completed snapshots are in {out}.partial; "
            f"continue with: tme-abm resume {out}.partial",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    _print_run_summary(loaded, result)
    return 0


def _print_run_summary(loaded, result) -> None:
    sc = loaded.scenario
    final = result.final
    size_mb = result.path.stat().st_size / 1e6
    days = result.ticks * sc.domain.dt_min / 1440.0
    print(f"wrote {result.path} ({size_mb:.1f} MB, {result.snapshots} snapshots)")
    print(f"simulated {days:.3g} days in {result.ticks} ticks, {result.seconds:.1f} s wall time")
    counts = ", ".join(f"{t} {int(final[f'count_{t}'])}" for t in sc.cell_types)
    print(f"cells at the end: {counts}")
    stat3 = ", ".join(
        f"{t} {final[f'stat3_mean_{t}']:.2f}"
        for t in sc.cell_types
        if final[f"count_{t}"] > 0
    )
    print(f"mean STAT3: {stat3}")
    print(f"inspect it with: tme-abm inspect {result.path}")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from tme_abm.io import RunFileError, format_summary, run_summary

    try:
        print(format_summary(run_summary(args.run)))
    except RunFileError as exc:
        return _fail(str(exc))
    return 0


def _dask_executor(stack, args: argparse.Namespace):
    """(executor, None) on ``--scheduler``'s Dask cluster, (None, None) without one,
    or (None, problem) when it cannot be reached; the stack closes the client."""
    if not args.scheduler:
        return None, None
    from tme_abm.batch.dask import dask_executor

    try:
        return stack.enter_context(dask_executor(args.scheduler, args.workers)), None
    except OSError as exc:
        return None, f"--scheduler {args.scheduler}: cannot connect: {exc}"


def _cmd_sweep(args: argparse.Namespace) -> int:
    import importlib.util
    from contextlib import ExitStack

    from tme_abm.batch.guard import FolderBusyError
    from tme_abm.batch.plan import parse_sweep_file
    from tme_abm.batch.sweep import SweepConflictError, run_sweep
    from tme_abm.scenario import ScenarioError

    if args.workers < 1:
        return _fail(f"--workers: must be at least 1, not {args.workers}")
    try:
        parse_sweep_file(args.sweep)  # bad input fails before any run or cluster starts
    except ScenarioError as exc:
        return _fail(exc.format())
    if args.scheduler and importlib.util.find_spec("distributed") is None:
        return _fail('--scheduler needs the dask extra: pip install -e ".[dask]"')
    with ExitStack() as stack:
        executor, problem = _dask_executor(stack, args)
        if problem:
            return _fail(problem)
        try:
            rows, out = run_sweep(args.sweep, args.out, workers=args.workers,
                                  executor=executor, progress=False if args.quiet else None)
        except (FolderBusyError, SweepConflictError) as exc:
            return _fail(str(exc))
        except KeyboardInterrupt:
            print("\ntme-abm: interrupted; run the same command again to finish",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
    failed = {k: r for k, r in rows.items() if r["status"] == "failed"}
    reused = sum(r["status"] == "reused" for r in rows.values())
    resumed = sum(r["status"] == "resumed" for r in rows.values())
    print(f"{len(rows)} runs ({reused} reused, {resumed} resumed, {len(failed)} failed); "
          f"summary: {out / 'summary.csv'}")
    for run_id, r in sorted(failed.items()):
        print(f"failed {run_id}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import importlib.util
    from contextlib import ExitStack

    from tme_abm.batch.guard import FolderBusyError
    from tme_abm.calibration.spec import CalibrationError, load_calibration

    if args.workers < 1:
        return _fail(f"--workers: must be at least 1, not {args.workers}")
    try:
        calibration = load_calibration(args.calibration)
    except CalibrationError as exc:
        return _fail(exc.format())
    if args.check:
        print(f"{args.calibration}: ok ({len(calibration.spec.parameters)} parameters, "
              f"{len(calibration.data)} data points)")
        return 0
    needs = "sklearn" if calibration.spec.method == "emulator" else "pyabc"
    if importlib.util.find_spec(needs) is None:
        return _fail('calibrate needs the calibrate extra: pip install -e ".[calibrate]"')
    if args.scheduler and importlib.util.find_spec("distributed") is None:
        return _fail('--scheduler needs the dask extra: pip install -e ".[dask]"')
    from tme_abm.calibration.command import format_intervals, run_calibration

    class TooFewAccepted(Exception):  # stands in when pyabc (the abc-smc method) is absent
        pass

    if needs == "pyabc":
        from tme_abm.calibration.smc import TooFewAccepted

    def log(line: str) -> None:
        if not args.quiet:
            print(f"tme-abm: {line}", file=sys.stderr)

    with ExitStack() as stack:
        executor, problem = _dask_executor(stack, args)
        if problem:
            return _fail(problem)
        try:
            result = run_calibration(args.calibration, args.out, workers=args.workers,
                                     executor=executor, progress=False if args.quiet else None,
                                     log=log)
        except (FolderBusyError, CalibrationError) as exc:
            return _fail(exc.format() if isinstance(exc, CalibrationError) else str(exc))
        except TooFewAccepted as exc:
            print(f"tme-abm: error: {exc}; finished generations are kept", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ntme-abm: interrupted; finished generations (or design runs) are kept: "
                  "run the same command again to continue", file=sys.stderr)
            return EXIT_INTERRUPTED
    print(format_intervals(result.intervals))
    if result.predictive is not None:
        p = result.predictive
        print(f"posterior predictive check: {int(p['inside95'].sum())} of {len(p)} observed "
              "values inside the 95% band")
    print(f"stopped: {result.reason}; results in {result.out} (report.md)")
    return 0


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    import os
    import warnings

    from tme_abm.scenario import ScenarioError

    folder = args.sweep_dir
    if not folder.is_dir():
        return _fail(f"{folder}: no such sweep folder")
    out = args.out if args.out is not None else folder / "sensitivity"
    if out.exists() and not out.is_dir():
        return _fail(f"{out} is not a folder; --out needs a folder")
    targets = [out / "sobol.csv", out / "sobol.png"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        return _fail(f"{' and '.join(existing)} already exist(s); use --force to replace")
    from tme_abm.batch.sensitivity import (
        SensitivityError,
        format_table,
        plot_sobol,
        sobol_indices,
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = sobol_indices(folder, args.outputs)
        except ScenarioError as exc:
            return _fail(exc.format())
        except (FileNotFoundError, SensitivityError) as exc:
            return _fail(str(exc))
        finally:
            for w in caught:
                print(f"tme-abm: warning: {w.message}", file=sys.stderr)
    if df.empty:
        return _fail("no output varies across the design (see the warnings); nothing to write")
    csv_path, png_path = targets
    tmp = csv_path.with_name(".sobol.csv.tmp")
    try:
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(tmp, index=False)
        plot_sobol(df, png_path)
        os.replace(tmp, csv_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        return _fail(f"cannot write into {out}: {exc}")
    print(format_table(df))
    print(f"wrote {csv_path} and {png_path}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    path: Path = args.path
    if not path.exists():
        return _fail(f"{path}: no such run file or sweep folder")
    is_sweep = path.is_dir()
    if is_sweep and not (path / "summary.csv").is_file():
        return _fail(f"{path} is a folder without summary.csv, so not a sweep folder")
    if is_sweep and args.days is not None:
        return _fail("--days applies to run files, not to a sweep folder")
    # matplotlib loads only here, once the input is known to exist
    from tme_abm.io import RunFileError
    from tme_abm.viz.plots import PlotError, plot_run, plot_sweep, run_stem

    def note(text: str) -> None:
        print(f"tme-abm: note: {text}", file=sys.stderr)

    if is_sweep:
        out = args.out if args.out is not None else path / "plots"
    else:
        out = args.out if args.out is not None else path.with_name(f"{run_stem(path)}_plots")
    if out.exists() and not out.is_dir():
        return _fail(f"{out} is not a folder; --out needs a folder")
    try:
        if is_sweep:
            written = plot_sweep(path, out, overwrite=args.force, log=note)
        else:
            written = plot_run(path, out, args.days, overwrite=args.force, log=note)
    except (RunFileError, PlotError, FileExistsError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc}")
    print(f"wrote {len(written)} figures to {out}:")
    for p in written:
        print(f"  {p}")
    return 0


def _cmd_movie(args: argparse.Namespace) -> int:
    run: Path = args.run
    if not run.is_file():
        return _fail(f"{run}: no such run file")
    from tme_abm.io import RunFileError
    from tme_abm.viz.plots import PlotError, run_stem, write_movie

    out = args.out if args.out is not None else run.with_name(f"{run_stem(run)}.mp4")
    try:
        written = write_movie(run, out, field=args.field, fps=args.fps,
                              progress=False if args.quiet else None, overwrite=args.force)
    except (RunFileError, PlotError, FileExistsError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc}")
    print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")
    return 0


def _is_run_file(path: Path) -> bool:
    """Whether ``tme-abm viz``'s argument names a run file (to replay) rather
    than a scenario: an ``.h5`` or ``.partial`` name, or HDF5 content."""
    if path.name.endswith((".h5", ".hdf5", ".h5.partial")):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def _cmd_viz(args: argparse.Namespace) -> int:
    import importlib.util
    import os

    from tme_abm.scenario import ScenarioError, load_scenario

    if importlib.util.find_spec("solara") is None:
        return _fail('the page needs the viz extra: pip install -e ".[viz]"')
    if not 0 < args.port < 65536:
        return _fail(f"--port: must be 1-65535, not {args.port}")
    if args.max_models is not None and args.max_models < 1:
        return _fail(f"--max-models: must be at least 1, not {args.max_models}")
    replay = None
    if args.scenario is not None and _is_run_file(args.scenario):
        from tme_abm.io import RunFileError
        from tme_abm.viz.frames import RunSource

        if args.from_run is not None:
            return _fail("--from-run: give either a run file to replay or --from-run, not both")
        try:  # the page would fail in every tab: say why here, once
            RunSource(args.scenario)
        except RunFileError as exc:
            return _fail(str(exc))
        replay, args.scenario = args.scenario, None
    elif args.scenario is not None:
        try:
            load_scenario(args.scenario)
        except ScenarioError as exc:
            return _fail(exc.format())
    if args.day is not None and args.from_run is None:
        return _fail("--day: only with --from-run RUN")
    if args.from_run is not None:
        from tme_abm.restart import RestartError, fork_model

        try:  # the page would fail in every tab: say why here, once
            fork_model(args.from_run, args.day, series_rows=0)
        except RestartError as exc:
            return _fail(str(exc))
    from tme_abm.viz import server, slots

    try:
        max_models = args.max_models or slots.max_models()
    except ValueError as exc:
        return _fail(str(exc))
    env = server.server_environment(os.environ, args.scenario, max_models,
                                    args.from_run, args.day, replay)
    cmd = server.solara_command(args.host, args.port)
    what = (f"the replay of {replay}" if replay is not None
            else f"at most {max_models} tabs with a model at once")
    # open as localhost: Solara warns about its session cookie on http://127.0.0.1
    shown = "localhost" if args.host == "127.0.0.1" else args.host
    print(f"tme-abm viz: serving http://{shown}:{args.port}, {what} (Ctrl-C stops)",
          flush=True)
    # become the server, so that signals (Ctrl-C, terminate) reach it directly
    # instead of leaving an orphaned server behind a stopped parent
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


#: Commands whose file argument may be a shipped name: command -> (attribute, kind).
_NAMED_INPUTS = {
    "run": ("scenario", "scenario"),
    "validate": ("scenario", "scenario"),
    "viz": ("scenario", "scenario"),
    "sweep": ("sweep", "sweep"),
    "calibrate": ("calibration", "calibration"),
    "compare": ("tissue", "scenario"),
}


def _resolve_names(args: argparse.Namespace) -> str | None:
    """Replace a shipped scenario's or sweep's name by its file (an existing
    path wins); return an error for a missing path that names a shipped file."""
    from tme_abm.scenario import library

    attr, kind = _NAMED_INPUTS[args.command]
    given: Path | None = getattr(args, attr)
    if given is None or given.exists():
        return None
    found = library.resolve(given, kind)
    if found != given:
        setattr(args, attr, found)
        return None
    if library.find(given.name, kind) is not None:
        return (f"{given}: no such file; the shipped {kind} {given.stem!r} is named without "
                f"a folder: tme-abm {args.command} {given.stem} (see tme-abm scenarios)")
    return None


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from tme_abm.scenario import library

    items = library.examples()
    width = max(len(e.name) for e in items)
    for kind, title in (("scenario", "scenarios (tme-abm run NAME)"),
                        ("sweep", "sweeps (tme-abm sweep NAME)"),
                        ("calibration", "calibrations (tme-abm calibrate NAME)")):
        print(f"{title}:")
        for e in (e for e in items if e.kind == kind):
            print(f"  {e.name:<{width}}  {e.description}")
    print(f"copy one to edit with: tme-abm init NAME [DIR]  (files in {library.examples_dir()})")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from tme_abm.scenario import library

    try:
        written = library.copy_example(args.name, args.dir)
    except library.ExampleError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write into {args.dir}: {exc}")
    for path in written:
        print(f"wrote {path}")
    command = ("run" if library.find(args.name, "scenario") is not None else
               "sweep" if library.find(args.name, "sweep") is not None else "calibrate")
    print(f"edit it, then: tme-abm {command} {written[0]}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tme_abm.tissue.command import export_main

    return export_main(args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from tme_abm.tissue.command import compare_main

    return compare_main(args)


def _cmd_resume(args: argparse.Namespace) -> int:
    from tme_abm.restart.command import resume_main

    return resume_main(args)


def _cmd_fork(args: argparse.Namespace) -> int:
    from tme_abm.restart.command import fork_main

    return fork_main(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from tme_abm.benchmark.command import main as bench_main

    return bench_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tme-abm`` command; returns the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # argparse takes all positionals at once, so "fork RUN --day 5 SCENARIO"
    # leaves SCENARIO over: it is the optional positional that was skipped
    if (extra and args.command in ("fork", "resume") and args.scenario is None
            and len(extra) == 1 and not extra[0].startswith("-")):
        args.scenario, extra = Path(extra[0]), []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in _NAMED_INPUTS and (problem := _resolve_names(args)):
        return _fail(problem)
    handlers = {
        "run": _cmd_run,
        "validate": _cmd_validate,
        "inspect": _cmd_inspect,
        "viz": _cmd_viz,
        "plot": _cmd_plot,
        "movie": _cmd_movie,
        "sweep": _cmd_sweep,
        "calibrate": _cmd_calibrate,
        "sensitivity": _cmd_sensitivity,
        "bench": _cmd_bench,
        "export": _cmd_export,
        "resume": _cmd_resume,
        "fork": _cmd_fork,
        "compare": _cmd_compare,
        "scenarios": _cmd_scenarios,
        "init": _cmd_init,
    }
    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
