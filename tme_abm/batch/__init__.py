"""Many runs: sweep plans, seeds, executors, the summary table."""
