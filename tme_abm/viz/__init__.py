"""The browser page (Mesa SolaraViz), its pictures, and the PNG figures of runs.

``raster`` makes the page's pictures from arrays; ``frames`` reads what the
page shows from a live model or a run file's snapshot; ``series`` thins the
time series; ``panels`` puts pictures, legends and colour bars together;
``params`` lists scenario parameters by dotted key and saves scenarios
(all usable and testable without a browser).  ``interactive`` turns the
page's controls into a model; ``app`` is the Solara page served by
``tme-abm viz``; ``figures`` and ``plots`` draw the matplotlib figures of
``tme-abm plot``.
"""
