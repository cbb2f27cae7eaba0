"""The README's tissue example: a real section, a week with and without a STAT3
inhibitor, the same squidpy statistics on all three.

Usage (needs the scverse extra)::

    tme-abm run tissue_section --out output/section.h5
    tme-abm run tissue_section_stat3_inhibitor --out output/section_inhibitor.h5
    python tools/tissue_example.py output/section.h5 output/section_inhibitor.h5

Writes ``docs/img/tissue_example.png`` (the section and both runs at day 7,
coloured by cell type, over squidpy's neighbourhood-enrichment z-scores of
each) and ``docs/img/tissue_compare.png`` (``tme-abm compare`` of the
untreated run with the section), and prints the numbers the README quotes.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tme_abm.io import read_run_info
from tme_abm.scenario.library import find
from tme_abm.tissue import compare_tissue, table_to_anndata, to_anndata
from tme_abm.viz.tissue_plots import plot_comparison

RADIUS_UM = 30.0  # neighbours: within 30 um (the 8 Moore neighbours on the 20 um lattice)


def _enrichment(adata) -> np.ndarray:
    import squidpy as sq

    if hasattr(sq.gr, "spatial_neighbors_radius"):
        sq.gr.spatial_neighbors_radius(adata, radius=RADIUS_UM)
    else:  # squidpy < 1.8
        sq.gr.spatial_neighbors(adata, coord_type="generic", radius=RADIUS_UM)
    sq.gr.nhood_enrichment(adata, cluster_key="cell_type", seed=0, n_perms=300,
                           show_progress_bar=False)
    return adata.uns["cell_type_nhood_enrichment"]["zscore"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="tissue_section run file")
    ap.add_argument("treated", type=Path, help="tissue_section_stat3_inhibitor run file")
    ap.add_argument("--day", type=float, default=7.0)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    spec = find("tissue_section", "scenario")
    info = read_run_info(args.run)
    colours = dict(zip(info["cell_types"], str(info["attrs"]["cell_type_colours"]).split(),
                       strict=True))
    panels = [("section (CyCIF)", table_to_anndata(spec, colours)),
              (f"model, day {args.day:g}", to_anndata(args.run, args.day)),
              (f"+ STAT3 inhibitor, day {args.day:g}", to_anndata(args.treated, args.day))]
    order = [t for t in info["cell_types"]
             if all(t in set(a.obs["cell_type"].astype(str)) for _, a in panels)]
    fig = Figure(figsize=(13.5, 9.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    for k, (title, adata) in enumerate(panels):
        z = _enrichment(adata)
        cats = list(adata.obs["cell_type"].cat.categories)
        idx = [cats.index(t) for t in order]
        ax = axes[0, k]
        xy = adata.obsm["spatial"] / 1000.0
        types = adata.obs["cell_type"].astype(str).to_numpy()
        for t in info["cell_types"]:
            sel = types == t
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=2.0, c=colours[t], label=t, linewidths=0)
        ax.set_aspect("equal")
        ax.set_title(f"{title}: {adata.n_obs} cells", fontsize=10)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        im = axes[1, k].imshow(z[np.ix_(idx, idx)], cmap="RdBu_r", vmin=-20, vmax=20)
        axes[1, k].set_xticks(range(len(order)), order, rotation=90, fontsize=8)
        axes[1, k].set_yticks(range(len(order)), order, fontsize=8)
        axes[1, k].set_title("neighbourhood enrichment (squidpy z-score)", fontsize=9)
        t = order.index("tumour") if "tumour" in order else None
        c = order.index("cd8") if "cd8" in order else None
        if t is not None and c is not None:
            print(f"{title}: tumour-tumour z {z[idx[t], idx[t]]:.1f}, tumour-CD8 z "
                  f"{z[idx[t], idx[c]]:.1f}, CD8-CD8 z {z[idx[c], idx[c]]:.1f}")
    axes[0, 2].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                      markerscale=4, frameon=False)
    fig.colorbar(im, ax=axes[1, :], shrink=0.6, label="z-score")
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "tissue_example.png", facecolor="white")
    frame, _ = compare_tissue(args.run, spec, args.day)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    plot_comparison(frame, args.out / "tissue_compare.png", tissue_name="CyCIF section",
                    run_name=f"{args.run.name}, day {args.day:g}")
    print(f"wrote {args.out / 'tissue_example.png'} and {args.out / 'tissue_compare.png'}")


if __name__ == "__main__":
    main()
