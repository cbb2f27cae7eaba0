"""tools/odd_parameters.py: the generated parameter tables of docs/ODD.md.

Nothing here hard-codes a parameter value: the expected field names, cell
types, rule count and source comments are read from the scenario files, so
these tests keep passing while the values change.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tme_abm.scenario import load_scenario
from tme_abm.scenario.library import examples_dir

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "odd_parameters.py"
BASELINE = examples_dir() / "baseline.toml"
SCENARIOS = sorted(examples_dir().glob("*.toml"))

#: Keys whose comments the tables do not carry (presentation, identity).
NOT_TABULATED = {"label", "colour", "name", "description", "extends"}


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("odd_parameters", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["odd_parameters"] = module
    spec.loader.exec_module(module)
    return module


odd = _load_tool()


@pytest.fixture(scope="module")
def baseline_md() -> str:
    return odd.render(BASELINE)


def _section(md: str, title: str) -> list[str]:
    """Lines of one ``## title`` section."""
    lines = md.splitlines()
    start = lines.index(f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1 : end]


def _table_rows(lines: list[str]) -> list[str]:
    """Body rows of the first Markdown table in ``lines`` (no header, no ruler)."""
    rows = [x for x in lines if x.startswith("|")]
    return rows[2:]


def _trailing_comments(text: str) -> list[tuple[str, str]]:
    """``(key, comment)`` of every ``key = value  # comment`` line of a TOML text."""
    out = []
    for line in text.splitlines():
        code, comment, _ = odd.split_line(line)
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*=", code)
        if m and comment:
            out.append((m.group(1).split(".")[-1], comment))
    return out


def test_cli_writes_the_file_and_stdout(tmp_path: Path) -> None:
    out = tmp_path / "odd_parameters.md"
    done = subprocess.run(
        [sys.executable, str(TOOL), str(BASELINE), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Parameters of scenario")
    printed = subprocess.run(
        [sys.executable, str(TOOL), str(BASELINE), "--no-others"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert "## Rules" in printed and "## Other scenario files" not in printed


def test_bad_scenario_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n', encoding="utf-8")
    assert odd.main([str(bad)]) == 2


def test_every_field_and_cell_type_is_listed(baseline_md: str) -> None:
    sc = load_scenario(BASELINE).scenario
    fields = "\n".join(_table_rows(_section(baseline_md, "Fields")))
    for name in sc.fields:
        assert f"| `{name}` |" in fields, name
    for name in sc.cell_types:
        assert f"### `{name}`" in baseline_md, name
    stat3 = "\n".join(_section(baseline_md, "STAT3 and SOCS3"))
    for name in sc.cell_types:
        assert f"| `{name}` |" in stat3, name


def test_one_row_per_rule(baseline_md: str) -> None:
    sc = load_scenario(BASELINE).scenario
    rows = _table_rows(_section(baseline_md, "Rules"))
    assert len(rows) == len(sc.rules)
    for k, (row, rule) in enumerate(zip(rows, sc.rules, strict=True)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:5] == [
            str(k),
            f"`{rule.cell_type}`",
            f"`{rule.signal}`",
            rule.direction,
            f"`{rule.behaviour}`",
        ]


def test_one_row_per_placement(baseline_md: str) -> None:
    sc = load_scenario(BASELINE).scenario
    assert len(_table_rows(_section(baseline_md, "Initial placement"))) == len(sc.placement)


def test_source_comments_reach_the_tables(baseline_md: str) -> None:
    comments = [
        (key, c)
        for key, c in _trailing_comments(BASELINE.read_text(encoding="utf-8"))
        if key not in NOT_TABULATED
    ]
    assert comments, "baseline.toml should carry its sources as comments"
    missing = [(k, c) for k, c in comments if c.replace("|", "\\|") not in baseline_md]
    assert not missing


def test_table_header_comments_reach_the_tables(baseline_md: str) -> None:
    text = BASELINE.read_text(encoding="utf-8")
    rules = "\n".join(_section(baseline_md, "Rules"))
    headers = 0
    for line in text.splitlines():
        code, comment, _ = odd.split_line(line)
        if code.strip().startswith("[") and comment:
            headers += 1
            assert comment in (rules if code.strip() == "[[rules]]" else baseline_md), line
    assert headers


def test_comment_scanner() -> None:
    text = "\n".join(
        [
            "# header line",
            "",
            "[a]",
            'colour = "#123456"   # hash inside a string is not a comment',
            "x = 1",
            "# block above",
            "[[r]]   # on the header",
            "inputs = [",
            "  { f = 'x' },   # first",
            "  { f = 'y' },",
            "  { f = 'z' },   # third",
            "]",
            "y = [1, 2]  # one line",
        ]
    )
    c = odd.scan_comments(text)
    assert c.header == "header line"
    assert c.keys[("a", "colour")] == "hash inside a string is not a comment"
    assert c.keys[("a", "x")] == ""
    assert c.tables[("r", 0)] == "on the header"
    assert c.above[("r", 0)] == "block above"
    assert c.elements[("r", 0, "inputs", 0)] == "first"
    assert ("r", 0, "inputs", 1) not in c.elements
    assert c.elements[("r", 0, "inputs", 2)] == "third"
    assert c.keys[("r", 0, "y")] == "one line"


@pytest.mark.parametrize(
    "path",
    [p for p in SCENARIOS if load_scenario(p).scenario.therapy][:3],
    ids=lambda p: p.name,
)
def test_intervention_file(path: Path) -> None:
    sc = load_scenario(path).scenario
    md = odd.render(path, others=False)
    rows = _table_rows(_section(md, "Therapies in this scenario"))
    assert len(rows) == len(sc.therapy)
    for row, th in zip(rows, sc.therapy, strict=True):
        assert f"`{th.kind}`" in row
    assert len(_table_rows(_section(md, "Rules"))) == len(sc.rules)


def test_other_files_are_listed_with_their_therapies(baseline_md: str) -> None:
    others = _section(baseline_md, "Other scenario files")
    for path in SCENARIOS:
        if path == BASELINE:
            continue
        assert f"### `{path.name}`" in others
        for th in load_scenario(path).scenario.therapy:
            assert any(f"`{th.kind}`" in line for line in others)
