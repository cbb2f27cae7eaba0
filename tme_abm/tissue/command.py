"""The ``tme-abm export`` and ``tme-abm compare`` commands.

``export`` writes one snapshot of a run as AnnData (``.h5ad``) or SpatialData
(``.zarr``); ``compare`` puts a run's snapshot beside a real cell table,
metric by metric, as a table on the terminal, a CSV and a figure.  Bad input
(a missing run, a day outside it, a table that cannot be placed, an existing
output without ``--force``, a missing extra) is one line on stderr and exit
code 2, with nothing written.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

EXIT_BAD_INPUT = 2

#: Warnings the scverse libraries raise about their own internals while writing.
_LIBRARY_NOISE = (
    r"zarr v3 autosharding",
    r"Call to deprecated class Scaler",
    r".*ImplicitModificationWarning.*",
)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """The ``export`` subcommand's arguments."""
    p.add_argument("run", type=Path, metavar="RUN", help="run file (.h5 or .h5.partial)")
    p.add_argument("--day", type=float, metavar="D",
                   help="the snapshot nearest this day (default: the last)")
    p.add_argument("--format", choices=("anndata", "spatialdata"), default="anndata",
                   help="anndata (.h5ad, default) or spatialdata (.zarr)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="output (default: <run>_day<D>.h5ad or .zarr beside the run)")
    p.add_argument("--force", action="store_true", help="replace an existing export")


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The ``compare`` subcommand's arguments."""
    p.add_argument("run", type=Path, metavar="RUN", help="run file (.h5 or .h5.partial)")
    p.add_argument("tissue", type=Path, metavar="TISSUE",
                   help="TOML file with a [tissue] table (a scenario, or just [tissue]) that "
                   "names the cell table and maps its labels to the run's cell types; or a "
                   "shipped scenario's name (e.g. tissue_section)")
    p.add_argument("--day", type=float, metavar="D",
                   help="the run's snapshot nearest this day (default: the last)")
    p.add_argument("--margin-um", type=float, default=100.0,
                   help="invasive-margin half-width and tumour-sample rim, um (default 100)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as CSV")
    p.add_argument("--plot", type=Path, metavar="FILE", help="also draw it (PNG)")
    p.add_argument("--force", action="store_true", help="replace existing --csv/--plot files")


def _fail(message: str) -> int:
    for line in str(message).splitlines():
        print(f"tme-abm: error: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def export_main(args: argparse.Namespace) -> int:
    """``tme-abm export``."""
    from tme_abm.io import RunFileError
    from tme_abm.tissue.export import default_export_path, write_export

    if not args.run.is_file():
        return _fail(f"{args.run}: no such run file")
    out = args.out if args.out is not None else default_export_path(
        args.run, args.format, args.day)
    if out.exists() and not args.force:
        return _fail(f"{out} already exists; use --force to replace it")
    try:
        with warnings.catch_warnings():
            for pattern in _LIBRARY_NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            written = write_export(args.run, out, args.format, args.day, force=args.force)
    except (RunFileError, ValueError, ImportError, FileExistsError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc}")
    print(f"wrote {written}")
    return 0


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.4g}"


def compare_main(args: argparse.Namespace) -> int:
    """``tme-abm compare``."""
    from tme_abm.io import RunFileError
    from tme_abm.tissue.compare import compare_tissue
    from tme_abm.tissue.table import TissueError

    if not args.run.is_file():
        return _fail(f"{args.run}: no such run file")
    for path in (args.csv, args.plot):
        if path is not None and path.exists() and not args.force:
            return _fail(f"{path} already exists; use --force to replace it")
    if not (math.isfinite(args.margin_um) and args.margin_um > 0):
        return _fail(f"--margin-um: must be a positive number of um, not {args.margin_um}")
    try:
        frame, report = compare_tissue(args.run, args.tissue, args.day, args.margin_um)
    except TissueError as exc:
        key = f"tissue.{exc.key}: " if exc.key else ""
        return _fail(f"{args.tissue}: {key}{exc.message}")
    except (RunFileError, ValueError) as exc:
        return _fail(str(exc))
    for line in report.lines():
        print(f"tme-abm: note: tissue: {line}", file=sys.stderr)
    day = frame.attrs["run_day"]
    print(f"{args.tissue} (tissue) beside {args.run} (run, day {day:g}); "
          f"margin {args.margin_um:g} um")
    width = max(len(m) for m in frame["metric"])
    print(f"  {'metric':<{width}}  {'tissue':>10}  {'run':>10}  {'run-tissue':>10}  "
          f"{'run/tissue':>10}")
    for row in frame.itertuples():
        print(f"  {row.metric:<{width}}  {_fmt(row.tissue):>10}  {_fmt(row.run):>10}  "
              f"{_fmt(row.difference):>10}  {_fmt(row.ratio):>10}")
    try:
        if args.csv is not None:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(args.csv, index=False)
            print(f"wrote {args.csv}")
        if args.plot is not None:
            from tme_abm.viz.tissue_plots import plot_comparison

            plot_comparison(frame, args.plot, tissue_name=args.tissue.stem,
                            run_name=f"{args.run.name}, day {day:g}")
            print(f"wrote {args.plot}")
    except OSError as exc:
        return _fail(f"cannot write: {exc}")
    return 0
