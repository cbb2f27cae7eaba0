"""A Gaussian-process emulator of one model output over the unit cube.

A run of the model is slow and noisy; an emulator is a fast statistical
stand-in for the *expected* output as a function of the parameters, with
its own uncertainty.  :class:`SummaryEmulator` is scikit-learn's
``GaussianProcessRegressor`` with a constant times a squared-exponential
kernel (one length scale per parameter) plus a white-noise term that absorbs
the run-to-run scatter of a stochastic model (Rasmussen & Williams 2006,
Gaussian Processes for Machine Learning, ch. 2 and 5).  Inputs are unit-cube
coordinates (each parameter's prior quantile, or its position between low
and high); the caller maps its parameters there.

Used by calibration (:mod:`tme_abm.calibration.emulator`, history matching)
and by sensitivity analysis of space-filling sweeps
(:mod:`tme_abm.batch.sensitivity`).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["SummaryEmulator"]

#: Rows predicted at once (keeps the cross-kernel matrix small).
_CHUNK = 8192


class SummaryEmulator:
    """A Gaussian process of one summary over the unit cube.

    Parameters
    ----------
    seed
        For the optimiser's restarts (the fit is deterministic given it).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.gp = None
        self.runs = 0

    def fit(self, u: np.ndarray, y: np.ndarray) -> SummaryEmulator:
        """Fit to the runs with a finite value; needs at least three of them."""
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        keep = np.isfinite(y)
        u, y = np.asarray(u, float)[keep], np.asarray(y, float)[keep]
        if y.size < 3:
            raise ValueError(f"{y.size} run(s) with a finite value; an emulator needs 3")
        d = u.shape[1]
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(
            length_scale=np.full(d, 0.5), length_scale_bounds=(0.02, 50.0)
        ) + WhiteKernel(0.1, (1e-8, 2.0))
        self.gp = GaussianProcessRegressor(
            kernel=kernel, normalize_y=True, n_restarts_optimizer=3, random_state=self.seed
        )
        with warnings.catch_warnings():
            # a length scale at its bound (a parameter the summary ignores) is an answer
            warnings.simplefilter("ignore", category=UserWarning)
            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", category=ConvergenceWarning)
            self.gp.fit(u, y)
        self.runs = int(y.size)
        return self

    @property
    def noise_var(self) -> float:
        """The fitted seed-to-seed variance of one run's value (natural units)."""
        return float(self.gp.kernel_.k2.noise_level * self.gp._y_train_std**2)

    @property
    def length_scales(self) -> np.ndarray:
        """Fitted length scale per parameter, in unit-cube coordinates."""
        return np.atleast_1d(self.gp.kernel_.k1.k2.length_scale).astype(float)

    def predict(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Emulated expected value and its variance (without the run-to-run noise)."""
        u = np.atleast_2d(np.asarray(u, float))
        mean = np.empty(len(u))
        var = np.empty(len(u))
        for a in range(0, len(u), _CHUNK):
            m, s = self.gp.predict(u[a : a + _CHUNK], return_std=True)
            mean[a : a + _CHUNK] = m
            var[a : a + _CHUNK] = s**2
        floor = 1e-12 * float(self.gp._y_train_std) ** 2
        return mean, np.maximum(var - self.noise_var, floor)

    def loo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Leave-one-out predictions of the training runs, hyperparameters held fixed.

        Returns ``(y, mean, var)``: each run's value, its prediction from all
        the other runs and that prediction's variance (noise included), from
        the closed form of Rasmussen & Williams 2006, eq. 5.12.
        """
        from scipy.linalg import cho_solve

        gp = self.gp
        k_inv = cho_solve((gp.L_, True), np.eye(gp.L_.shape[0]))
        diag = np.diag(k_inv)
        scale = float(gp._y_train_std)
        y_norm = gp.y_train_.ravel() if gp.y_train_.ndim > 1 else gp.y_train_
        mean_norm = y_norm - gp.alpha_.ravel() / diag
        y = y_norm * scale + float(gp._y_train_mean)
        return y, mean_norm * scale + float(gp._y_train_mean), scale**2 / diag

    def q2(self) -> float:
        """Leave-one-out predictive R^2 of single runs (1 - PRESS / total sum of squares).

        The run-to-run scatter caps it at about ``1 - noise share``.
        """
        y, mean, _ = self.loo()
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - mean) ** 2)) / total if total > 0 else float("nan")

    def noise_share(self) -> float:
        """The share of the runs' variance that is run-to-run scatter (fitted noise)."""
        y, _, _ = self.loo()
        total = float(np.var(y))
        return min(1.0, self.noise_var / total) if total > 0 else float("nan")
