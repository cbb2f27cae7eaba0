"""One live sweep per folder, and pool workers that die with their sweep.

Two guards keep a sweep folder's run files from being written by two
processes at once:

* :class:`FolderLock` -- the sweep process holds an exclusive lock on
  ``DIR/.sweep.lock`` for as long as it runs, and every worker of its process
  pool holds a shared lock on ``DIR/.sweep-workers.lock``.  A second sweep on
  the same folder is refused while either is held.  The operating system
  drops a lock when its holder dies, however it dies (``kill -9`` included),
  so a stale lock never blocks a rerun.
* :func:`bind_worker_to_parent` -- run in each pool worker as it starts: the
  worker exits as soon as the sweep process that started it is gone (at
  once on Linux through ``PR_SET_PDEATHSIG``, elsewhere within half a second
  through a watchdog thread), instead of being adopted by PID 1 and running
  the queued runs into a folder that a rerun may already be writing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".sweep.lock"
WORKERS_LOCK_NAME = ".sweep-workers.lock"

#: How long a new sweep waits for the workers of a killed one to notice and
#: exit (they do within ~0.5 s) before it refuses the folder.
ORPHAN_GRACE_S = 5.0


class FolderBusyError(RuntimeError):
    """Another sweep (or its workers) is still writing into this folder."""


def _try_lock(fh: IO[str], exclusive: bool) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                        | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows: exclusive byte-range locks only

    try:  # pragma: no cover
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover


def _unlock(fh: IO[str]) -> None:
    if fcntl is not None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    else:  # pragma: no cover
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)


class FolderLock:
    """The exclusive right of one sweep process to write into a sweep folder.

    Use as a context manager around the whole sweep.  Entering raises
    :class:`FolderBusyError` (with who holds the folder) when another live
    sweep holds it, or when workers of an earlier sweep are still running
    there a few seconds after their parent died.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.workers_path = self.folder / WORKERS_LOCK_NAME
        self._fh: IO[str] | None = None

    def __enter__(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until __exit__
        if not _try_lock(fh, exclusive=True):
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise FolderBusyError(
                f"{self.folder} is in use by another sweep ({holder}); wait for it to "
                "finish or stop it, or give this sweep another --out folder"
            )
        self._fh = fh
        try:
            self._wait_for_orphans()
        except BaseException:
            self.__exit__()
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        return self

    def _wait_for_orphans(self) -> None:
        deadline = time.monotonic() + ORPHAN_GRACE_S
        with open(self.workers_path, "a+", encoding="utf-8") as wf:
            while not _try_lock(wf, exclusive=True):
                if time.monotonic() > deadline:
                    raise FolderBusyError(
                        f"{self.folder}: worker processes of an earlier sweep are still "
                        f"running there (they hold {self.workers_path.name}); stop them "
                        "(e.g. pkill -f 'tme_abm') before running the sweep again"
                    )
                time.sleep(0.1)
            _unlock(wf)

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
                _unlock(self._fh)
            self._fh.close()
            self._fh = None


#: The worker's shared lock, held for the life of the worker process.
_worker_lock: IO[str] | None = None

_PR_SET_PDEATHSIG = 1


def _exit_with_parent_on_linux() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog remains
        pass


def _watch_parent(parent_pid: int, interval_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # the sweep is gone: stop at once, write nothing more
        time.sleep(interval_s)


def bind_worker_to_parent(parent_pid: int, folder: str | None = None,
                          interval_s: float = 0.5) -> None:
    """Tie this (pool worker) process to the sweep process ``parent_pid``.

    Meant as a :class:`concurrent.futures.ProcessPoolExecutor` initializer.
    The worker takes a shared lock on ``folder``'s workers lock (see
    :class:`FolderLock`), asks Linux to kill it when its parent dies, and
    starts a daemon thread that exits the process when its parent has
    changed (the sweep died and the worker was adopted).
    """
    global _worker_lock
    _exit_with_parent_on_linux()
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)
    if folder is not None:
        fh = open(Path(folder) / WORKERS_LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        _worker_lock = fh
    threading.Thread(target=_watch_parent, args=(parent_pid, interval_s),
                     name="tme-abm-parent-watch", daemon=True).start()
