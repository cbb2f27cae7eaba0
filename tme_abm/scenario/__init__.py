"""The input side: scenario schema, TOML loading, ``--set`` overrides, compilation."""

from tme_abm.scenario.compile import compile_scenario
from tme_abm.scenario.load import (
    LoadedScenario,
    ScenarioError,
    apply_overrides,
    default_output_path,
    load_scenario,
    validate_data,
)
from tme_abm.scenario.schema import Scenario

__all__ = [
    "LoadedScenario",
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "compile_scenario",
    "default_output_path",
    "load_scenario",
    "validate_data",
]
