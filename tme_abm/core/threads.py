"""One thread or all of them for mid-size kernels, chosen by timing ticks.

A parallel kernel pays for waking its threads at every parallel region (the
act step alone has 11 per tick).  Above ``PARALLEL_MIN_CELLS`` cells or
``PARALLEL_MIN_FIELD_VOXELS`` field values (:mod:`tme_abm.core.engine`) the
work always outweighs that; below, it depends on the machine at that moment.
Measured on a 2-core machine: the random walk of the Mesa comparison (1e4
cells) ran 1.6x faster on 2 threads when the machine was idle, but the
quick-start baseline ran 3.4x *slower* on 2 threads while another process
held the second core (an OpenMP region waits for a descheduled thread).
Part of that was OpenMP's idle workers spinning after each region on the
core the working thread needed; importing ``tme_abm`` therefore sets
``OMP_WAIT_POLICY=passive`` before numba starts its threads, unless the user
set a wait policy (``tme_abm/_runtime.py``; ``tme-abm bench`` times thread
counts with busy competitor processes running).  What is left, a region
waiting for a descheduled thread, is what this policy measures.

:class:`ThreadPolicy` therefore measures instead of guessing: every
``probe_every`` ticks it runs a block of ticks on one thread and a block on
all threads, and keeps all threads only if their mean tick is at least
``min_gain`` faster.  Results never depend on the choice: every
kernel gives the same output on any number of threads (counter-based random
streams; see ``tests/test_engine.py``), so the policy changes speed only.
"""

from __future__ import annotations

import numpy as np


class ThreadPolicy:
    """Chooses 1 or all of numba's threads for a run's mid-size kernels.

    Parameters
    ----------
    probe_every
        Ticks from the start of one probe to the start of the next.
    probe_block
        Ticks of each of a probe's two blocks: one thread, then all threads.
        The first tick of a block is not counted (the switch's transient:
        worker threads still spinning from the previous region).
    min_gain
        All threads are kept only when their mean tick is at most
        ``1 - min_gain`` times the one-thread mean (hysteresis against
        noise).  Means, not medians: on a busy machine most parallel ticks
        are fast and a few stall for a whole scheduler slice, and the
        stalls are what make all threads the slower choice.
    warmup_ticks
        Ticks on one thread before the first probe (the first tick may
        compile or load kernels).

    Notes
    -----
    Call :meth:`threads` before a tick and :meth:`record` with its wall time
    after it.  While numba runs on one thread there is nothing to choose and
    the policy answers 1.  :attr:`decisions` keeps ``(tick, one-thread mean,
    all-threads mean, choice)`` for every probe.
    """

    def __init__(
        self,
        probe_every: int = 512,
        probe_block: int = 8,
        min_gain: float = 0.1,
        warmup_ticks: int = 2,
    ) -> None:
        if probe_block < 2:
            raise ValueError("probe_block must be >= 2")
        if probe_every <= 2 * probe_block:
            raise ValueError("probe_every must exceed two probe blocks")
        self.probe_every = probe_every
        self.probe_block = probe_block
        self.min_gain = min_gain
        self.choice = 1  # threads for mid-size kernels outside probes
        self.decisions: list[tuple[int, float, float, int]] = []
        self._ticks = 0  # ticks recorded
        self._probe_start = warmup_ticks
        self._pending = 1  # threads of the tick being run
        self._samples: dict[int, list[float]] = {}

    def _probe_tick(self) -> int:
        """Position of the coming tick in the current probe, or -1."""
        k = self._ticks - self._probe_start
        return k if 0 <= k < 2 * self.probe_block else -1

    def threads(self, n_threads: int) -> int:
        """Threads for the mid-size kernels of the next tick (1 or ``n_threads``)."""
        k = self._probe_tick()
        if n_threads <= 1:
            self._pending = 1
        elif k >= 0:
            self._pending = 1 if k < self.probe_block else n_threads
        else:
            self._pending = n_threads if self.choice > 1 else 1
        return self._pending

    def record(self, seconds: float) -> None:
        """The tick just run (with :meth:`threads`'s answer) took ``seconds``."""
        k = self._probe_tick()
        if k >= 0 and k % self.probe_block != 0:
            self._samples.setdefault(self._pending, []).append(seconds)
        self._ticks += 1
        if k == 2 * self.probe_block - 1:
            self._decide()
            self._probe_start += self.probe_every

    def _decide(self) -> None:
        one = self._samples.pop(1, [])
        many_threads = max(self._samples, default=1)
        many = self._samples.get(many_threads, [])
        self._samples.clear()
        if not one or not many:  # numba ran on one thread during the probe
            self.choice = 1
            return
        t1, tn = float(np.mean(one)), float(np.mean(many))
        self.choice = many_threads if tn <= (1.0 - self.min_gain) * t1 else 1
        self.decisions.append((self._ticks, t1, tn, self.choice))
