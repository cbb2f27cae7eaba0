"""Gaussian-process history matching: a posterior from a few hundred runs of a slow model.

ABC-SMC keeps a run only when it lands close to the data, so most of the
runs a fit makes are thrown away; with a model that takes half a minute a
run, a converged fit takes many hours.  An emulator uses every run.  The
method, in waves:

1. run the model at a space-filling design over the prior (a scrambled
   Sobol' sequence in the prior's cumulative-probability coordinates, where
   every prior is uniform on the unit cube);
2. fit one Gaussian process per data point to the runs so far (a squared-
   exponential kernel with a length scale per parameter, plus a white-noise
   term that absorbs the model's seed-to-seed scatter; scikit-learn);
3. rule out the parameter sets whose *implausibility*,
   ``|observed - emulated| / sqrt(uncertainty^2 + emulator variance)``,
   exceeds ``cutoff`` (3: the three-sigma rule for unimodal distributions,
   Pukelsheim 1994, Am Stat 48:88) for any data point, and run the next wave
   inside what is left (history matching: Vernon, Goldstein & Bower 2010,
   Bayesian Analysis 5:619, doi:10.1214/10-BA524; Andrianakis et al. 2015,
   PLoS Comput Biol 11:e1003968);
4. after the last wave, weight a large Sobol' sample of the plausible region
   by the Gaussian likelihood of the data, with the emulator's own variance
   added to each data point's (the prior is uniform in these coordinates,
   so the likelihood is the weight), refine the sample with proposals
   fitted to it while few points carry the weight, and resample it.
   A point ruled out has one data point more than ``cutoff`` sds away, so
   its likelihood is at most exp(-cutoff^2 / 2) (0.011 at 3) of what a
   perfect match would give: the posterior is truncated to the plausible
   region, as history matching intends.

The likelihood compares the model's *expected* summary (the emulator's
mean, not one seed's value) with each observed value and its uncertainty;
the seed-to-seed scatter of single runs is reported beside it.  Before
each new wave is used, the emulator fitted to the earlier waves predicts
it: the fraction of those runs inside its 95% band is the honest check of
the emulator (:attr:`EmulatorFit.heldout`).

The Gaussian process itself is
:class:`tme_abm.analysis.emulator.SummaryEmulator` (shared with
emulator-based sensitivity analysis).  Only numpy, pandas, scipy and
scikit-learn are imported; the model runs are made by the caller's
``evaluate`` (``tme-abm calibrate`` runs them and keeps them in
``design.csv``, :mod:`tme_abm.calibration.design_runs`), so this module can
be tested on functions with known posteriors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tme_abm.analysis.emulator import SummaryEmulator
from tme_abm.calibration.spec import DataPoint, EmulatorSettings, ParameterSpec

__all__ = [
    "EmulatorFit",
    "history_match",
    "implausibility",
    "log_likelihood",
    "sobol_unit",
    "unit_columns",
    "unit_to_natural",
]


def unit_columns(d: int) -> list[str]:
    """Names of the unit-cube coordinates in a design table: ``u0 ... u{d-1}``."""
    return [f"u{j}" for j in range(d)]


def sobol_unit(d: int, n: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """The first ``n`` points of a scrambled Sobol' sequence in ``[0, 1)^d``.

    Drawn as the next power of two and cut, so scipy's balance warning does
    not apply to the full set and the first ``n`` stay a low-discrepancy prefix.
    """
    from scipy.stats import qmc

    m = max(0, math.ceil(math.log2(max(n, 1))))
    rng = np.random.default_rng(seed)
    return qmc.Sobol(d, scramble=True, seed=rng).random_base2(m)[:n]


def unit_to_natural(params: Sequence[ParameterSpec], u: np.ndarray) -> np.ndarray:
    """Parameter values (natural units) at unit-cube points (the priors' quantiles)."""
    u = np.atleast_2d(u)
    out = np.empty_like(u, dtype=float)
    for j, p in enumerate(params):
        fitted = p.scipy_rv().ppf(u[:, j])
        out[:, j] = 10.0**fitted if p.prior == "log-uniform" else fitted
    return out


def _emulate(emulators: Sequence[SummaryEmulator], u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [e.predict(u) for e in emulators]
    return np.column_stack([m for m, _ in pairs]), np.column_stack([v for _, v in pairs])


def implausibility(
    mean: np.ndarray, var: np.ndarray, observed: np.ndarray, sd: np.ndarray
) -> np.ndarray:
    """``|observed - mean| / sqrt(sd^2 + var)`` per point and data point."""
    return np.abs(observed - mean) / np.sqrt(sd**2 + var)


def log_likelihood(
    mean: np.ndarray, var: np.ndarray, observed: np.ndarray, sd: np.ndarray
) -> np.ndarray:
    """Gaussian log-likelihood of the data, the emulator's variance added to each point's."""
    total = sd**2 + var
    return -0.5 * np.sum((observed - mean) ** 2 / total + np.log(2 * np.pi * total), axis=1)


def _heldout(
    emulators: Sequence[SummaryEmulator], keys: list[str], done: pd.DataFrame, ucols: list[str]
) -> pd.DataFrame:
    """The earlier emulators' prediction of a new wave's runs, noise included."""
    mean, var = _emulate(emulators, done[ucols].to_numpy())
    noise = np.array([e.noise_var for e in emulators])
    n = len(done)
    check = pd.DataFrame(
        {
            "wave": np.repeat(done["wave"].to_numpy(), len(keys)),
            "run": np.repeat(done["run"].to_numpy(), len(keys)),
            "key": np.tile(keys, n),
            "simulated": done[keys].to_numpy(float).ravel(),
            "emulated": mean.ravel(),
            "emulated_sd": np.sqrt(var + noise).ravel(),
        }
    )
    check["inside95"] = np.abs(check.simulated - check.emulated) <= 1.96 * check.emulated_sd
    return check[np.isfinite(check.simulated)].reset_index(drop=True)


def _padded_box(
    points: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of ``points`` widened by 5% of the old box, inside the unit cube."""
    pad = 0.05 * (hi - lo)
    return np.maximum(points.min(axis=0) - pad, 0.0), np.minimum(points.max(axis=0) + pad, 1.0)


def _importance_sample(
    emulators: Sequence[SummaryEmulator],
    params: Sequence[ParameterSpec],
    observed: np.ndarray,
    sd: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    settings: EmulatorSettings,
    seed: int,
) -> tuple[pd.DataFrame, float]:
    """Likelihood-weighted prior sample inside the plausible box, resampled to ``draws``.

    Every prior is uniform in the unit cube, so points spread uniformly over
    the box need only the likelihood as weight.  A posterior along a ridge
    fills little of any box, so while the effective sample size is below
    ``draws / 4`` (at most three times) the next sample comes from a
    multivariate t (5 degrees of freedom) with the weighted mean and twice
    the weighted covariance of the last one, and each point's weight is its
    likelihood over that proposal's density (adaptive importance sampling,
    as in population Monte Carlo: Cappé et al. 2004, J Comput Graph Stat
    13:907); points outside the unit cube have prior 0 and are dropped.
    """
    from scipy.stats import multivariate_t

    d = len(params)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    cand = lo + (hi - lo) * sobol_unit(d, settings.samples, np.random.SeedSequence([seed, 5000]))
    log_q = np.zeros(len(cand))
    for stage in range(4):
        mean, var = _emulate(emulators, cand)
        loglik = log_likelihood(mean, var, observed, sd)
        log_w = loglik - log_q
        w = np.exp(log_w - log_w.max())
        ess = float(w.sum() ** 2 / np.sum(w**2))
        if ess >= settings.draws / 4 or stage == 3:
            break
        centre = np.average(cand, axis=0, weights=w)
        cov = np.atleast_2d(np.cov(cand.T, aweights=w)) * 2.0 + 1e-10 * np.eye(d)
        proposal = multivariate_t(loc=centre, shape=cov, df=5, seed=rng)
        new = np.atleast_2d(proposal.rvs(size=settings.samples))
        new = new[((new >= 0.0) & (new < 1.0)).all(axis=1)]
        if len(new) < 2 * d:
            break
        cand, log_q = new, proposal.logpdf(new)
    rng_resample = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    idx = _systematic_resample(w, settings.draws, rng_resample)
    natural = unit_to_natural(params, cand[idx])
    posterior = pd.DataFrame({"particle": np.arange(len(idx)), "weight": 1.0 / len(idx)})
    for j, p in enumerate(params):
        posterior[p.name] = natural[:, j]
    posterior["log_likelihood"] = loglik[idx]
    return posterior, ess


def _systematic_resample(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return np.searchsorted(cdf, (rng.random() + np.arange(n)) / n)


@dataclass
class EmulatorFit:
    """What :func:`history_match` found.

    Attributes
    ----------
    runs
        Every model run: wave, run, seed, unit coordinates, parameter values,
        summaries.
    waves
        Per wave: runs, the fraction of the prior still plausible after it,
        and the held-out check of the previous emulator on its runs.
    heldout
        Per run of waves 1+ and data point: simulated value, the earlier
        emulator's mean and sd (noise included), inside its 95% band.
    posterior
        ``draws`` rows resampled by likelihood weight (``weight`` equal), in
        natural units, the format of :func:`tme_abm.calibration.results.credible_intervals`.
    emulators
        The final Gaussian process per data point (table: noise sd, length scales).
    ess
        Kish's effective sample size of the importance weights before resampling.
    reason
        Why it stopped.
    """

    runs: pd.DataFrame
    waves: pd.DataFrame
    heldout: pd.DataFrame
    posterior: pd.DataFrame
    emulators: pd.DataFrame
    ess: float
    reason: str


def history_match(
    params: Sequence[ParameterSpec],
    points: Sequence[DataPoint],
    settings: EmulatorSettings,
    seed: int,
    evaluate: Callable[[pd.DataFrame], pd.DataFrame],
    say: Callable[[str], None] | None = None,
) -> EmulatorFit:
    """Run the waves, fit the emulators and weight the prior by the data.

    Parameters
    ----------
    params, points, settings, seed
        The calibration's parameters, data points, ``[emulator]`` settings and seed.
    evaluate
        Takes a design table (``wave``, ``run``, ``seed``, ``u0...``, one column
        per parameter in natural units) and returns it with one column per
        data point's key (``quantity@<time>d``) holding the model's summary;
        non-finite values are allowed (left out of that summary's emulator).
    say
        Progress lines.
    """
    say = say or (lambda _line: None)
    d = len(params)
    ucols = unit_columns(d)
    names = [p.name for p in params]
    keys = [pt.key for pt in points]
    observed = np.array([pt.value for pt in points], float)
    sd = np.array([pt.uncertainty for pt in points], float)
    lo, hi = np.zeros(d), np.ones(d)  # the box that holds the plausible region
    plausible_volume = 1.0
    next_u = sobol_unit(d, settings.design, np.random.SeedSequence([seed, 3]))
    wave_runs = settings.wave_runs or settings.design

    runs = pd.DataFrame()
    heldout: list[pd.DataFrame] = []
    wave_rows: list[dict] = []
    emulators: list[SummaryEmulator] = []
    reason = f"{settings.waves} wave(s)"
    for wave in range(settings.waves):
        if wave > 0 and len(next_u) == 0:
            reason = (
                f"no plausible parameter set left after wave {wave - 1} "
                f"(every point has an implausibility above {settings.cutoff:g})"
            )
            break
        u = next_u
        n = len(u)
        seeds = [
            int(c.generate_state(1, dtype=np.uint32)[0])
            for c in np.random.SeedSequence([seed, 1000 + wave]).spawn(n)
        ]
        design = pd.DataFrame({"wave": wave, "run": np.arange(n), "seed": seeds})
        for j, c in enumerate(ucols):
            design[c] = u[:, j]
        natural = unit_to_natural(params, u)
        for j, name in enumerate(names):
            design[name] = natural[:, j]
        say(f"wave {wave}: {n} run(s)")
        done = evaluate(design)
        missing = [k for k in keys if k not in done]
        if missing:
            raise KeyError(f"evaluate returned no column for {', '.join(missing)}")
        coverage = math.nan
        if emulators:
            check = _heldout(emulators, keys, done, ucols)
            heldout.append(check)
            coverage = float(check.inside95.mean()) if len(check) else math.nan
        runs = pd.concat([runs, done], ignore_index=True)
        emulators = [
            SummaryEmulator(seed + k).fit(runs[ucols].to_numpy(), runs[key].to_numpy(float))
            for k, key in enumerate(keys)
        ]
        # the plausible region under the emulators of every run so far
        cand = lo + (hi - lo) * sobol_unit(
            d, settings.samples, np.random.SeedSequence([seed, 2000 + wave])
        )
        mean, var = _emulate(emulators, cand)
        ok = implausibility(mean, var, observed, sd).max(axis=1) < settings.cutoff
        plausible_volume = float(np.prod(hi - lo) * ok.mean())
        next_u = cand[ok][:wave_runs]  # the first in Sobol' order: a space-filling subset
        if ok.any():
            lo, hi = _padded_box(cand[ok], lo, hi)
        wave_rows.append(
            {
                "wave": wave,
                "runs": n,
                "total_runs": len(runs),
                "plausible_fraction": plausible_volume,
                "heldout_inside95": coverage,
            }
        )
        say(
            f"wave {wave}: {plausible_volume:.3g} of the prior still plausible"
            + (
                ""
                if math.isnan(coverage)
                else f"; {coverage:.0%} of its runs inside the earlier emulator's 95% band"
            )
        )

    posterior, ess = _importance_sample(emulators, params, observed, sd, lo, hi, settings, seed)
    table = pd.DataFrame(
        [
            {
                "key": key,
                "runs": e.runs,
                "noise_sd": math.sqrt(e.noise_var),
                **{f"length_scale_{n}": ls for n, ls in zip(names, e.length_scales, strict=True)},
            }
            for key, e in zip(keys, emulators, strict=True)
        ]
    )
    say(f"posterior: effective sample size {ess:.0f} of {settings.samples} weighted points")
    return EmulatorFit(
        runs=runs,
        waves=pd.DataFrame(wave_rows),
        heldout=pd.concat(heldout, ignore_index=True) if heldout else pd.DataFrame(),
        posterior=posterior,
        emulators=table,
        ess=ess,
        reason=reason,
    )
