"""Neural posterior estimation (sbi) on tme_abm, through tme_abm.simulate_batch.

The shipped calibration ``tumour_growth`` names the model, its two fitted
parameters (log-uniform priors) and the observed data; here sbi's NPE
(Greenberg et al. 2019, ICML) replaces pyabc's ABC-SMC.  Simulations run on
the process pool of ``tme-abm sweep`` (``workers``), each with its own seed
from one SeedSequence, so the training set is the same whatever the worker
count.

    pip install sbi            # brings PyTorch; not a tme_abm dependency
    python docs/calibration/sbi_example.py --simulations 300

One simulation of the 60 x 60, 3-day model takes ~1.4 s of one core here, so
300 take ~4 minutes on 2 cores.  Checked with sbi 0.27.0 and PyTorch 2.13 (CPU).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from sbi.inference import NPE
from sbi.utils import BoxUniform

import tme_abm
from tme_abm.calibration import load_calibration
from tme_abm.scenario.library import find


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulations", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    calibration = load_calibration(find("tumour_growth", "calibration"))
    params = calibration.spec.parameters  # log-uniform: fit log10 of each
    low = torch.tensor([math.log10(p.low) for p in params])
    high = torch.tensor([math.log10(p.high) for p in params])
    prior = BoxUniform(low=low, high=high)

    torch.manual_seed(0)
    theta = prior.sample((args.simulations,))
    parameter_sets = [
        {p.name: 10.0 ** float(v) for p, v in zip(params, row, strict=True)} for row in theta
    ]
    runs = tme_abm.simulate_batch(
        parameter_sets, calibration=calibration, entropy=0, workers=args.workers
    )
    keys = [pt.key for pt in calibration.data]  # quantity@<day>d, the observed points
    x = torch.tensor([[r[k] for k in keys] for r in runs], dtype=torch.float32)
    ok = torch.isfinite(x).all(dim=1)
    print(f"{int(ok.sum())} of {len(x)} simulations have every summary finite")

    inference = NPE(prior=prior)
    inference.append_simulations(theta[ok], x[ok]).train()
    posterior = inference.build_posterior()
    x_o = torch.tensor([pt.value for pt in calibration.data], dtype=torch.float32)
    samples = posterior.sample((4000,), x=x_o).numpy()
    for i, p in enumerate(params):
        lo, med, hi = 10.0 ** np.quantile(samples[:, i], [0.05, 0.5, 0.95])
        print(
            f"{p.name:<18} median {med:.3g}  90% CI {lo:.3g} - {hi:.3g}  "
            f"(prior {p.low:g} - {p.high:g})"
        )


if __name__ == "__main__":
    main()
