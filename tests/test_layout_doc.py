"""README's "Layout" section names every module and subpackage of mailer/, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r"^  (\S+(?:, \S+)*)\s{2,}")  # "  db.py, models.py   engines, …"


def layout_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1].splitlines()


def documented() -> set[str]:
    names: set[str] = set()
    for line in layout_block():
        if match := ENTRY.match(line):
            names.update(name.strip() for name in match[1].split(","))
    return names


def in_tree() -> set[str]:
    package = ROOT / "mailer"
    return {f"{p.name}/" if p.is_dir() else p.name for p in package.iterdir()
            if p.name not in {"__init__.py", "__main__.py", "__pycache__"}
            and (p.is_dir() or p.suffix == ".py")}


def test_the_reader_finds_entries() -> None:
    assert {"config.py", "db.py", "models.py", "send/"} <= documented()


def test_layout_section_matches_the_tree() -> None:
    assert documented() == in_tree(), (
        f"missing from README: {sorted(in_tree() - documented())}; "
        f"gone from mailer/: {sorted(documented() - in_tree())}")
