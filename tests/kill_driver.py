"""Run ``tme-abm ARGS...`` and SIGKILL the process just before its K-th write.

``KILL_AT=K python tests/kill_driver.py run ...``: every HDF5 write the run
file sees (a dataset write or resize, a flush, a group created, moved, copied
or deleted) and the final ``os.replace`` counts as one operation; the process
kills itself with SIGKILL just before operation K, as a crash or ``kill -9``
would. ``KILL_AT=0`` kills nothing and prints ``OPS <count>`` on stderr, so a
test can spread K over a whole run: its first snapshot, every commit, the
final rename.
"""

from __future__ import annotations

import os
import signal
import sys

import h5py

KILL_AT = int(os.environ.get("KILL_AT", "0"))
_count = 0


def _counted(fn):
    def wrapped(*args, **kwargs):
        global _count
        _count += 1
        if _count == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)

    return wrapped


for _cls, _names in (
    (h5py.Dataset, ("__setitem__", "resize")),
    (h5py.File, ("flush",)),
    (h5py.Group, ("move", "__delitem__", "create_dataset", "copy", "create_group")),
):
    for _name in _names:
        setattr(_cls, _name, _counted(getattr(_cls, _name)))
os.replace = _counted(os.replace)

if __name__ == "__main__":
    from tme_abm.cli import main

    rc = main(sys.argv[1:])
    if KILL_AT == 0:
        print(f"OPS {_count}", file=sys.stderr)
    sys.exit(rc)
