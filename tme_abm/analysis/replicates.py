"""Statistics over replicate runs: the mean and its t confidence interval, and
the Welch interval and p-value of a difference of two means.

Shared by the sweep figures (:mod:`tme_abm.viz.plots`) and the validation
report (``tools/validate.py``), so both state the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def finite_values(x: Iterable[float] | np.ndarray) -> np.ndarray:
    """1-D float64 array of the finite values of ``x`` (NaN/inf dropped)."""
    a = np.asarray(x if isinstance(x, np.ndarray) else list(x), dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def mean_ci(values: Iterable[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, int]:
    """Mean and the half-width of its t confidence interval.

    Parameters
    ----------
    values
        Replicate values; NaN and infinite values are left out.
    level
        Confidence level (default 0.95).

    Returns
    -------
    tuple
        ``(mean, half_width, n)`` with ``half_width = t_{(1+level)/2, n-1} *
        s / sqrt(n)`` (``s`` the sample standard deviation); NaN half-width
        for ``n = 1``, NaN mean for ``n = 0``.
    """
    from scipy import stats

    x = finite_values(values)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, 1
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def welch_ci(a: Iterable[float], b: Iterable[float], level: float = 0.95) -> dict[str, float]:
    """Welch (unequal-variance) t interval for ``mean(a) - mean(b)``.

    ``se = sqrt(va/na + vb/nb)`` with sample variances (ddof=1), degrees of
    freedom by Welch-Satterthwaite, interval ``diff ± t_{(1+level)/2, df} se``.
    This is the interval of ``scipy.stats.ttest_ind(a, b, equal_var=False)``.

    Returns ``diff``, ``lo``, ``hi``, ``se``, ``df`` (NaN when either sample has
    fewer than 2 values; a zero-width interval when both variances are 0).
    """
    from scipy import stats

    a, b = finite_values(a), finite_values(b)
    nan = dict(diff=math.nan, lo=math.nan, hi=math.nan, se=math.nan, df=math.nan)
    if a.size < 2 or b.size < 2:
        if a.size and b.size:
            nan["diff"] = float(a.mean() - b.mean())
        return nan
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = float(math.sqrt(va + vb))
    if se == 0.0:
        return dict(diff=diff, lo=diff, hi=diff, se=0.0, df=math.inf)
    df = float((va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return dict(diff=diff, lo=diff - half, hi=diff + half, se=se, df=df)


def welch_p(a: Iterable[float], b: Iterable[float]) -> float:
    """Two-sided Welch t-test p-value (``scipy.stats.ttest_ind(equal_var=False)``).

    NaN with fewer than 2 values per sample; 0 or 1 when both samples are
    constant (different or equal means).
    """
    from scipy import stats

    a, b = finite_values(a), finite_values(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    if a.var() == 0 and b.var() == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
