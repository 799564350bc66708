"""The code that renders a mailing, as one digest: a change to it makes every build stale.

The digest covers our own rendering code, mailer's version and the versions of the libraries
that turn a mailing into HTML, so an upgrade of any of them never reuses compiled HTML or
templates made by the old one. The unchanged-build check (`mailer.builds.sources`), the compile
cache (`mailer.builds.cache`) and the template bytecode cache key on it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from pathlib import Path

import mailer

PACKAGE = Path(mailer.__file__).parent
RENDERING_CODE = ("builds", "content", "render", "partners/selection.py", "partners/rows.py")
# Distribution → the package it installs. mjml-python compiles, css-inline inlines; the others
# write the MJML source, the text part and the calendar files.
RENDERING_LIBRARIES = {"mjml-python": "mjml", "css-inline": "css_inline", "jinja2": "jinja2",
                       "markdown-it-py": "markdown_it", "icalendar": "icalendar"}


def files_under(root: Path) -> list[Path]:
    """Every file under a folder in a stable order, or the one file `root` names."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def installed_version(distribution: str, package: str) -> str:
    """The installed version of a distribution, from the name of the `.dist-info` folder beside
    its package, without importing it: importlib.metadata costs 60 ms, more than a build that
    has nothing to do. Falls back to importlib.metadata for other kinds of installs."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin:
        wanted = re.sub(r"[-_.]+", "_", distribution).lower()
        site = Path(spec.origin).parent.parent
        for entry in os.scandir(site):
            name, _, found = entry.name.removesuffix(".dist-info").partition("-")
            if entry.name.endswith(".dist-info") and name.lower() == wanted:
                return found
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


@functools.cache
def code_digest() -> bytes:
    """Our rendering code and the versions of mailer and its rendering libraries: a changed
    template filter, block order or compiler means a new build. Computed once per process."""
    digest = hashlib.sha256(f"mailer {mailer.__version__}\n".encode())
    for distribution, package in RENDERING_LIBRARIES.items():
        digest.update(f"{distribution} {installed_version(distribution, package)}\n".encode())
    for part in RENDERING_CODE:
        for path in files_under(PACKAGE / part):
            if path.suffix == ".py":
                digest.update(path.relative_to(PACKAGE).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.digest()
