"""The project's tracked files cite only what a user can find.

Sources are primary papers (author, year, journal) or the project's own
``docs/``; team-internal notes outside the repository are never referred to.
``CHANGELOG.md`` may keep the wording of its history.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Built from pieces so that this file, which git tracks too, does not match itself.
_B = "B" + "IO"  # as a whole word, the old abbreviation for the biology notes
_NOTES = (_B + "LOGY", "DE" + "SIGN.md", "PIT" + "FALLS.md", "../" + "shared")
INTERNAL = re.compile(
    "|".join(re.escape(n) for n in _NOTES)
    # the abbreviation as a word, as in "(X)", "X:", "X;" with X the word;
    # "BIOMD0000000151" (a BioModels id) is fine.
    + r"|\b" + _B + r"\b"
)
EXEMPT = {"CHANGELOG.md"}


def tracked_files(root: Path) -> list[str]:
    """Paths tracked by git under ``root`` (skips the test outside a checkout)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    return [p for p in proc.stdout.decode("utf-8").split("\0") if p]


def internal_references(root: Path) -> list[str]:
    """``path:line: text`` for every tracked line that refers to internal notes."""
    hits = []
    for rel in tracked_files(root):
        if rel in EXEMPT:
            continue
        path = root / rel
        if not path.is_file():  # deleted in the working tree, or a submodule
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary (images)
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if INTERNAL.search(line):
                hits.append(f"{rel}:{n}: {line.strip()[:120]}")
    return hits


def test_pattern_catches_the_old_references() -> None:
    bad = [
        f"#   {_B}      ../" + f"shared/{_B}" + "LOGY.md (the project's biology brief)",
        f"dt_min = 5.0  # a CTL at 3.6 um/min crosses ~1 site per tick ({_B})",
        f"half_life_min = 115.5  # k ~ 1e-4 /s, assumed ({_B}: no measured value)",
        f"(Kujawski 2010 Cancer Res; {_B}).",
        f'(Yu 2007; {_B} "cytokine blockade").',
        f"combination better than either alone ({_B}" + "LOGY.md; CL 2018)",
        "advances one tick in the order of DE" + "SIGN.md:",
        "# Pins checked offline in headless Chromium (PIT" + "FALLS.md):",
    ]
    good = [
        "# calibrate against Singh 2006 (BIOMD0000000151)",
        "# Inhibition by the drug field (Kortylewski 2005 Nat Med; assumed).",
        "the biology is data: cell types, fields and rules",
    ]
    assert all(INTERNAL.search(s) for s in bad)
    assert not any(INTERNAL.search(s) for s in good)


def test_no_tracked_file_refers_to_internal_notes() -> None:
    hits = internal_references(REPO)
    assert not hits, (
        "cite the primary paper or a docs/ file instead of internal notes:\n"
        + "\n".join(hits)
    )
