"""The machine a benchmark runs on: description, idle check, memory bandwidth.

:func:`machine_info` describes the hardware and software (CPU model, cores,
memory, library versions, numba's threads); :func:`idle_check` samples how
busy the CPUs are *before* any measurement, since figures taken while other
processes hold the cores are low; :func:`memory_bandwidth` is a STREAM-triad
(``a = b + s * c``) kernel in numba, so the field solver's throughput can be
put next to what the memory system delivers in the same run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

#: Busy fraction of the CPUs (used by other processes) above which a
#: machine counts as not idle.
BUSY_THRESHOLD = 0.10

#: STREAM convention: the triad reads ``b`` and ``c`` and writes ``a``, so
#: 3 x 8 bytes per float64 element (the write-allocate read of ``a`` that
#: most CPUs also do is not counted, as in STREAM's own reports).
TRIAD_BYTES_PER_ELEMENT = 24


def _read_proc_stat() -> tuple[int, int] | None:
    """(busy, total) jiffies summed over all CPUs, from ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            first = fh.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user..steal; guest time is already in user
    return total - idle, total


@dataclass(frozen=True)
class IdleCheck:
    """How busy the machine was during a short sample.

    Attributes
    ----------
    busy_fraction
        Fraction of all CPUs' time spent busy during the sample, while this
        process slept (so it is other processes' use); None if unknown.
    load_average
        1-minute load average (runnable processes), or None.
    cpus
        CPUs this process may run on.
    seconds
        Length of the sample.
    idle
        ``busy_fraction`` (or, without ``/proc/stat``, load per CPU) at most
        :data:`BUSY_THRESHOLD`.
    method
        ``"/proc/stat"`` or ``"loadavg"``.
    """

    busy_fraction: float | None
    load_average: float | None
    cpus: int
    seconds: float
    idle: bool
    method: str

    def message(self) -> str:
        """One line for the report: idle, or busy with how much and what it means."""
        share = self.busy_fraction
        if share is None and self.load_average is not None:
            share = min(1.0, self.load_average / max(1, self.cpus))
        pct = "?" if share is None else f"{100 * share:.0f}%"
        if self.idle:
            return f"machine idle: {pct} of CPU busy during a {self.seconds:g} s check"
        return f"machine busy: {pct} of CPU used by other processes; figures will be low"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the message."""
        return {**asdict(self), "message": self.message()}


def available_cpus() -> int:
    """CPUs this process may run on (affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def idle_check(seconds: float = 1.0) -> IdleCheck:
    """Sample CPU use by other processes over ``seconds`` (this process sleeps).

    Parameters
    ----------
    seconds
        Sampling interval.

    Returns
    -------
    IdleCheck
        From ``/proc/stat`` deltas where available, else from the load average.
    """
    cpus = available_cpus()
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average
        load = None
    before = _read_proc_stat()
    time.sleep(seconds)
    after = _read_proc_stat()
    if before is not None and after is not None and after[1] > before[1]:
        busy = (after[0] - before[0]) / (after[1] - before[1])
        busy = min(1.0, max(0.0, busy))
        return IdleCheck(busy, load, cpus, seconds, busy <= BUSY_THRESHOLD, "/proc/stat")
    per_cpu = None if load is None else load / max(1, cpus)
    idle = per_cpu is None or per_cpu <= BUSY_THRESHOLD
    return IdleCheck(None, load, cpus, seconds, idle, "loadavg")


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model", "Hardware"):
            return value.strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Hardware and software the figures were taken on.

    Returns
    -------
    dict
        CPU model, logical CPUs (all and usable), memory, OS, Python, numpy,
        numba, Mesa and tme_abm versions, numba's thread limit
        (``NUMBA_NUM_THREADS``) and threading layer, and the git commit.
    """
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = None
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": available_cpus(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "mesa": _version("mesa"),
        "h5py": _version("h5py"),
        "tme_abm": _version("tme_abm"),
        "git_commit": _git_commit(),
        "numba_max_threads": int(numba.config.NUMBA_NUM_THREADS),
        "numba_threading_layer": layer,
    }


# ---------------------------------------------------------------- bandwidth
@numba.njit(cache=True, parallel=True)
def _fill(a: np.ndarray, value: float) -> None:
    for i in numba.prange(a.shape[0]):
        a[i] = value


@numba.njit(cache=True, parallel=True)
def _triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: float) -> None:
    for i in numba.prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


def triad_arrays(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three float64 arrays of ``n`` elements, first touched in parallel (so
    pages land near the threads that use them)."""
    arrays = tuple(np.empty(n, dtype=np.float64) for _ in range(3))
    for arr, v in zip(arrays, (0.0, 1.0, 2.0), strict=True):
        _fill(arr, v)
    return arrays  # type: ignore[return-value]


def memory_bandwidth(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray], repeats: int
) -> list[float]:
    """STREAM-triad bandwidth, one figure per repeat, at numba's current threads.

    Parameters
    ----------
    arrays
        ``(a, b, c)`` from :func:`triad_arrays`; use far more memory than the
        caches (e.g. 3 x 80 MB).
    repeats
        Timed triads (one untimed triad runs first).

    Returns
    -------
    list of float
        GB/s (1e9 bytes/s) per repeat, counting :data:`TRIAD_BYTES_PER_ELEMENT`.
    """
    a, b, c = arrays
    _triad(a, b, c, 3.0)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _triad(a, b, c, 3.0)
        dt = time.perf_counter() - t0
        out.append(TRIAD_BYTES_PER_ELEMENT * a.shape[0] / dt / 1e9)
    return out
