"""Bad input never crashes: every scenario or ``--set`` is either refused with a
clear error (exit 2, no traceback, nothing written) or runs.

The fuzz tests grow mutants from the shipped scenarios with hypothesis: any
exception from validation other than :class:`ScenarioError` fails, and so
does any exception from a few ticks of a mutant that validated.
"""

from __future__ import annotations

import copy
import math
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tme_abm import cli
from tme_abm.scenario import ScenarioError, load_scenario, validate_data
from tme_abm.scenario.budget import budget_problems, estimate
from tme_abm.scenario.library import list_scenarios
from tme_abm.scenario.load import MAX_EXTENDS_FILES, read_composed

BASELINE = list_scenarios()["baseline"]
TINY = Path(__file__).parent / "data" / "tiny.toml"


def run_cli(argv, capsys):
    """Run the command in-process; return (exit code, stdout, stderr)."""
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- the inputs of the issue: validate and run agree -------------------------------


@pytest.mark.parametrize(("override", "key"), [
    ('output.fields=["il6","il6"]', "output.fields"),
    ("domain.site_um=inf", "domain.site_um"),
    ("domain.site_um=nan", "domain.site_um"),
    ("fields.il6.diffusion_um2_per_min=inf", "fields.il6.diffusion_um2_per_min"),
    ("fields.il6.diffusion_um2_per_min=1e300", "fields.il6.diffusion_um2_per_min"),
    ("domain.site_um=1e-9", "diffusion_um2_per_min"),
    ("domain.site_um=1e-200", "diffusion_um2_per_min"),
    ("domain.shape=[100000,100000]", "domain"),
    ("domain.dt_min=1e-9", "domain"),
    ("domain.duration_days=1e9", "domain"),
    ("domain.duration_days=1e308", "domain"),
    ("fields.stat3.diffusion_um2_per_min=10", "fields.stat3"),
    ("cell_types.empty.colour=\"#000000\"", "cell_types.empty"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_values_are_refused_alike_by_validate_and_run(command, override, key, capsys,
                                                          tmp_path):
    out = tmp_path / "r.h5"
    argv = [command, str(TINY), "--set", override]
    if command == "run":
        argv += ["--out", str(out), "--quiet"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2, err
    assert key in err and "Traceback" not in err
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_work_that_cannot_fit_memory_is_refused_with_the_amount(capsys):
    code, _, err = run_cli(["validate", str(BASELINE), "--set", "domain.shape=[40000,40000]"],
                           capsys)
    assert code == 2
    assert "domain.shape" in err and "GiB of memory" in err and "--allow-large" in err
    line = next(x for x in err.splitlines() if "GiB" in x)
    needed = float(line.split("at least ")[1].split(" GiB")[0])
    # 1.6e9 sites x (8 x 12 fields + 4 x 12 saved + 13) B, at the least
    assert needed >= 1.6e9 * 157 / 2**30 * 0.99


def test_budget_estimate_and_the_explicit_allowance():
    sc = load_scenario(BASELINE).scenario
    b = estimate(sc)
    assert b.n_sites == 200 * 200 and b.n_ticks == 2016
    assert b.n_snapshots == 1 + 2016 // 72  # every 6 h and the last tick (a multiple here)
    assert 200 < b.initial_cells < 2000
    assert b.memory_bytes > 200 * 200 * 157
    problems = budget_problems(sc, available_bytes=b.memory_bytes - 1)
    assert [k for k, _ in problems] == ["domain.shape"]
    assert budget_problems(sc, available_bytes=b.memory_bytes - 1, allow_large=True) == []
    assert budget_problems(sc, available_bytes=b.memory_bytes) == []


def test_too_many_ticks_need_the_explicit_allowance(capsys):
    argv = ["validate", str(TINY), "--set", "domain.dt_min=0.001", "--set",
            "domain.duration_days=7.0", "--set", "output.snapshot_every_min=1440"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "10,080,000 ticks" in err and "--allow-large" in err
    code, out, _ = run_cli([*argv, "--allow-large"], capsys)
    assert code == 0 and "10,080,000 ticks" in out


def test_validate_says_when_the_snapshot_interval_is_rounded(capsys):
    code, out, err = run_cli(["validate", str(TINY), "--set", "output.snapshot_every_min=7"],
                             capsys)
    assert code == 0
    assert "output.snapshot_every_min" in err and "every 1 ticks (5 min)" in err
    code, _, err = run_cli(["validate", str(TINY)], capsys)
    assert code == 0 and "note" not in err


# --- unbounded reads, recursion, and where extends may reach -----------------------


def test_devices_and_huge_files_are_not_read(tmp_path, capsys):
    code, _, err = run_cli(["validate", "/dev/zero"], capsys)
    assert code == 2 and "not a regular file" in err
    big = tmp_path / "big.toml"
    with big.open("w") as fh:
        fh.write("# padding\n" * 500_000)  # 5 MB of comments
    code, _, err = run_cli(["validate", str(big)], capsys)
    assert code == 2 and "larger than 4 MiB" in err


def test_extends_of_a_device_is_refused(tmp_path, capsys):
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    s = tmp_path / "s.toml"
    s.write_text('extends = "zero.toml"\n')
    code, _, err = run_cli(["validate", str(s)], capsys)
    assert code == 2 and "Traceback" not in err
    assert "outside" in err or "not a regular file" in err


@pytest.mark.parametrize("depth", [40, 600, 5000])
def test_deeply_nested_tables_are_an_error(tmp_path, depth, capsys):
    s = tmp_path / "deep.toml"
    s.write_text("x = " + "{a = " * depth + "1" + "}" * depth + "\n")
    code, _, err = run_cli(["validate", str(s)], capsys)
    assert code == 2 and "nest deeper than" in err and "Traceback" not in err
    code, _, err = run_cli(["validate", str(TINY), "--set", "a" + ".a" * depth + "=1"], capsys)
    assert code == 2 and "Traceback" not in err
    code, _, err = run_cli(["validate", str(TINY), "--set",
                            "output.fields=" + "[" * depth + "]" * depth], capsys)
    assert code == 2 and "Traceback" not in err


def test_a_long_extends_chain_is_an_error(tmp_path, capsys):
    n = 2000
    for k in range(n):
        (tmp_path / f"s{k}.toml").write_text(f'extends = "s{k + 1}.toml"\n')
    (tmp_path / f"s{n}.toml").write_text(TINY.read_text())
    code, _, err = run_cli(["validate", str(tmp_path / "s0.toml")], capsys)
    assert code == 2 and f"more than {MAX_EXTENDS_FILES} files" in err
    assert "Traceback" not in err


def test_extends_stays_inside_the_scenarios_folder(tmp_path, capsys):
    secret = tmp_path / "secret.toml"
    secret.write_text('password = "hunter2"\n')
    project = tmp_path / "project"
    (project / "base").mkdir(parents=True)
    (project / "base" / "tiny.toml").write_text(TINY.read_text())
    cases = {
        f'extends = "{secret.as_posix()}"': "absolute path",
        'extends = "../secret.toml"': "outside",
        'extends = "base/../../secret.toml"': "outside",
        'extends = "base/tiny.txt"': "not a .toml file",
    }
    for text, why in cases.items():
        s = project / "s.toml"
        s.write_text(text + "\n")
        code, _, err = run_cli(["validate", str(s)], capsys)
        assert code == 2 and why in err, (text, err)
        assert "hunter2" not in err
    # a link inside the folder that points out of it is followed, and refused
    (project / "link.toml").symlink_to(secret)
    (project / "s.toml").write_text('extends = "link.toml"\n')
    code, _, err = run_cli(["validate", str(project / "s.toml")], capsys)
    assert code == 2 and "outside" in err
    # below the scenario's folder is fine, and the text of each file is kept
    (project / "s.toml").write_text('extends = "base/tiny.toml"\nname = "mine"\n')
    loaded = load_scenario(project / "s.toml")
    assert loaded.scenario.name == "mine" and "hunter2" not in loaded.text


# --- fuzzing: mutants of the shipped scenarios ---------------------------------------

_SHIPPED = sorted(list_scenarios().items())
_BASES = {name: read_composed(path)[0] for name, path in _SHIPPED if name != "large"}
for _name, _path in _SHIPPED:  # data without a file: a tissue table's path made absolute
    if _name in _BASES and "tissue" in _BASES[_name]:
        _BASES[_name]["tissue"]["file"] = str(Path(_path).parent / _BASES[_name]["tissue"]["file"])

_WEIRD_VALUES = st.one_of(
    st.sampled_from([0, -1, 1, 2, 3, 1e-300, 1e300, -1e300, 1e-9, 1e9, 127, 128, 2**31, 2**63,
                     -(2**63), 0.5, "", "x", "il6", "tumour", "empty", "time", "stat3", True,
                     False, [], {}, [0], [3, 3], [3, 3, 3], [3, 3, 3, 3], ["il6", "il6"],
                     {"a": 1}, "#00000g", "no_flux", "dirichlet", "disc", "annulus"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(min_value=-5, max_value=50), max_size=4),
)


def _paths(node, prefix=()):
    """Every key path into nested dicts/lists."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _parent(data, path):
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


def _numeric_variants(v):
    """Plausible and implausible neighbours of a number."""
    out = [0, -v, v * 2, v / 3, math.inf, -math.inf, math.nan, 1e-300, 1e300]
    out += [v * 10.0**k for k in (-300, -20, -9, -3, 3, 9, 20, 300)]
    if isinstance(v, int) and not isinstance(v, bool):
        out += [v + 1, v * 1000, 2**31, 2**63 - 1, -1]
    return out


@st.composite
def mutants(draw, small: bool = False):
    """A shipped scenario with 1-4 mutations: mostly numbers pushed to extremes
    (so that many mutants still validate and reach the engine), and some
    deleted, duplicated, renamed or retyped entries."""
    name = draw(st.sampled_from(sorted(_BASES)))
    data = copy.deepcopy(_BASES[name])
    if small:  # small and short enough to run a few ticks of
        data["domain"]["shape"] = [12, 12] if len(data["domain"]["shape"]) == 2 else [6, 6, 6]
        data["domain"]["duration_days"] = 3 * data["domain"]["dt_min"] / 1440
        data["output"]["snapshot_every_min"] = data["domain"]["dt_min"]
    names = sorted(set(data.get("fields", {})) | set(data.get("cell_types", {})))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(data) if p]
        if draw(st.booleans()):  # half the time: the keys the lattice and solver read
            paths = [p for p in paths if p[0] in ("domain", "fields", "output")] or paths
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        key = path[-1]
        old = parent[key]
        action = draw(st.sampled_from(["tweak"] * 6 + ["set", "delete", "duplicate", "rename"]))
        if action == "tweak" and isinstance(old, int | float) and not isinstance(old, bool):
            parent[key] = draw(st.sampled_from(_numeric_variants(old)))
        elif action == "tweak" and isinstance(old, str):
            parent[key] = draw(st.sampled_from([*names, "", "empty", "stat3", old * 2]))
        elif action == "tweak" and isinstance(old, list) and old:
            parent[key] = old + [copy.deepcopy(old[0])]  # a duplicate entry
        elif action in ("set", "tweak"):
            parent[key] = draw(_WEIRD_VALUES)
        elif action == "delete":
            del parent[key]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "empty", "stat3", "time", "a" * 40, "z_1"]))] = (
                parent.pop(key))
    return data


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutants())
def test_fuzzed_scenarios_validate_or_say_why(data):
    try:
        sc = validate_data(data, "mutant")
    except ScenarioError as exc:
        assert exc.problems and all(msg for _, msg in exc.problems)
        return
    # what validates has a finite, bounded budget
    b = estimate(sc)
    assert b.n_ticks >= 1 and math.isfinite(b.memory_bytes)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutants(small=True))
def test_fuzzed_scenarios_that_validate_also_run(data):
    from tme_abm.model import TMEModel
    from tme_abm.scenario.load import LoadedScenario

    try:
        sc = validate_data(data, "mutant")
    except ScenarioError:
        return
    if budget_problems(sc):
        return
    model = TMEModel(LoadedScenario(sc, "", None), seed=1)
    for _ in range(3):
        if not model.running:
            break
        model.step()
    summary = model.summary()
    assert all(isinstance(v, float | int) for v in summary.values())


def test_fuzzed_run_through_the_command_writes_a_run_or_refuses(tmp_path, capsys):
    """Mutants as files, through ``tme-abm run``: exit 0 with a run file, or 2 with
    nothing written; never a traceback."""
    import tomllib

    examples = []

    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutants(small=True))
    def collect(data):
        examples.append(data)

    collect()
    for k, data in enumerate(examples):
        path = tmp_path / f"m{k}.toml"
        path.write_text(_to_toml(data))
        tomllib.loads(path.read_text())  # the writer below is honest TOML
        out = tmp_path / f"m{k}.h5"
        code, _, err = run_cli(["run", str(path), "--out", str(out), "--quiet"], capsys)
        assert "Traceback" not in err
        assert code in (0, 2), err
        if code == 0:
            assert out.is_file()
        else:
            assert not out.exists() and not Path(f"{out}.partial").exists()


def _to_toml(data, prefix=""):
    """A minimal TOML writer for the mutants (tables, arrays of tables, values)."""
    from tme_abm.scenario.load import toml_value

    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f'"{k}" = {value(x)}' for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, float):
            return repr(v)
        return toml_value(v)

    return "".join(f'"{k}" = {value(v)}\n' for k, v in data.items())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unreadable_scenario_is_a_clear_error(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    s = tmp_path / "s.toml"
    s.write_text(TINY.read_text())
    s.chmod(0)
    code, _, err = run_cli(["validate", str(s)], capsys)
    assert code == 2 and "cannot read" in err


@pytest.mark.parametrize("seed", ["-1", str(2**63), "99999999999999999999999"])
def test_seed_out_of_range_is_a_clear_error(seed, tmp_path, capsys):
    out = tmp_path / "r.h5"
    code, _, err = run_cli(["run", str(TINY), "--seed", seed, "--out", str(out), "--quiet"],
                           capsys)
    assert code == 2 and "--seed" in err and "Traceback" not in err
    assert not out.exists()
