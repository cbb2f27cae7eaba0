"""How ``tme-abm viz`` starts Solara: its command line and environment.

Kept apart from the page (no Solara import), so the command can build and
check both before it becomes the server, and tests can read them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from tme_abm.viz.slots import MAX_MODELS_ENV

#: Environment variable through which ``tme-abm viz SCENARIO`` names the start scenario.
SCENARIO_ENV = "TME_ABM_VIZ_SCENARIO"
#: Environment variables through which ``tme-abm viz --from-run RUN --day D``
#: opens every new tab at a checkpoint of a run file.
FROM_RUN_ENV = "TME_ABM_VIZ_FROM_RUN"
FROM_DAY_ENV = "TME_ABM_VIZ_FROM_DAY"
#: Environment variable through which ``tme-abm viz RUN.h5`` names the run file to replay.
REPLAY_ENV = "TME_ABM_VIZ_REPLAY"
#: The page Solara serves.
APP = Path(__file__).resolve().parent / "app.py"
#: How long a tab's model outlives a lost connection (Solara's default is 24 h,
#: which would hold a model slot for a day after a browser crash); a closed
#: tab gives its slot back at once.  ``SOLARA_KERNEL_CULL_TIMEOUT`` overrides it.
CULL_TIMEOUT = "5m"


def solara_command(host: str, port: int) -> list[str]:
    """The ``solara run`` command line serving the page.

    ``--no-check-version`` stops Solara from asking PyPI for its newest
    release at start and printing "New version of Solara available ...
    Please upgrade": the network is not used at run time, and the project
    pins Solara on purpose (see ``pyproject.toml``).
    """
    return [sys.executable, "-m", "solara", "run", str(APP), "--host", host,
            "--port", str(port), "--no-open", "--no-check-version"]


def server_environment(
    environ: Mapping[str, str],
    scenario: Path | None,
    max_models: int,
    from_run: Path | None = None,
    from_day: float | None = None,
    replay: Path | None = None,
) -> dict[str, str]:
    """The server's environment: ``environ`` plus the page's settings.

    Parameters
    ----------
    environ
        The environment to start from (``os.environ``).
    scenario
        The scenario file the page opens with and adds to its list (None:
        the shipped baseline).
    max_models
        Most tabs holding a model at once.
    from_run, from_day
        Open each tab's first model at this run file's checkpoint nearest
        ``from_day`` (None: the latest); Reset then builds from the controls.
    replay
        Serve the replay of this run file instead of a live model.
    """
    env = dict(environ)
    for key in (SCENARIO_ENV, FROM_RUN_ENV, FROM_DAY_ENV, REPLAY_ENV):
        env.pop(key, None)
    if replay is not None:
        env[REPLAY_ENV] = str(replay.resolve())
    if from_run is not None:
        env[FROM_RUN_ENV] = str(from_run.resolve())
        if from_day is not None:
            env[FROM_DAY_ENV] = repr(float(from_day))
    if scenario is not None:
        env[SCENARIO_ENV] = str(scenario.resolve())
    env[MAX_MODELS_ENV] = str(max_models)
    # Solara sends usage events to Mixpanel unless told not to: no network at run time
    env["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] = "False"
    env.setdefault("SOLARA_KERNEL_CULL_TIMEOUT", CULL_TIMEOUT)
    # Solara's rules-of-hooks lint is for a page's developer: on every first draw
    # it warned about Mesa 3.3's ComponentsView (a hook after an early return),
    # which is Mesa's code; tests/test_viz.py runs our components with it on
    env.setdefault("SOLARA_CHECK_HOOKS", "off")
    return env
