"""Regenerate the README's figures from a baseline run file.

Usage::

    tme-abm run baseline                         # writes output/baseline.h5
    python tools/readme_figures.py output/baseline.h5

Writes ``docs/img/baseline.png``: the lattice coloured by cell type, the
IL-6 and chemokine maps at the last snapshot, and cell counts over time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from tme_abm.io import cell_type_labels  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/img/baseline.png"))
    args = ap.parse_args()
    with h5py.File(args.run, "r") as f:
        labels = cell_type_labels(f["lattice/cell_type"])  # code -> name, -1 "empty"
        names = [labels[code] for code in range(len(labels) - 1)]
        colours = f.attrs["cell_type_colours"].split()
        t_days = f["time"][-1] / 1440.0
        lattice = f["lattice/cell_type"][-1]
        il6 = f["fields/il6"][-1]
        chemokine = f["fields/chemokine"][-1]
        site_um = float(f["x"][1] - f["x"][0])
        ts_t = f["timeseries/tick_time"][:] / 1440.0
        counts = {n: f[f"timeseries/count_{n}"][:] for n in names}
    extent = [0, lattice.shape[1] * site_um / 1000, 0, lattice.shape[0] * site_um / 1000]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4), constrained_layout=True)
    cmap = ListedColormap(["#ffffff", *colours])
    axes[0].imshow(lattice + 1, cmap=cmap, vmin=0, vmax=len(names), origin="lower",
                   extent=extent, interpolation="nearest")
    axes[0].set_title(f"cells at day {t_days:g}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    axes[0].legend(handles, names, fontsize=7, loc="upper left", framealpha=0.8)
    for ax, field, label in ((axes[1], il6, "IL-6"), (axes[2], chemokine, "CXCL9/10")):
        im = ax.imshow(field, origin="lower", extent=extent, cmap="magma")
        fig.colorbar(im, ax=ax, shrink=0.85, label="ng/mL")
        ax.set_title(f"{label} at day {t_days:g}")
    for ax in axes[:3]:
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    for n, c in zip(names, colours, strict=True):
        axes[3].plot(ts_t, counts[n], color=c, label=n)
    axes[3].set_yscale("log")
    axes[3].set_xlabel("time (days)")
    axes[3].set_ylabel("cells")
    axes[3].set_title("cell counts")
    axes[3].legend(fontsize=7, ncol=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
