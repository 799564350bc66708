"""What a build reads, fingerprinted: so an unchanged build is skipped and a stale one is seen.

`source_hash` covers the files (the theme's content, about.md, the brand, the templates), the settings a
mailing shows, and the code that renders. The partner publications come from the database; the
build records the digest of those it read in the manifest (`partners`), and `is_current` reads
them again and compares. Both are cheap: no template, YAML or compiler is loaded here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mailer
from mailer.build.manifest import Manifest
from mailer.config import Settings
from mailer.partners.rows import digest, read_publications
from mailer.render.templates import template_sources

SHOWN_SETTINGS = ("public_base_url", "sender_name", "reply_to", "postal_address")
PACKAGE = Path(mailer.__file__).parent
RENDERING_CODE = ("build", "content", "render", "partners/selection.py", "partners/rows.py")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def code_digest() -> bytes:
    """Our own rendering code: a changed template filter or block order means a new build."""
    digest = hashlib.sha256(mailer.__version__.encode())
    for part in RENDERING_CODE:
        for path in _files(PACKAGE / part):
            if path.suffix == ".py":
                digest.update(path.relative_to(PACKAGE).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.digest()


def source_hash(settings: Settings, theme: str) -> str:
    """Fingerprint of every file and setting a build of THEME reads, and of the code."""
    digest = hashlib.sha256(code_digest())
    for root in (settings.content / theme, settings.content / "about.md",
                 settings.content / "brand.yaml", settings.content / "brand"):
        for path in _files(root):
            if path.exists():
                digest.update(str(path.relative_to(settings.root)).encode())
                digest.update(path.read_bytes())
    for name, data in template_sources(settings):  # the package's templates and the overrides
        digest.update(name.encode())
        digest.update(data)
    for name in SHOWN_SETTINGS:
        digest.update(str(getattr(settings, name)).encode())
    return digest.hexdigest()


def is_current(settings: Settings, manifest: Manifest, files_hash: str | None = None) -> bool:
    """Whether a build would read exactly what this manifest's build read."""
    if manifest.source_hash != (files_hash or source_hash(settings, manifest.theme)):
        return False
    if manifest.partners is None:
        return True
    return digest(read_publications(settings)) == manifest.partners
