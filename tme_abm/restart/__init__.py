"""Continue a run file: resume an interrupted run, or fork a new run from a checkpoint.

- :func:`resume_run` completes an interrupted ``.partial`` from its last
  checkpoint, writing exactly what the uninterrupted run would have.
- :func:`fork_run` starts a new run file from a checkpoint of an existing run
  (complete or partial), optionally with another scenario, ``--set``
  overrides or seed from then on; the new file holds the shared history.
- :func:`fork_model` gives the forked :class:`~tme_abm.model.TMEModel` itself
  (``TMEModel.from_run``), for notebooks and the page.

This package depends on the model, the runner and the run-file package.
"""

from tme_abm.restart.fork import ForkPlan, check_fork, fork_model, fork_run, forkable_days
from tme_abm.restart.resume import resume_run
from tme_abm.restart.source import ForkError, RestartError

__all__ = [
    "ForkError",
    "ForkPlan",
    "RestartError",
    "check_fork",
    "fork_model",
    "fork_run",
    "forkable_days",
    "resume_run",
]
