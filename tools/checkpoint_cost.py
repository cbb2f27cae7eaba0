"""What the restart checkpoint costs in a run file: size, growth per snapshot, unused bytes.

Runs a scenario (with ``--set`` overrides), records the ``.partial`` file's
size after every snapshot, and at the end splits the finished file into
snapshot data, checkpoint data (``/checkpoint`` and kept ``/checkpoints``)
and the rest (unused space and HDF5 metadata). Prints one JSON object.

    python tools/checkpoint_cost.py baseline_3d \\
        --set domain.duration_days=0.041666666666666664 --set output.snapshot_every_min=15
"""

from __future__ import annotations

import argparse
import json
import os
import time
from itertools import pairwise
from pathlib import Path

import h5py

from tme_abm.runner import run_scenario
from tme_abm.scenario import load_scenario
from tme_abm.scenario.library import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", help="scenario file or shipped name")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default="output/checkpoint_cost.h5")
    args = parser.parse_args()
    loaded = load_scenario(resolve(args.scenario), args.overrides)
    out = Path(args.out)
    out.unlink(missing_ok=True)
    partial = out.with_name(out.name + ".partial")
    sizes: list[int] = []

    def on_tick(model) -> None:
        size = os.path.getsize(partial)
        if not sizes or size != sizes[-1]:
            sizes.append(size)

    start = time.perf_counter()
    result = run_scenario(loaded, out, progress=False, on_tick=on_tick)
    wall = time.perf_counter() - start
    stored = {"snapshot": 0, "checkpoint": 0}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            key = "checkpoint" if name.startswith("checkpoint") else "snapshot"
            stored[key] += obj.id.get_storage_size()

    with h5py.File(out) as f:
        f.visititems(visit)
    size = out.stat().st_size
    print(json.dumps({
        "scenario": args.scenario,
        "overrides": args.overrides,
        "snapshots": result.snapshots,
        "file_bytes": size,
        "snapshot_data_bytes": stored["snapshot"],
        "checkpoint_bytes": stored["checkpoint"],
        "unused_and_metadata_bytes": size - stored["snapshot"] - stored["checkpoint"],
        "file_growth_per_snapshot_bytes": [b - a for a, b in pairwise(sizes)],
        "wall_s": round(wall, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
