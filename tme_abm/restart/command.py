"""The ``tme-abm resume`` and ``tme-abm fork`` commands.

``resume`` completes an interrupted run file from its last checkpoint;
``fork`` starts a new run file from a checkpoint of an existing run, with a
changed scenario, overrides or seed from then on. Bad input (no such file,
no checkpoint there, a change a fork cannot make, an existing output
without ``--force``) is one line per problem on stderr and exit code 2, and
nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def add_resume_arguments(p: argparse.ArgumentParser) -> None:
    """The ``resume`` subcommand's arguments."""
    p.add_argument("run", type=Path, metavar="RUN",
                   help="the interrupted run's .partial file (or its final name)")
    p.add_argument("scenario", type=Path, nargs="?", metavar="SCENARIO",
                   help="optional: check that the run is of this scenario (with --set) first")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="with SCENARIO: the overrides the run was started with")
    p.add_argument("--seed", type=int, help="check that the run has this seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_fork_arguments(p: argparse.ArgumentParser) -> None:
    """The ``fork`` subcommand's arguments."""
    p.add_argument("run", type=Path, metavar="RUN",
                   help="the parent run file (.h5, or a .partial of a run still going)")
    p.add_argument("scenario", type=Path, nargs="?", metavar="SCENARIO",
                   help="scenario to continue with (file or shipped name; default: the "
                   "parent's own)")
    p.add_argument("--day", type=float, metavar="D",
                   help="fork at the snapshot nearest day D, which must hold a checkpoint "
                   "(default: the last checkpoint)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of that scenario, e.g. --set therapy.0.start_day=5")
    p.add_argument("--seed", type=int, help="seed from the fork on (default: the parent's)")
    p.add_argument("--treat-from-fork", action="store_true",
                   help="move the therapies SCENARIO adds so that the first starts at the "
                   "fork (e.g. anti_pd1, written for day 1, then starts at day D)")
    p.add_argument("--out", type=Path, required=True, help="the new run file")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out (only once the fork completes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _fail(message: str) -> int:
    for line in str(message).splitlines():
        print(f"tme-abm: error: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _print_done(result, verb: str) -> None:
    size_mb = result.path.stat().st_size / 1e6
    print(f"{verb} {result.path} ({size_mb:.1f} MB, {result.snapshots} snapshots written, "
          f"{result.seconds:.1f} s)")
    print(f"inspect it with: tme-abm inspect {result.path}")


def resume_main(args: argparse.Namespace) -> int:
    """``tme-abm resume``."""
    from tme_abm.scenario import ScenarioError, load_scenario

    expect = None
    if args.scenario is not None:
        from tme_abm.scenario.library import resolve

        try:
            expect = load_scenario(resolve(args.scenario), args.overrides)
        except ScenarioError as exc:
            return _fail(exc.format())
    elif args.overrides:
        return _fail("--set: only with SCENARIO (resume continues the recorded scenario)")
    from tme_abm.jit_notice import CompileNotice
    from tme_abm.restart import RestartError, resume_run

    try:
        with CompileNotice(enabled=not args.quiet):
            result = resume_run(args.run, expect=expect, expect_seed=args.seed,
                                progress=False if args.quiet else None)
    except RestartError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"\ntme-abm: interrupted again; resume it later with: tme-abm resume {args.run}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_done(result, "completed")
    return 0


def fork_main(args: argparse.Namespace) -> int:
    """``tme-abm fork``."""
    from tme_abm.io import RunExistsError, partial_path_for
    from tme_abm.scenario import ScenarioError

    if args.seed is not None and not 0 <= args.seed < 2**63:
        return _fail(f"--seed: must be a non-negative integer below 2**63, not {args.seed}")
    if args.out.exists() and not args.force:
        return _fail(f"{args.out} already exists; use --force to replace it")
    if partial_path_for(args.out).exists() and not args.force:
        return _fail(f"{partial_path_for(args.out)} (an interrupted fork) exists; run the fork "
                     "again with --force to start it over")
    from tme_abm.jit_notice import CompileNotice
    from tme_abm.restart import RestartError, fork_run

    try:
        with CompileNotice(enabled=not args.quiet):
            result = fork_run(
                args.run, args.day, args.out, scenario=args.scenario,
                overrides=args.overrides, seed=args.seed, force=args.force,
                progress=False if args.quiet else None,
                start_therapies_at_fork=args.treat_from_fork,
            )
    except ScenarioError as exc:
        return _fail(exc.format())
    except (RestartError, RunExistsError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc}")
    except KeyboardInterrupt:
        print(f"\ntme-abm: interrupted; resume the fork with: tme-abm resume "
              f"{partial_path_for(args.out)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_done(result, "wrote")
    return 0
