"""Sweeps on Dask: a ``concurrent.futures.Executor`` backed by a Dask cluster.

``tme-abm sweep --scheduler tcp://HOST:8786`` uses an existing cluster;
``--scheduler local`` starts a :class:`distributed.LocalCluster` of
``workers`` single-threaded processes.  On Slurm or PBS, start the cluster
with ``dask-jobqueue`` (see the README) and pass its scheduler address.  The
runs are the same pure functions of (scenario, overrides, seed) as on the
process pool, so the summary is identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager


@contextmanager
def dask_executor(scheduler: str, workers: int = 2) -> Iterator[Executor]:
    """An Executor on a Dask cluster; the client (and a local cluster) close after.

    Parameters
    ----------
    scheduler
        A scheduler address, or ``"local"`` for a LocalCluster.
    workers
        Worker processes of a LocalCluster (ignored for an address).
    """
    from distributed import Client, LocalCluster

    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        cluster = None
        client = Client(scheduler, timeout="20s")
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
