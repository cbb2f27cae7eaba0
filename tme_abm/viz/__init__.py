"""The browser page (Mesa SolaraViz) and the figures it draws.

``figures`` draws with matplotlib only (usable and testable without a
browser); ``interactive`` turns the page's controls into a model;
``app`` is the Solara page served by ``tme-abm viz``.
"""
