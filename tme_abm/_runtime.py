"""Process settings that must be made before numba starts, set on import.

:func:`configure` runs when ``tme_abm`` is first imported (``tme_abm/__init__``),
before any kernel module imports numba, and never replaces a setting the
user made in the environment:

* **OpenMP wait policy.**  numba's ``omp`` threading layer (GNU OpenMP in the
  numba wheels) lets idle worker threads spin for a while after each parallel
  region.  When other processes hold the cores, the spinning worker takes the
  core that the thread with work needs: on a 2-core machine with one busy
  competitor, a 1e5-cell random walk ran 3-6x slower on 2 threads than on 1,
  and even kernels limited to one thread (``numba.set_num_threads(1)`` while
  the pool has 2) ran 5-10x slower.  ``OMP_WAIT_POLICY=passive`` makes idle
  workers sleep at once, which removed both effects (see ``tme-abm bench``'s
  loaded case).  It is read once, when the OpenMP runtime loads (numba's first
  parallel kernel or thread-count call), so it must be in the environment
  before that; left alone when ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
  ``KMP_BLOCKTIME`` is set.
* **Kernel cache directory.**  numba caches compiled kernels beside their
  source (``tme_abm/core/__pycache__``).  When that folder is not writable (a
  non-editable install into a system or shared site-packages), the cache goes
  to a per-user folder instead (``NUMBA_CACHE_DIR`` = the user cache dir,
  e.g. ``~/.cache/tme_abm/numba`` or ``$XDG_CACHE_HOME/tme_abm/numba``), or to
  a per-user temporary folder if that is not writable either, so a fresh
  install compiles once, not at every run.  Left alone when
  ``NUMBA_CACHE_DIR`` is set.

This module imports only the standard library (and ``platformdirs`` when a
fallback cache folder is needed), so importing ``tme_abm`` stays cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

#: Environment variables that set how idle OpenMP threads wait; if any is set
#: the user chose, and :func:`configure` leaves the wait policy alone.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
#: The wait policy :func:`configure` sets otherwise.
WAIT_POLICY = "passive"
#: Where numba caches kernels beside their source.
KERNEL_DIRS = ("core", "benchmark")

#: What :func:`configure` set in the environment of this process (name -> value).
APPLIED: dict[str, str] = {}


def package_dir() -> Path:
    """The installed ``tme_abm`` package folder."""
    return Path(__file__).resolve().parent


def writable(folder: Path) -> bool:
    """Whether numba could write its cache in ``folder/__pycache__``.

    The ``__pycache__`` folder is checked where it exists, else ``folder``
    itself (numba would create ``__pycache__`` in it).  Uses ``os.access``
    (no file is written), so a read-only file system counts as not writable
    even for root.
    """
    cache = folder / "__pycache__"
    target = cache if cache.is_dir() else folder
    return target.is_dir() and os.access(target, os.W_OK | os.X_OK)


def user_cache_dir() -> Path:
    """Per-user cache folder for the kernels: ``<user cache dir>/tme_abm/numba``
    (``platformdirs``: ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux,
    ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("tme_abm", appauthor=False)) / "numba"


def _temp_cache_dir() -> Path:
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"tme_abm-numba-{uid}"


def _can_create(folder: Path) -> bool:
    """Whether ``folder`` exists or can be made, and is writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def choose_cache_dir(
    environ: MutableMapping[str, str] | None = None,
    package: Path | None = None,
    is_writable: Callable[[Path], bool] | None = None,
    candidates: Callable[[], list[Path]] | None = None,
) -> Path | None:
    """Where numba should cache kernels, or None to leave numba's choice.

    Parameters
    ----------
    environ
        The environment (default ``os.environ``).  A set ``NUMBA_CACHE_DIR``
        is the user's choice: None is returned.
    package
        The package folder (default :func:`package_dir`).
    is_writable
        Tells whether numba can cache beside a kernel folder's sources
        (default :func:`writable`).
    candidates
        Fallback folders in order of preference (default: :func:`user_cache_dir`,
        then a per-user folder in the system's temporary folder).

    Returns
    -------
    Path or None
        None when ``NUMBA_CACHE_DIR`` is set or every kernel folder of the
        package is writable (numba caches beside the sources); else the first
        candidate that exists or can be created and is writable (None if none is).
    """
    env = os.environ if environ is None else environ
    if env.get("NUMBA_CACHE_DIR"):
        return None
    pkg = package_dir() if package is None else package
    is_writable = writable if is_writable is None else is_writable
    if all(is_writable(pkg / d) for d in KERNEL_DIRS):
        return None
    folders = candidates() if candidates is not None else [user_cache_dir(), _temp_cache_dir()]
    for folder in folders:
        if _can_create(folder):
            return folder
    return None


def wait_policy_settings(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The wait-policy variables to set: ``{"OMP_WAIT_POLICY": "passive"}``, or
    nothing when the user set any of :data:`WAIT_VARIABLES`."""
    env = os.environ if environ is None else environ
    if any(env.get(name) for name in WAIT_VARIABLES):
        return {}
    return {"OMP_WAIT_POLICY": WAIT_POLICY}


def configure(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the wait policy and the kernel cache folder where the user has not.

    Returns what was set (also kept in :data:`APPLIED` when ``environ`` is
    the process environment).  If numba was imported before ``tme_abm``, its
    cache setting is updated too; the wait policy then only takes effect if
    numba has not started its threads yet.
    """
    env = os.environ if environ is None else environ
    settings = wait_policy_settings(env)
    try:
        cache = choose_cache_dir(env)
    except Exception:  # never let a cache-folder check stop the import
        cache = None
    if cache is not None:
        settings["NUMBA_CACHE_DIR"] = str(cache)
    for name, value in settings.items():
        env[name] = value
    if environ is None:
        APPLIED.update(settings)
        numba_config = getattr(sys.modules.get("numba"), "config", None)
        if cache is not None and numba_config is not None:
            numba_config.CACHE_DIR = str(cache)
    return settings


def cache_location() -> str:
    """Where this process caches kernels, for messages."""
    where = os.environ.get("NUMBA_CACHE_DIR")
    if where:
        return where
    return str(package_dir() / "core" / "__pycache__")
