"""The engine: numba kernels and the arrays they work on.

Nothing in ``tme_abm.core`` imports from ``tme_abm.model``, ``tme_abm.io``,
``tme_abm.viz`` or Mesa; the rest of the package builds on it.
"""
