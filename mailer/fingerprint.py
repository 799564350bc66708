"""The code that renders a mailing, as one digest: a change to it makes every build stale.

The unchanged-build check (`mailer.build.sources`) and the compile cache (`mailer.build.cache`)
both key on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mailer

PACKAGE = Path(mailer.__file__).parent
RENDERING_CODE = ("build", "content", "render", "partners/selection.py", "partners/rows.py")


def files_under(root: Path) -> list[Path]:
    """Every file under a folder in a stable order, or the one file `root` names."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def code_digest() -> bytes:
    """Our own rendering code: a changed template filter or block order means a new build."""
    digest = hashlib.sha256(mailer.__version__.encode())
    for part in RENDERING_CODE:
        for path in files_under(PACKAGE / part):
            if path.suffix == ".py":
                digest.update(path.relative_to(PACKAGE).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.digest()
