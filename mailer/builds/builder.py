"""`mailer build THEME`: every segment's variant, the web pages and a manifest, written atomically.

When nothing the build reads has changed since the last build, and that build's files are
intact, it writes nothing: this check hashes files and reads the manifest, and loads none of the
rendering libraries. Otherwise `mailer.builds.writer` renders the theme.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from mailer.builds.manifest import ManifestError, read_manifest
from mailer.builds.result import BuildResult, Variant, size_check
from mailer.builds.sources import is_current, source_hash
from mailer.config import Settings


def build(settings: Settings, theme: str) -> BuildResult:
    """Build every region × audience variant of a theme into `out/<theme>/`, unless it is current."""
    started = time.perf_counter()
    files_hash = source_hash(settings, theme)
    result = _unchanged_build(settings, settings.out / theme, files_hash)
    if result is None:
        # Rendering loads Jinja2, MJML and the CSS inliner: only when there is something to render.
        from mailer.builds.writer import write_build

        result = write_build(settings, theme, files_hash)
    result.seconds = time.perf_counter() - started
    return result


def _unchanged_build(settings: Settings, folder: Path, files_hash: str) -> BuildResult | None:
    """The last build's result when it read what a build now would and its files are intact."""
    try:
        manifest = read_manifest(folder)
    except ManifestError:
        return None
    if not is_current(settings, manifest, files_hash):
        return None
    variants: dict[str, Variant] = {}
    segments: dict[str, Variant] = {}
    for key, entry in manifest.segments.items():
        variant = variants.get(entry.variant)
        if variant is None:
            variant = Variant(entry.variant, entry.blocks, entry.bytes, entry.hash)
            try:
                data = (folder / entry.html).read_bytes() + b"\0" + (folder / entry.text).read_bytes()
            except FileNotFoundError:
                return None
            if hashlib.sha256(data).hexdigest() != entry.hash or not (folder / entry.online).exists():
                return None
            variants[entry.variant] = variant
        variant.segments.append(key)
        segments[key] = variant
    if not all((folder / page).exists() for page in manifest.pages) or _strays(folder, variants):
        return None
    warnings = [w for v in variants.values() if (w := size_check(manifest.theme, v))]
    return BuildResult(manifest.theme, folder, list(variants.values()), segments, manifest.pages,
                       warnings, 0.0, manifest, unchanged=True)


def _strays(folder: Path, variants: dict[str, Variant]) -> bool:
    """Whether the variant folders hold files the manifest does not name (left by hand)."""
    expected = {name for v in variants.values() for name in (v.html, v.text, v.online)}
    found = {f"{sub}/{p.name}" for sub in ("mail", "online") for p in (folder / sub).iterdir()}
    return found != expected
