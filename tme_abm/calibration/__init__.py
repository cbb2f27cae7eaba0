"""Calibration: fit the model's parameters to measurements (``tme-abm calibrate``).

Modules, each with one job:

* :mod:`~tme_abm.calibration.spec` - the calibration file and its checks;
* :mod:`~tme_abm.calibration.summaries` - run file -> the observed quantities;
* :mod:`~tme_abm.calibration.simulate` - the model as ``(parameters, seed) -> summaries``
  (:func:`simulate`, :func:`simulate_batch`), for any inference library;
* :mod:`~tme_abm.calibration.smc` - ABC-SMC through pyabc, seeded and resumable
  (needs the ``calibrate`` extra);
* :mod:`~tme_abm.calibration.emulator` - Gaussian-process history matching
  (``method = "emulator"``; scikit-learn), and
  :mod:`~tme_abm.calibration.design_runs` - its model runs, kept in ``design.csv``;
* :mod:`~tme_abm.calibration.results` - the posterior table, intervals, trace and
  posterior predictive check, and their figures;
* :mod:`~tme_abm.calibration.command` - the command itself.

Only the first three are imported here; pyabc is imported by ``smc`` alone.
"""

from tme_abm.calibration.simulate import Simulator, replicate_seeds, simulate, simulate_batch
from tme_abm.calibration.spec import Calibration, CalibrationError, load_calibration

__all__ = [
    "Calibration",
    "CalibrationError",
    "Simulator",
    "load_calibration",
    "replicate_seeds",
    "simulate",
    "simulate_batch",
]
