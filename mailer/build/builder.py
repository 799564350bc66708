"""`mailer build THEME`: every segment's variant, the web pages and a manifest, written atomically.

The build renders into a temporary folder beside `out/<theme>` and swaps it in only when every
check passed, so a failed build never leaves half-written output behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mailer.build.archive import write_archive
from mailer.config import Settings
from mailer.content.loader import Mailing, load_mailing
from mailer.content.segments import all_segments, segment_key, select_blocks
from mailer.partners.publications import with_partner_block
from mailer.render.events import event_calendar, has_calendar_file
from mailer.render.renderer import CompiledVariant, Renderer

WARN_BYTES = 90 * 1024
MAX_BYTES = 102 * 1024  # Gmail clips messages whose HTML is larger than this
_HREF_ANCHOR = re.compile(r'href="#([^"]+)"')
_ID = re.compile(r'\sid="([^"]+)"')


class BuildError(Exception):
    """The mailing rendered, but the result must not be sent; nothing was written."""


@dataclass
class Variant:
    """One distinct compiled mail, shared by every segment that receives the same blocks."""

    name: str
    blocks: tuple[str, ...]
    bytes: int
    hash: str
    segments: list[str] = field(default_factory=list)

    @property
    def html(self) -> str:
        return f"mail/{self.name}.html"

    @property
    def text(self) -> str:
        return f"mail/{self.name}.txt"

    @property
    def online(self) -> str:
        return f"online/{self.name}.html"


@dataclass
class BuildResult:
    theme: str
    path: Path
    variants: list[Variant]
    segments: dict[str, Variant]
    pages: list[str]
    warnings: list[str]
    seconds: float


def source_hash(settings: Settings, theme: str) -> str:
    """Fingerprint of everything a build reads, so a send can tell whether the build is stale."""
    digest = hashlib.sha256()
    files = [settings.content / theme, settings.content / "about.md", settings.content / "brand.yaml",
             settings.content / "brand", settings.templates]
    for root in files:
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in paths:
            if path.exists():
                digest.update(str(path.relative_to(settings.root)).encode())
                digest.update(path.read_bytes())
    for name in ("public_base_url", "sender_name", "reply_to", "postal_address"):
        digest.update(str(getattr(settings, name)).encode())
    return digest.hexdigest()


def check_anchors(html: str, where: str) -> None:
    """Every ↓ link of the table of contents must land on an id in the same file."""
    ids = set(_ID.findall(html))
    missing = sorted(set(_HREF_ANCHOR.findall(html)) - ids)
    if missing:
        raise BuildError(f"{where}: table-of-contents link(s) without a target: {', '.join(missing)}")


def anonymous_links(settings: Settings) -> dict[str, str]:
    """The link slots for a reader without personal links (the web version, a test send):
    the general unsubscribe and sign-up pages."""
    base = settings.public_base_url.rstrip("/")
    return {"unsubscribe_url": f"{base}/afmelden", "preferences_url": f"{base}/aanmelden"}


def anonymous_slots(settings: Settings, mailing: Mailing, name: str, renderer: Renderer) -> dict[str, str]:
    """Slot values for the web version, which nobody in particular reads."""
    return {
        "greeting": mailing.greeting,
        **anonymous_links(settings),
        "webversion_url": renderer.urls.variant(name),
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def build(settings: Settings, theme: str) -> BuildResult:
    """Build every region × audience variant of a theme into `out/<theme>/`."""
    started = time.perf_counter()
    mailing = with_partner_block(settings, load_mailing(settings.content, theme, settings.root))
    renderer = Renderer(settings, mailing)
    final = settings.out / theme
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{theme}.building-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        result = _build_into(tmp, settings, mailing, renderer)
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_archive(settings)
    result.path = final
    result.seconds = time.perf_counter() - started
    return result


def _build_into(tmp: Path, settings: Settings, mailing: Mailing, renderer: Renderer) -> BuildResult:
    by_blocks: dict[tuple, Variant] = {}
    segments: dict[str, Variant] = {}
    warnings: list[str] = []
    for region, audience in all_segments():
        blocks = select_blocks(mailing.blocks, region, audience)
        ids = tuple(b.id for b in blocks)
        key = tuple((b.id, tuple(i.url for i in b.items)) for b in blocks)
        variant = by_blocks.get(key)
        if variant is None:
            compiled = renderer.compile_variant(blocks)
            variant = _store_variant(tmp, settings, mailing, renderer, compiled, ids, warnings)
            by_blocks[key] = variant
        segment = segment_key(region, audience)
        variant.segments.append(segment)
        segments[segment] = variant
    pages = _write_pages(tmp, settings, mailing, renderer)
    manifest = {
        "theme": mailing.theme,
        "kind": mailing.kind,
        "title": mailing.title,
        "subject": mailing.subject,
        "preheader": mailing.preheader,
        "topic": mailing.topic,
        "date": mailing.date.isoformat(),
        "greeting": mailing.greeting,
        "greeting_named": mailing.greeting_named,
        "public_url": renderer.urls.home,
        "source_hash": source_hash(settings, mailing.theme),
        "segments": {
            key: {"html": v.html, "text": v.text, "online": v.online,
                  "online_url": renderer.urls.variant(v.name), "blocks": list(v.blocks),
                  "bytes": v.bytes, "hash": v.hash, "variant": v.name}
            for key, v in segments.items()
        },
        "pages": pages,
        "articles": [
            {"id": b.id, "title": b.title, "summary": b.lead or b.subtitle,
             "url": renderer.urls.article(b.id)}
            for b in mailing.blocks if b.has_page
        ],
    }
    _write(tmp / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return BuildResult(mailing.theme, tmp, list(by_blocks.values()), segments, pages, warnings, 0.0)


def _store_variant(tmp: Path, settings: Settings, mailing: Mailing, renderer: Renderer,
                   compiled: CompiledVariant, ids: tuple[str, ...], warnings: list[str]) -> Variant:
    digest = hashlib.sha256((compiled.html + "\0" + compiled.text).encode()).hexdigest()
    size = len(compiled.html.encode())
    variant = Variant(digest[:12], ids, size, digest)
    where = f"{mailing.theme} variant {variant.name} (blocks: {', '.join(ids) or 'none'})"
    if size > MAX_BYTES:
        raise BuildError(f"{where}: HTML is {size / 1024:.1f} KB, over the {MAX_BYTES // 1024} KB "
                         "at which Gmail clips a message; shorten the leads or split the mailing")
    if size > WARN_BYTES:
        warnings.append(f"{where}: HTML is {size / 1024:.1f} KB, close to Gmail's "
                        f"{MAX_BYTES // 1024} KB clipping limit")
    check_anchors(compiled.html, where)
    _write(tmp / variant.html, compiled.html)
    _write(tmp / variant.text, compiled.text)
    online, _ = compiled.fill(anonymous_slots(settings, mailing, variant.name, renderer))
    _write(tmp / variant.online, online)
    return variant


def _write_pages(tmp: Path, settings: Settings, mailing: Mailing, renderer: Renderer) -> list[str]:
    pages = {"index.html": renderer.page("index.html.j2"), "bundel.html": renderer.page("bundle.html.j2")}
    for block in mailing.blocks:
        if block.has_page:
            pages[f"{block.id}.html"] = renderer.page("article.html.j2", article=block)
    for name, html in pages.items():
        _write(tmp / name, html)
    for block in filter(has_calendar_file, mailing.blocks):
        page = renderer.urls.article(block.id) if block.has_page else renderer.urls.home
        uid = f"{mailing.theme}.{block.id}@{settings.list_domain}"
        ics = event_calendar(block, uid, settings.timezone, mailing.date, page)
        (tmp / f"{block.id}.ics").write_bytes(ics)
    theme_dir = settings.content / mailing.theme
    images = [(theme_dir, p.photo) for b in mailing.blocks for p in b.people if p.photo]
    if mailing.header_image:
        images.append((theme_dir, mailing.header_image.src))
    images += [(settings.content, image.src) for image in renderer.brand.images()]
    for folder, name in images:
        target = tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / name, target)
    return sorted(pages)
