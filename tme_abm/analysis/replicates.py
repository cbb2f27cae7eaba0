"""Statistics over replicate runs: the mean and its t confidence interval.

Shared by the sweep figures (:mod:`tme_abm.viz.plots`) and the validation
report (``tools/validate.py``), so both state the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


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

    x = np.asarray(values if isinstance(values, np.ndarray) else list(values),
                   dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, 1
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n
