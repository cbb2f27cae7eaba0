"""Performance benchmarks of tme_abm: print a table, write JSON.

Usage::

    python tools/bench.py [--quick] [--out output/bench.json] [--threads 1 2]
                          [--repeats 5] [--sizes 1e4 1e5 1e6]

The same as ``tme-abm bench``; see :mod:`tme_abm.benchmark` for what is
measured.  Run it on an otherwise idle machine (it checks, and says so when
the machine is busy).  ``--quick`` is a smoke test of seconds whose figures
are not comparable with the targets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tme_abm.benchmark.command import add_arguments, main  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
