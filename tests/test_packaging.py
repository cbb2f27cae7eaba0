"""The shipped scenarios: package data, listing, names on the command line, copies.

A wheel install has no source tree, so the example scenarios must travel as
package data and every command must find them by name from any directory.
``.ci/run`` installs the built wheel into a second environment and runs the
quick start from a temporary folder; here the wheel's contents are checked,
and the library and the ``scenarios`` / ``init`` commands are exercised.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import h5py
import pytest

from tme_abm import cli
from tme_abm.batch.plan import parse_sweep_file
from tme_abm.scenario import library as L
from tme_abm.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "tme_abm" / L.EXAMPLES
SHIPPED = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.toml"))
#: Data tables shipped beside the calibrations.
SHIPPED_DATA = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.csv"))


def tme(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tme_abm ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "tme_abm", *(str(a) for a in args)],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NUMBA_NUM_THREADS": "2"},
    )


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ the package data


def test_the_examples_live_inside_the_package() -> None:
    assert L.examples_dir().resolve() == EXAMPLES.resolve()
    assert "baseline.toml" in SHIPPED and "sweeps/kill_rate.toml" in SHIPPED
    assert not (REPO / "scenarios").exists(), "scenarios/ moved to tme_abm/examples/"


@pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build the wheel"
)
def test_the_wheel_carries_every_example(tmp_path: Path) -> None:
    from importlib.metadata import version

    setuptools_major = int(version("setuptools").split(".")[0])
    if setuptools_major < 77:
        pytest.skip(f"pyproject.toml needs setuptools>=77 to build, found {setuptools_major}")
    # build from a copy: setuptools writes build/ and *.egg-info/ into the source tree
    src = tmp_path / "src"
    shutil.copytree(REPO / "tme_abm", src / "tme_abm",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("tme_abm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [s for s in SHIPPED + SHIPPED_DATA if f"tme_abm/{L.EXAMPLES}/{s}" not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert "tme_abm/scenario/library.py" in names


# ------------------------------------------------------------------------ listing


def test_lists_match_the_files() -> None:
    scenarios, sweeps = L.list_scenarios(), L.list_sweeps()
    calibrations = L.list_calibrations()
    listed = ([f"{n}.toml" for n in scenarios] + [f"sweeps/{n}.toml" for n in sweeps]
              + [f"calibrations/{n}.toml" for n in calibrations])
    assert sorted(listed) == SHIPPED
    assert list(scenarios) == sorted(scenarios)
    assert all(p.is_file() and p.stem == n
               for n, p in {**scenarios, **sweeps, **calibrations}.items())
    names = [*scenarios, *sweeps, *calibrations]
    assert len(set(names)) == len(names), "init NAME would be ambiguous"
    assert [e.name for e in L.examples()] == names


def test_every_example_has_a_short_description() -> None:
    for e in L.examples():
        assert e.description, f"{e.path} has no opening comment"
        assert len(e.description) <= L.DESCRIPTION_WIDTH
        assert "\n" not in e.description


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        ("# Short one.\n# More here.", "Short one"),
        ("# A drug (e.g. X, Y), dosed daily. Then more.", "A drug (e.g. X, Y), dosed daily"),
        ("# Why?  Because.", "Why?"),
        ("#\n# After a blank comment line.\n\n# not this", "After a blank comment line"),
        ("# A first line that is long enough to need shortening (with a long aside, Smith and"
         " Jones 2004) and more words after it.", "A first line that is long enough to need "
         "shortening and more words after it"),
        ("# Blockade of IL10 by an antibody (Yu 2007): extra first-order clearance of the free"
         " cytokine, which makes this far too long to fit.", "Blockade of IL10 by an antibody"),
        ("# " + "word " * 30, " ".join(["word"] * ((L.DESCRIPTION_WIDTH - 2) // 5)) + "..."),
        ('name = "x"\n# late comment', ""),
        ('# The comment.\ndescription = "the key wins."', "the key wins"),
        ('# The comment.\ndescription = " "', "The comment"),
        ('# The comment.\n[table]\ndescription = "not top-level"', "The comment"),
        ('# The comment.\ndescription = "' + "long " * 30 + '(aside)"',
         " ".join(["long"] * ((L.DESCRIPTION_WIDTH - 2) // 5)) + "..."),
        ("# The comment.\nnot toml at all", "The comment"),
    ],
)
def test_describe(comment: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(comment + '\nname = "x"\n', encoding="utf-8")
    assert L.describe(path) == expected


def test_resolve_prefers_an_existing_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    shipped = L.list_scenarios()["baseline"]
    assert L.resolve("baseline") == shipped
    assert L.resolve("baseline.toml") == shipped
    assert L.resolve("kill_rate", "sweep") == L.list_sweeps()["kill_rate"]
    assert L.resolve("kill_rate") == Path("kill_rate")  # not a scenario
    assert L.resolve("elsewhere/baseline.toml") == Path("elsewhere/baseline.toml")
    assert L.resolve("nope") == Path("nope")
    (tmp_path / "baseline.toml").write_text("mine", encoding="utf-8")
    assert L.resolve("baseline.toml") == Path("baseline.toml")


# ------------------------------------------------------------------------ copying


@pytest.mark.parametrize("name", sorted(L.list_scenarios()))
def test_a_copied_scenario_runs_standalone_as_shipped(name: str, tmp_path: Path) -> None:
    written = L.copy_example(name, tmp_path / "mine")
    assert written[0] == tmp_path / "mine" / f"{name}.toml"
    copy = load_scenario(written[0])
    shipped = load_scenario(L.list_scenarios()[name])
    a, b = copy.scenario.model_dump(), shipped.scenario.model_dump()
    if a.get("tissue"):  # the copied table: another path, the same content
        assert Path(a["tissue"].pop("file")).parent == tmp_path / "mine" / "tissues"
        b["tissue"].pop("file")
    assert a == b
    for path in written:  # a verbatim copy, comments included
        relative = path.relative_to(tmp_path / "mine")
        assert path.read_bytes() == (L.examples_dir() / relative).read_bytes()


def test_a_copied_sweep_keeps_its_layout(tmp_path: Path) -> None:
    written = L.copy_example("kill_rate", tmp_path)
    assert written[0] == tmp_path / "sweeps" / "kill_rate.toml"
    assert {p.name for p in written} == {"kill_rate.toml", "baseline.toml",
                                         "ko_haematopoietic.toml"}
    parse_sweep_file(written[0])  # its scenarios resolve; raises otherwise


def test_copy_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "anti_pd1.toml").write_text("# mine\n", encoding="utf-8")
    with pytest.raises(L.ExampleError, match="anti_pd1.toml already exists"):
        L.copy_example("anti_pd1", tmp_path)
    assert tree(tmp_path) == {"anti_pd1.toml": b"# mine\n"}


def test_copy_refuses_a_different_base_and_keeps_an_identical_one(tmp_path: Path) -> None:
    (tmp_path / "baseline.toml").write_text("# edited\n", encoding="utf-8")
    with pytest.raises(L.ExampleError, match="other content than the baseline.toml"):
        L.copy_example("ko_tumour", tmp_path)
    assert tree(tmp_path) == {"baseline.toml": b"# edited\n"}
    other = tmp_path / "other"
    assert [p.name for p in L.copy_example("ko_tumour", other)] == ["ko_tumour.toml",
                                                                     "baseline.toml"]
    assert [p.name for p in L.copy_example("anti_pd1", other)] == ["anti_pd1.toml"]


def test_copy_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(L.ExampleError,
                       match="no such shipped scenario, sweep or calibration.*baseline"):
        L.copy_example("nope", tmp_path)
    with pytest.raises(L.ExampleError, match="no such shipped"):
        L.copy_example("../baseline", tmp_path)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------- the command


def test_scenarios_command_lists_names_and_descriptions(tmp_path: Path) -> None:
    done = tme("scenarios", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for e in L.examples():
        assert any(line.split() and line.split()[0] == e.name and line.endswith(e.description)
                   for line in lines), e.name
    assert lines.index("sweeps (tme-abm sweep NAME):") > lines.index(
        "scenarios (tme-abm run NAME):")


def test_init_copies_a_calibration_with_its_data_and_it_validates(tmp_path: Path) -> None:
    done = tme("init", "tumour_growth", "mine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(tree(tmp_path / "mine")) == [
        "calibrations/tumour_growth.csv", "calibrations/tumour_growth.toml"]
    assert "tme-abm calibrate mine/calibrations/tumour_growth.toml" in done.stdout
    check = tme("calibrate", "mine/calibrations/tumour_growth.toml", "--check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    named = tme("calibrate", "tumour_growth", "--check", cwd=tmp_path)
    assert named.returncode == 0 and "2 parameters, 2 data points" in named.stdout


def test_init_command_copies_then_refuses(tmp_path: Path) -> None:
    done = tme("init", "inhibitor_anti_pd1", "mine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(tree(tmp_path / "mine")) == [
        "anti_pd1.toml", "baseline.toml", "inhibitor_anti_pd1.toml", "stat3_inhibitor.toml"]
    assert "tme-abm run mine/inhibitor_anti_pd1.toml" in done.stdout
    valid = tme("validate", "mine/inhibitor_anti_pd1.toml", cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr

    (tmp_path / "mine" / "inhibitor_anti_pd1.toml").write_text("# edited\n", encoding="utf-8")
    before = tree(tmp_path)
    again = tme("init", "inhibitor_anti_pd1", "mine", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.startswith("tme-abm: error: mine/inhibitor_anti_pd1.toml already exists")
    assert "Traceback" not in again.stderr and len(again.stderr.splitlines()) == 1
    assert tree(tmp_path) == before


def test_init_command_defaults_to_the_current_folder(tmp_path: Path) -> None:
    done = tme("init", "kill_rate", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(tree(tmp_path)) == ["baseline.toml", "ko_haematopoietic.toml",
                                      "sweeps/kill_rate.toml"]
    assert "tme-abm sweep sweeps/kill_rate.toml" in done.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (("init", "nope"), "nope: no such shipped scenario, sweep or calibration"),
    (("init", "baseline", "afile"), "afile is not a folder"),
])
def test_init_command_bad_input(args: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    done = tme(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert tree(tmp_path) == {"afile": b"x"}


def test_validate_by_name_from_any_folder(tmp_path: Path) -> None:
    done = tme("validate", "ko_tumour", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "valid scenario 'ko_tumour'" in done.stdout


def test_a_local_file_wins_over_a_shipped_name(tmp_path: Path) -> None:
    text = L.list_scenarios()["baseline"].read_text(encoding="utf-8")
    (tmp_path / "baseline.toml").write_text(
        text.replace('name = "baseline"', 'name = "local"', 1), encoding="utf-8")
    done = tme("validate", "baseline.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "valid scenario 'local'" in done.stdout


def test_old_scenarios_path_gets_a_hint(tmp_path: Path) -> None:
    done = tme("validate", "scenarios/baseline.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "tme-abm validate baseline" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("argv", "attr", "expected"), [
    (["sweep", "kill_rate"], "sweep", lambda: L.list_sweeps()["kill_rate"]),
    (["viz", "ko_tumour"], "scenario", lambda: L.list_scenarios()["ko_tumour"]),
    (["run", "baseline_3d"], "scenario", lambda: L.list_scenarios()["baseline_3d"]),
    (["viz"], "scenario", lambda: None),
])
def test_names_resolve_for_every_command(argv, attr, expected, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = cli._parser().parse_args(argv)
    assert cli._resolve_names(args) is None
    assert getattr(args, attr) == expected()


def test_run_by_name_from_another_folder(tmp_path: Path) -> None:
    done = tme("run", "baseline", "--quiet", "--set", "domain.duration_days=0.02",
               "--set", "output.snapshot_every_min=10", "--set", "domain.shape=[60,60]",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "output" / "baseline.h5"
    with h5py.File(out, "r") as f:
        scenario = tomllib.loads(f.attrs["scenario"])
    assert scenario["name"] == "baseline"
