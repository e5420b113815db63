"""Shipped code, docs and the README cite papers a reader can find (authors, year, title, arXiv id),
never the team's internal notes, design documents or seed file names."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INTERNAL = re.compile(
    r"shared/(?:seeds|notes)|\bnotes/[\w-]+\.md|\bDESIGN\.md|\b\d{3}_[0-9a-f]{16}\b|seeds-(?:sqrl|safer)"
    r"|\b[Dd]igest (?:§|[AB]\.\d|item|``)|\b(?:A\.9|A\.10|B\.7|B\.8)\.\d"
)


def shipped_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "Makefile"]
    for folder, patterns in (
        ("safeshield", ("*.py",)),
        ("tests", ("*.py",)),
        ("docs", ("*.md",)),
        ("examples", ("*.py",)),
        ("benchmarks", ("*.py", "*.md")),
    ):
        for pattern in patterns:
            files.extend((ROOT / folder).rglob(pattern))
    return [f for f in files if f.is_file() and f.resolve() != Path(__file__).resolve()]


def test_no_internal_references_in_shipped_files():
    found = []
    for path in shipped_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if INTERNAL.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "internal references a user cannot follow:\n" + "\n".join(found)


def test_the_pattern_catches_what_it_is_for():
    for text in (
        "see shared/seeds/000_7a4cb64995c033c4.txt",
        "digest §1.12",
        "(DESIGN.md)",
        "notes/anchors.md",
        "seed ``004_36bcc7e0cd121378``",
        "A.9.6: the loss",
    ):
        assert INTERNAL.search(text), text
    for text in ("arXiv:2010.14603", "hashlib.sha256().hexdigest()", "SQRL Eq. 3", "App. A.6"):
        assert not INTERNAL.search(text), text
