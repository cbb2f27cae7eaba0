"""The interpolation behind tools/calibrate_mdsc.py, on shares with a known answer."""

from __future__ import annotations

import math

import numpy as np
from tool_loader import load_tool


def _tool():
    return load_tool("calibrate_mdsc")


def _share(log_rate):
    return 1.0 / (1.0 + np.exp(-(2.0 + 1.5 * log_rate)))  # logit linear in log10(rate)


def test_recovers_the_rate_where_logit_share_is_linear():
    tool = _tool()
    lr = np.repeat([-4.5, -4.0, -3.5, -3.0], 3)
    target = float(_share(np.array(-3.8)))
    assert math.isclose(tool.fit_rate(lr, _share(lr), target), -3.8, rel_tol=1e-9)


def test_uses_the_bracketing_means_only():
    tool = _tool()
    lr = np.repeat([-4.0, -3.0, -2.0], 2)
    share = np.array([0.05, 0.05, 0.10, 0.10, 0.50, 0.50])
    x = tool.fit_rate(lr, share, 0.08)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    expected = -4.0 + (logit(0.08) - logit(0.05)) / (logit(0.10) - logit(0.05))
    assert math.isclose(x, expected, rel_tol=1e-12)


def test_target_outside_the_grid_gives_nan():
    tool = _tool()
    lr = np.repeat([-4.0, -3.0], 2)
    share = np.array([0.05, 0.06, 0.10, 0.11])
    assert math.isnan(tool.fit_rate(lr, share, 0.3))
