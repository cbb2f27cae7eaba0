"""Many runs: sweep plans, seeds, executors, the summary table."""

#: Summary statuses of a run whose file is complete (run now, reused from an
#: earlier sweep, or resumed from an interrupted attempt).
DONE_STATUSES = ("ok", "reused", "resumed")
