"""Every code example in docs/run_file.md runs against a real run file.

The examples are taken from the page itself (fenced ``python``, ``r`` and
``julia`` blocks), so the page and this test cannot drift apart. Each reads
``output/baseline.h5`` on the page; here that path is replaced by a small
run of ``tests/data/tiny.toml``, and what each example prints or leaves
behind is checked against h5py. R needs ``Rscript`` with the ``hdf5r``
package (``.ci/run`` installs Debian's ``r-cran-hdf5r``); Julia needs
``julia`` with HDF5.jl, which Debian does not package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from factory import TINY, as_format_1_0, partial_run_file

from tme_abm.runner import run_scenario
from tme_abm.scenario import load_scenario

DOC = Path(__file__).resolve().parents[1] / "docs" / "run_file.md"
DOC_PATH = "output/baseline.h5"
TYPES = ["tumour", "cd8", "cd8_exhausted"]


def snippets(language: str) -> list[str]:
    """The fenced code blocks of one language in docs/run_file.md, in order."""
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def use(code: str, path: Path) -> str:
    assert DOC_PATH in code, f"example no longer reads {DOC_PATH}"
    return code.replace(DOC_PATH, path.as_posix())


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readers") / "tiny.h5"
    run_scenario(load_scenario(TINY, ["domain.duration_days=0.2"]), path, progress=False)
    return path


@pytest.fixture(scope="module", params=["current", "1.0", "partial"])
def any_file(request: pytest.FixtureRequest, run_file: Path, tmp_path_factory) -> Path:
    """The current format, the same run rewritten as format 1.0, and an
    interrupted run (a .partial)."""
    if request.param == "current":
        return run_file
    folder = tmp_path_factory.mktemp(f"readers-{request.param}")
    if request.param == "1.0":
        return as_format_1_0(Path(shutil.copy(run_file, folder / "old.h5")))
    return partial_run_file(folder, snapshots=2, steps_between=3)


def expected(path: Path) -> dict:
    """What the examples must find, read with h5py by explicit code: the last
    complete snapshot's sites and cells per type, and its IL-6 field."""
    codes = {"empty": -1, **{name: i for i, name in enumerate(TYPES)}}
    with h5py.File(path) as f:
        n = f["time"].shape[0]
        lattice = f["lattice/cell_type"][n - 1]
        rows = f["cells/row_size"][:n]
        start = int(rows[: n - 1].sum())
        cell_types = f["cells/type"][start : start + int(rows[n - 1])]
        stat3 = f["cells/stat3"][start : start + int(rows[n - 1])]
        il6 = f["fields/il6"][n - 1]
    return {
        "sites": {name: int((lattice == c).sum()) for name, c in codes.items()},
        "cells": {name: int((cell_types == c).sum()) for name, c in codes.items()},
        "stat3": {  # types with cells only
            name: float(stat3[cell_types == c].mean())
            for name, c in codes.items()
            if (cell_types == c).any()
        },
        "lattice": lattice,
        "il6": il6,
        "cell_types": [TYPES[c] for c in cell_types],
    }


def test_the_page_has_every_example() -> None:
    """The extraction finds the examples (a renamed fence would skip them silently)."""
    assert len(snippets("python")) == 3
    assert len(snippets("r")) == 1
    assert len(snippets("julia")) == 1
    for language in ("python", "r", "julia"):
        assert any(DOC_PATH in code for code in snippets(language)), language


def test_python_examples(any_file: Path) -> None:
    want = expected(any_file)
    xarray_example, open_run_example, h5py_example = snippets("python")
    scope: dict = {}
    exec(use(xarray_example, any_file), scope)  # noqa: S102 - the page's own example
    assert scope["fields"].il6.dims == scope["lattice"].cell_type.dims == ("time", "y", "x")
    assert scope["series"].count_tumour.dims == ("tick_time",)
    assert scope["cells"]["type"].dims == ("cell",)
    labelled = [scope["lattice"].cell_type]
    with h5py.File(any_file) as f:
        version = f.attrs["format_version"]
    if version != "1.0":  # 1.0 labelled only the lattice
        labelled.append(scope["cells"]["type"])
    for ds in labelled:  # the labels come through xarray
        values, meanings = ds.attrs["flag_values"].tolist(), ds.attrs["flag_meanings"].split()
        label = dict(zip(values, meanings, strict=True))
        assert label == {**dict(enumerate(TYPES)), -1: "empty"}, ds.name
    for name in ("fields", "lattice", "series", "cells"):
        scope[name].close()
    scope = {}
    exec(use(open_run_example, any_file), scope)  # noqa: S102 - the page's own example
    assert scope["stat3_by_type"].to_dict() == pytest.approx(want["stat3"])
    counts = scope["sites_by_type"].to_dict()
    assert counts == {k: v for k, v in want["sites"].items() if v}
    assert np.array_equal(scope["lattice"].values, want["lattice"])
    scope = {}
    exec(use(h5py_example, any_file), scope)  # noqa: S102
    assert np.array_equal(scope["lattice"], want["lattice"])
    assert scope["types"] == want["cell_types"]
    assert set(scope["label"].values()) == {*TYPES, "empty"}


