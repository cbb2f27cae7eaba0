"""Command line of the benchmarks: ``tme-abm bench`` and ``tools/bench.py``.

Importing this module is cheap (no numba, no Mesa); :func:`main` loads them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Where the JSON goes without ``--out`` (replaced by every run).
DEFAULT_OUT = Path("output") / "bench.json"


def _count(text: str) -> int:
    """A cell count such as ``10000``, ``1e5`` or ``1_000_000``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and 2 repeats, seconds long: a smoke test whose "
                        "figures are not comparable with the targets")
    parser.add_argument("--out", type=Path, metavar="FILE.json",
                        help=f"JSON report, replaced if it exists (default {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, nargs="+", metavar="N",
                        help="numba thread counts (default: 1 2)")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="timed repeats per figure; medians are reported "
                        "(default 5, quick 2)")
    parser.add_argument("--sizes", type=_count, nargs="+", metavar="CELLS",
                        help="initial cells of the whole-tick runs "
                        "(default 1e4 1e5 1e6, quick 1e3 3e3 1e4)")
    parser.add_argument("--memory-ticks", type=int, metavar="N",
                        help="ticks of the long-run memory measurement, whose resident "
                        "memory per tick should be flat (default 20160, quick 1000; 0 skips)")
    parser.add_argument("--competitors", type=int, metavar="N",
                        help="busy processes of the loaded case, which times thread counts "
                        "while they run (default: one per CPU but one, at least 1; 0 skips)")


def main(args: argparse.Namespace) -> int:
    """Run the benchmarks as the parsed ``args`` say; returns the exit code."""
    from tme_abm.benchmark.report import write_json
    from tme_abm.benchmark.run import BenchConfig, format_report, run_bench

    out = args.out if args.out is not None else DEFAULT_OUT
    if out.exists() and out.is_dir():
        print(f"tme-abm: error: {out} is a directory; --out needs a file name",
              file=sys.stderr)
        return 2
    config = BenchConfig.make(
        quick=args.quick, threads=args.threads, repeats=args.repeats, sizes=args.sizes,
        write_folder=out.parent if str(out.parent) else None,
        memory_ticks=args.memory_ticks,
        loaded_competitors=args.competitors,
    )
    problems = config.problems()
    if problems:
        for p in problems:
            print(f"tme-abm: error: {p}", file=sys.stderr)
        return 2
    report, figures = run_bench(config)
    print(format_report(report, figures))
    path = write_json(out, report)
    print(f"\nwrote {path}")
    if report["raw"].get("ticks"):
        from tme_abm.benchmark.plot import plot_scaling

        print(f"wrote {plot_scaling(report, out.with_suffix('.png'))}")
    return 0
