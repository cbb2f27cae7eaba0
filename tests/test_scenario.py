"""Scenario validation: every bad input is reported with its key path and what is allowed.

No model runs here: these tests only load, override and validate scenario data.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tme_abm.scenario import (
    LoadedScenario,
    Scenario,
    ScenarioError,
    apply_overrides,
    load_scenario,
    validate_data,
)
from tme_abm.scenario.library import examples_dir

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.toml"
SCENARIOS = sorted(examples_dir().glob("*.toml"))
TYPES = "tumour, cd8, cd8_exhausted"
FIELDS = "il6, chemokine"


def tiny() -> dict[str, Any]:
    """tests/data/tiny.toml as raw data (a fresh copy each call)."""
    return tomllib.loads(TINY.read_text(encoding="utf-8"))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dump_toml(data: dict[str, Any]) -> str:
    """Minimal TOML writer (one inline value per top-level key); enough for scenario data."""
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in data.items())


def problems_of(exc: ScenarioError) -> dict[str, str]:
    return dict(exc.problems)


def assert_problem(exc: ScenarioError, path: str, *needles: str) -> None:
    """``exc`` lists a problem at exactly ``path`` whose message contains every needle."""
    found = problems_of(exc)
    assert path in found, f"no problem at {path!r}; got {exc.problems}"
    for needle in needles:
        assert needle in found[path], f"{needle!r} not in message {found[path]!r}"


def check_invalid(data: dict[str, Any], tmp_path: Path, path: str, *needles: str) -> None:
    """Both validate_data and load_scenario (via a TOML file) report the problem."""
    with pytest.raises(ScenarioError) as info:
        validate_data(copy.deepcopy(data), "case.toml")
    assert info.value.source == "case.toml"
    assert_problem(info.value, path, *needles)

    f = tmp_path / "case.toml"
    f.write_text(dump_toml(data), encoding="utf-8")
    assert tomllib.loads(f.read_text(encoding="utf-8")) == data  # the dumper round-trips
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert info.value.source == str(f)
    assert_problem(info.value, path, *needles)
    # the formatted error has one line per problem, each naming the file and the key
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems)
    assert any(line.startswith(f"{f}: {path}: ") for line in lines)


def test_tiny_and_dumper_are_valid(tmp_path: Path) -> None:
    sc = validate_data(tiny(), "tiny")
    assert isinstance(sc, Scenario)
    assert sc.name == "tiny" and sc.n_ticks == 144
    f = tmp_path / "copy.toml"
    f.write_text(dump_toml(tiny()), encoding="utf-8")
    assert load_scenario(f).scenario == sc


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets a dotted key (list items by index)."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _dup_rule(saturation: float) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data["rules"].append(
            dict(data["rules"][0], signal="il6", half_max=0.3, saturation=saturation)
        )

    return mutate


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str, tuple[str, ...]]] = {
    "unknown top-level key": (
        _set("colour", "red"),
        "colour",
        ("unknown key", "allowed here: name, description, seed, domain, fields, cell_types"),
    ),
    "unknown key in domain": (
        _set("domain.site_size", 20),
        "domain.site_size",
        ("unknown key", "shape, site_um, dt_min, duration_days"),
    ),
    "unknown key in a field": (
        _set("fields.il6.diffusion", 1.0),
        "fields.il6.diffusion",
        ("diffusion_um2_per_min", "half_life_min", "boundary"),
    ),
    "unknown key in a rule": (
        _set("rules.1.behavior", "kill"),
        "rules.1.behavior",
        ("cell_type, signal, direction, behaviour, saturation, half_max",),
    ),
    "unknown key in a stat3 input": (
        _set("cell_types.tumour.stat3.inputs.0.weigth", 2.0),
        "cell_types.tumour.stat3.inputs.0.weigth",
        ("field, weight, half_max_ng_per_ml, hill_power, socs3_sensitive",),
    ),
    "unknown key in a cell type's stat3": (
        _set("cell_types.cd8.stat3.k_on", 0.1),
        "cell_types.cd8.stat3.k_on",
        ("activation_rate_per_min", "deactivation_rate_per_min", "knockout"),
    ),
    "string where a number is expected": (
        _set("fields.il6.diffusion_um2_per_min", "fast"),
        "fields.il6.diffusion_um2_per_min",
        ("valid number", "'fast'"),
    ),
    "string where an int list is expected": (
        _set("domain.shape", "40x40"),
        "domain.shape",
        ("valid list", "'40x40'"),
    ),
    "list where a table is expected": (
        _set("domain", [40, 40]),
        "domain",
        ("valid dictionary",),
    ),
    "list where a nested table is expected": (
        _set("cell_types.cd8.recruitment", [1e-3]),
        "cell_types.cd8.recruitment",
        ("valid dictionary",),
    ),
    "negative diffusion": (
        _set("fields.il6.diffusion_um2_per_min", -1.0),
        "fields.il6.diffusion_um2_per_min",
        ("greater than or equal to 0", "-1"),
    ),
    "zero site_um": (_set("domain.site_um", 0), "domain.site_um", ("greater than 0",)),
    "negative site_um": (_set("domain.site_um", -20.0), "domain.site_um", ("greater than 0",)),
    "zero dt_min": (_set("domain.dt_min", 0), "domain.dt_min", ("greater than 0",)),
    "negative dt_min": (_set("domain.dt_min", -5.0), "domain.dt_min", ("greater than 0",)),
    "too small lattice": (_set("domain.shape", [2, 40]), "domain.shape.0", ("greater than",)),
    "snapshot interval longer than the run": (
        _set("output.snapshot_every_min", 10_000),
        "output.snapshot_every_min",
        ("longer than the run", "720 min", "domain.duration_days"),
    ),
    "snapshot interval shorter than a tick": (
        _set("output.snapshot_every_min", 1),
        "output.snapshot_every_min",
        ("shorter than one tick", "dt_min"),
    ),
    "rule signal names an unknown field": (
        _set("rules.0.signal", "ifng"),
        "rules.0.signal",
        ("unknown signal 'ifng'", "il6, chemokine, stat3, socs3", "contact:tumour"),
    ),
    "rule names an unknown cell type": (
        _set("rules.2.cell_type", "macrophage"),
        "rules.2.cell_type",
        ("unknown cell type 'macrophage'", TYPES),
    ),
    "rule names an unknown behaviour": (
        _set("rules.1.behaviour", "killing"),
        "rules.1.behaviour",
        ("unknown behaviour 'killing'", "division", "secretion:il6", "transform:cd8_exhausted"),
    ),
    "rule behaviour names an unknown field": (
        _set("rules.0.behaviour", "secretion:il10"),
        "rules.0.behaviour",
        ("'secretion:il10'", "secretion:chemokine"),
    ),
    "rule direction misspelt": (
        _set("rules.0.direction", "raises"),
        "rules.0.direction",
        ("'increases'", "'decreases'"),
    ),
    "stat3 input names an unknown field": (
        _set("cell_types.tumour.stat3.inputs.0.field", "il10"),
        "cell_types.tumour.stat3.inputs.0.field",
        ("unknown field 'il10'", f"defined fields: {FIELDS}"),
    ),
    "kill_targets names an unknown type": (
        _set("cell_types.cd8.kill_targets", ["tumour", "nk"]),
        "cell_types.cd8.kill_targets.1",
        ("unknown cell type 'nk'", TYPES),
    ),
    "infiltrates names an unknown type": (
        _set("cell_types.cd8.infiltrates", ["tumour", "nk"]),
        "cell_types.cd8.infiltrates.1",
        ("unknown cell type 'nk'", TYPES),
    ),
    "a type infiltrates itself": (
        _set("cell_types.cd8.infiltrates", ["cd8"]),
        "cell_types.cd8.infiltrates.0",
        ("cannot infiltrate itself",),
    ),
    "placement names an unknown type": (
        _set("placement.1.cell_type", "nk"),
        "placement.1.cell_type",
        ("unknown cell type 'nk'", TYPES),
    ),
    "chemotaxis field unknown": (
        _set("cell_types.cd8.chemotaxis_field", "cxcl9"),
        "cell_types.cd8.chemotaxis_field",
        ("unknown field 'cxcl9'", FIELDS),
    ),
    "transform target unknown": (
        _set("cell_types.cd8.transform_rate_per_min", {"cd8_memory": 1e-4}),
        "cell_types.cd8.transform_rate_per_min.cd8_memory",
        ("unknown cell type 'cd8_memory'", TYPES),
    ),
    "secretion of an unknown field": (
        _set("cell_types.tumour.secretion_ng_per_ml_per_min", {"il10": 0.01}),
        "cell_types.tumour.secretion_ng_per_ml_per_min.il10",
        ("unknown field 'il10'", FIELDS),
    ),
    "recruitment signal unknown": (
        _set("cell_types.cd8.recruitment.signal", "cxcl9"),
        "cell_types.cd8.recruitment.signal",
        ("unknown field 'cxcl9'", FIELDS),
    ),
    "output field unknown": (
        _set("output.fields", ["il6", "vegf"]),
        "output.fields.1",
        ("unknown field 'vegf'", FIELDS),
    ),
    "stat3 inhibitor field unknown": (
        _set("stat3_inhibitor", {"field": "drug", "half_max_ng_per_ml": 1.0}),
        "stat3_inhibitor.field",
        ("unknown field 'drug'", FIELDS),
    ),
    "same behaviour and direction, different saturations": (
        _dup_rule(0.008),
        "rules.3.saturation",
        ("rules 0 and 3", "division", "tumour", "0.004", "0.008"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_scenario_names_key_and_what_is_allowed(case: str, tmp_path: Path) -> None:
    mutate, path, needles = CASES[case]
    data = tiny()
    mutate(data)
    check_invalid(data, tmp_path, path, *needles)


def test_same_saturation_or_other_direction_is_fine() -> None:
    data = tiny()
    _dup_rule(0.004)(data)  # same behaviour, same direction, same saturation: allowed
    data["rules"].append(dict(data["rules"][0], direction="decreases", saturation=0.0))
    sc = validate_data(data)
    assert len(sc.rules) == 5


def test_several_model_problems_are_all_reported() -> None:
    data = tiny()
    data["domain"]["site_um"] = 0
    data["domain"]["dt_min"] = -1
    data["fields"]["il6"]["bogus"] = 1
    data["rules"][2]["half_max"] = "big"
    with pytest.raises(ScenarioError) as info:
        validate_data(data, "s.toml")
    found = problems_of(info.value)
    assert set(found) >= {
        "domain.site_um",
        "domain.dt_min",
        "fields.il6.bogus",
        "rules.2.half_max",
    }
    assert len(str(info.value).splitlines()) == len(info.value.problems) >= 4


def test_several_cross_check_problems_are_all_reported() -> None:
    data = tiny()
    data["rules"][0]["signal"] = "ifng"
    data["rules"][1]["cell_type"] = "nk"
    data["placement"][0]["cell_type"] = "nk"
    data["cell_types"]["cd8"]["chemotaxis_field"] = "cxcl9"
    data["output"]["snapshot_every_min"] = 1e6
    with pytest.raises(ScenarioError) as info:
        validate_data(data, "s.toml")
    assert set(problems_of(info.value)) >= {
        "rules.0.signal",
        "rules.1.cell_type",
        "placement.0.cell_type",
        "cell_types.cd8.chemotaxis_field",
        "output.snapshot_every_min",
    }


def test_value_and_name_problems_are_reported_together() -> None:
    data = tiny()
    data["domain"]["site_um"] = -1
    data["rules"][0]["signal"] = "ifng"
    with pytest.raises(ScenarioError) as info:
        validate_data(data, "s.toml")
    assert set(problems_of(info.value)) >= {"domain.site_um", "rules.0.signal"}


def test_missing_required_keys_are_named() -> None:
    data = tiny()
    del data["domain"]["dt_min"]
    del data["output"]
    del data["rules"][0]["half_max"]
    with pytest.raises(ScenarioError) as info:
        validate_data(data)
    found = problems_of(info.value)
    for path in ("domain.dt_min", "output", "rules.0.half_max"):
        assert found.get(path) == "required key is missing"


def test_bad_toml_syntax_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "broken.toml"
    f.write_text(TINY.read_text(encoding="utf-8") + "\n[domain\nshape = [\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert info.value.source == str(f)
    assert "not valid TOML" in info.value.problems[0][1]
    assert str(info.value).startswith(f"{f}: ")


def test_duplicate_toml_table_is_a_syntax_error(tmp_path: Path) -> None:
    f = tmp_path / "dup.toml"
    f.write_text(TINY.read_text(encoding="utf-8") + "\n[domain]\nsite_um = 10\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert "not valid TOML" in str(info.value) and str(f) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(missing)
    assert info.value.source == str(missing)
    assert info.value.problems == [("", "no such file")]
    assert str(info.value) == f"{missing}: no such file"


def test_directory_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)


# ------------------------------------------------------------------ overrides


def test_overrides_set_nested_keys_and_list_items() -> None:
    data = tiny()
    problems = apply_overrides(
        data,
        [
            "domain.site_um=10",
            "fields.il6.half_life_min = 60.5",
            "rules.0.half_max=2",
            "domain.shape.1=50",
            "cell_types.cd8.stat3.inputs.0.weight=0.25",
            "vessels.brand_new.key=1",
        ],
    )
    assert problems == []
    assert data["domain"]["site_um"] == 10 and isinstance(data["domain"]["site_um"], int)
    assert data["fields"]["il6"]["half_life_min"] == 60.5
    assert data["rules"][0]["half_max"] == 2
    assert data["rules"][1]["half_max"] == 0.5  # only the addressed item changes
    assert data["domain"]["shape"] == [40, 50]
    assert data["cell_types"]["cd8"]["stat3"]["inputs"][0]["weight"] == 0.25
    assert data["vessels"]["brand_new"] == {"key": 1}  # created; validation rejects it later


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3", 3),
        ("-7", -7),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("true", True),
        ("false", False),
        ("[30, 20]", [30, 20]),
        ("[]", []),
        ('["a", "b"]', ["a", "b"]),
        ("{ a = 1 }", {"a": 1}),
        ("hello", "hello"),
        ('"quoted string"', "quoted string"),
        ("two words", "two words"),
        ("#8c564b", "#8c564b"),
        ("", ""),
    ],
)
def test_override_values_are_parsed_as_toml(raw: str, expected: Any) -> None:
    data: dict[str, Any] = {}
    assert apply_overrides(data, [f"a.v={raw}"]) == []
    assert data["a"]["v"] == expected
    assert type(data["a"]["v"]) is type(expected)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        st.booleans(),
        st.lists(st.integers(min_value=-1000, max_value=1000), max_size=4),
    )
)
def test_override_values_round_trip(value: Any) -> None:
    data: dict[str, Any] = {}
    text = _toml_value(value)
    assert apply_overrides(data, [f"x.y={text}"]) == []
    got = data["x"]["y"]
    assert got == value and type(got) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, got) == math.copysign(1.0, value)


@pytest.mark.parametrize(
    ("item", "where", "needle"),
    [
        ("foo", "--set foo", "expected KEY=VALUE"),
        ("=3", "--set =3", "expected KEY=VALUE"),
        ("  =3", "--set   =3", "expected KEY=VALUE"),
        ("rules.9.half_max=2", "--set rules.9.half_max", "cannot descend into 'rules.9'"),
        ("name.x=1", "--set name.x", "'name' has no entry 'x'"),
        ("name.x.y=1", "--set name.x.y", "cannot descend into 'name.x'"),
        ("domain.shape.5=3", "--set domain.shape.5", "has no entry '5'"),
        ("rules.first.half_max=1", "--set rules.first.half_max", "cannot descend"),
    ],
)
def test_malformed_overrides_are_reported(item: str, where: str, needle: str) -> None:
    data = tiny()
    before = copy.deepcopy(data)
    problems = apply_overrides(data, [item])
    assert len(problems) == 1
    assert problems[0][0] == where
    assert needle in problems[0][1]
    assert data == before


def test_all_malformed_overrides_reported_and_good_ones_applied() -> None:
    data = tiny()
    problems = apply_overrides(data, ["foo", "domain.dt_min=2", "bar", "rules.7.x=1"])
    assert [p for p, _ in problems] == ["--set foo", "--set bar", "--set rules.7.x"]
    assert data["domain"]["dt_min"] == 2


def test_load_scenario_applies_overrides() -> None:
    overrides = ["domain.shape=[30,20]", "seed=3", "rules.0.half_max=2"]
    loaded = load_scenario(TINY, overrides)
    assert isinstance(loaded, LoadedScenario)
    sc = loaded.scenario
    assert sc.domain.shape == [30, 20]
    assert sc.seed == 3
    assert sc.rules[0].half_max == 2.0
    assert loaded.overrides == tuple(overrides)
    assert loaded.text == TINY.read_text(encoding="utf-8")  # the file text, not the overridden
    assert loaded.path == TINY


def test_load_scenario_reports_malformed_overrides() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(TINY, ["foo", "domain.dt_min=1"])
    assert info.value.source == str(TINY)
    assert [p for p, _ in info.value.problems] == ["--set foo"]


@pytest.mark.parametrize(
    ("override", "path", "needle"),
    [
        ("domain.dt_min=-1", "domain.dt_min", "greater than 0"),
        ("domain.site_um=0", "domain.site_um", "greater than 0"),
        ("fields.il6.diffusion_um2_per_min=-3", "fields.il6.diffusion_um2_per_min", ">= 0"),
        ("rules.0.signal=ifng", "rules.0.signal", "il6, chemokine"),
        ("domain.colour=1", "domain.colour", "shape, site_um, dt_min, duration_days"),
    ],
)
def test_overrides_are_validated(override: str, path: str, needle: str) -> None:
    needle = needle.replace(">= 0", "greater than or equal to 0")
    with pytest.raises(ScenarioError) as info:
        load_scenario(TINY, [override])
    assert_problem(info.value, path, needle)


# ------------------------------------------------------------ shipped scenarios


def test_baseline_validates() -> None:
    loaded = load_scenario(examples_dir() / "baseline.toml")
    sc = loaded.scenario
    assert sc.name == "baseline"
    assert sc.domain.shape == [200, 200]
    assert sc.n_ticks == round(7 * 1440 / 5)
    assert "tumour" in sc.cell_types and len(sc.rules) > 0


def test_scenarios_directory_is_not_empty() -> None:
    assert SCENARIOS, f"no *.toml in {examples_dir()}"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_shipped_scenario_validates(path: Path) -> None:
    loaded = load_scenario(path)
    assert loaded.scenario.name == path.stem  # the default output name matches the file


def test_overrides_address_list_entries_by_id() -> None:
    """``rules.<id>.key`` sets the rule with that id, whatever its index."""
    data = tiny()
    data["rules"][1]["id"] = "second"
    before = copy.deepcopy(data["rules"][0])
    assert apply_overrides(data, ["rules.second.half_max=7.5"]) == []
    assert data["rules"][1]["half_max"] == 7.5
    assert data["rules"][0] == before
    problems = apply_overrides(data, ["rules.third.half_max=1"])
    assert len(problems) == 1
    assert "cannot descend into 'rules.third'" in problems[0][1]
    assert "by id (second)" in problems[0][1]
