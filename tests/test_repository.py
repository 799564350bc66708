"""What a merge can leave behind unnoticed: conflict markers in a tracked file (the README's
tests read names and would still pass), or a local environment committed by mistake."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(rb"^(<{7}|>{7}) ", re.M)


def tracked() -> list[str]:
    found = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [name for name in found.stdout.decode().split("\0") if name]


def test_no_tracked_file_holds_a_conflict_marker() -> None:
    names = tracked()
    assert "README.md" in names  # the listing works
    marked = [name for name in names if (REPO / name).is_file() and not (REPO / name).is_symlink()
              and MARKER.search((REPO / name).read_bytes())]
    assert not marked, f"merge conflict markers left in: {', '.join(marked)}"


def test_no_virtual_environment_is_tracked() -> None:
    assert not [name for name in tracked() if name.split("/")[0].startswith(".venv")]
