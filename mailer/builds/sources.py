"""What a build reads, fingerprinted: so an unchanged build is skipped and a stale one is seen.

`source_hash` covers the files (the theme's content, about.md, the brand, the templates), the settings a
mailing shows, and the code that renders. The partner publications come from the database; the
build records the digest of those it read in the manifest (`partners`), and `is_current` reads
them again and compares. Both are cheap: no template, YAML or compiler is loaded here.
"""

from __future__ import annotations

import hashlib

from mailer.builds.manifest import Manifest
from mailer.config import Settings
from mailer.fingerprint import code_digest, files_under
from mailer.partners.rows import digest, read_publications
from mailer.render.templates import template_sources

SHOWN_SETTINGS = ("public_base_url", "sender_name", "reply_to", "postal_address")


def source_hash(settings: Settings, theme: str) -> str:
    """Fingerprint of every file and setting a build of THEME reads, and of the code."""
    digest = hashlib.sha256(code_digest())
    for root in (settings.content / theme, settings.content / "about.md",
                 settings.content / "brand.yaml", settings.content / "brand"):
        for path in files_under(root):
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