def _rscript() -> str:
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip(
            "R is not installed (Rscript not found): the R example in docs/run_file.md is "
            "not run; .ci/run installs it with apt-get install r-cran-hdf5r"
        )
    probe = subprocess.run(
        [rscript, "-e", "library(hdf5r)"], capture_output=True, text=True, timeout=120
    )
    if probe.returncode != 0:
        pytest.skip(
            "R's hdf5r package is not installed: the R example in docs/run_file.md is not "
            "run; .ci/run installs it with apt-get install r-cran-hdf5r"
        )
    return rscript


# Appended to the example: its results in a form this test can parse.
R_REPORT = """
cat("TEST sites", paste(names(table(lattice)), as.integer(table(lattice)), sep = "=", collapse = " "), "\\n")
cat("TEST cells", paste(names(table(type)), as.integer(table(type)), sep = "=", collapse = " "), "\\n")
cat("TEST il6", dim(il6), sprintf("%.9g", il6[3, 2]), sprintf("%.9g", sum(il6)), "\\n")
"""  # noqa: E501


def _pairs(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[2:])}


def test_r_example(any_file: Path, tmp_path: Path) -> None:
    rscript = _rscript()
    (code,) = snippets("r")
    script = tmp_path / "example.R"
    script.write_text(use(code, any_file) + R_REPORT, encoding="utf-8")
    result = subprocess.run(
        [rscript, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    want = expected(any_file)
    report = {line.split()[1]: line for line in out if line.startswith("TEST ")}
    assert _pairs(report["sites"]) == want["sites"]
    assert _pairs(report["cells"]) == want["cells"]
    _, _, nx, ny, value, total = report["il6"].split()
    ny_h5, nx_h5 = want["il6"].shape
    assert (int(nx), int(ny)) == (nx_h5, ny_h5)  # dimensions reversed
    assert float(value) == pytest.approx(float(want["il6"][1, 2]), rel=1e-6)  # R's [3, 2]
    assert float(total) == pytest.approx(float(want["il6"].sum(dtype=np.float64)), rel=1e-5)
    # what the example itself prints: table(lattice), then tapply's means by name
    header = out.index("lattice")
    names, counts = out[header + 1].split(), [int(v) for v in out[header + 2].split()]
    assert sorted(names) == sorted([*TYPES, "empty"])  # in the file's flag order
    assert dict(zip(names, counts, strict=True)) == want["sites"]
    means = dict(zip(out[header + 3].split(), out[header + 4].split(), strict=True))
    for name in TYPES:
        if name in want["stat3"]:
            assert float(means[name]) == pytest.approx(want["stat3"][name], rel=1e-5)
        else:
            assert means[name] == "NA"
    assert means["empty"] == "NA"


def test_julia_example(any_file: Path, tmp_path: Path) -> None:
    julia = shutil.which("julia")
    if julia is None:
        pytest.skip(
            "Julia is not installed (Debian has no julia package and nothing else can be "
            "installed here): the Julia example in docs/run_file.md is checked by reading only"
        )
    probe = subprocess.run([julia, "-e", "using HDF5"], capture_output=True, timeout=600)
    if probe.returncode != 0:
        pytest.skip("Julia's HDF5.jl is not installed: the Julia example is not run")
    (code,) = snippets("julia")
    script = tmp_path / "example.jl"
    script.write_text(use(code, any_file), encoding="utf-8")
    result = subprocess.run(
        [julia, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    want = expected(any_file)
    sites, cells = {}, {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sites[parts[0]] = int(parts[1])
        elif len(parts) == 3 and parts[1] == "cells":
            cells[parts[0]] = int(parts[2])
    assert sites == want["sites"]
    assert cells == want["cells"]
