"""A full build: load the theme, render every distinct variant and the pages, check, swap in.

The build renders into a temporary folder beside `out/<theme>` and swaps it in only when every
check passed, so a failed build never leaves half-written output behind. Compiled HTML comes from
the compile cache when a variant's MJML source is unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from mailer import urls
from mailer.builds.archive import write_archive
from mailer.builds.cache import CompileCache
from mailer.builds.manifest import Article, Manifest, Segment, variant_digest, write_manifest
from mailer.builds.result import BuildError, BuildResult, Variant, size_check
from mailer.config import Settings
from mailer.content.loader import Mailing, load_mailing
from mailer.content.segments import all_segments, segment_key, select_blocks
from mailer.message.encoding import encoded_size
from mailer.partners import rows
from mailer.partners.rows import read_publications
from mailer.partners.selection import with_partner_block
from mailer.render.events import event_calendar, has_calendar_file
from mailer.render.renderer import CompiledVariant, Renderer

_HREF_ANCHOR = re.compile(r'href="#([^"]+)"')
_ID = re.compile(r'\sid="([^"]+)"')


def check_anchors(html: str, where: str) -> None:
    """Every ↓ link of the table of contents must land on an id in the same file."""
    ids = set(_ID.findall(html))
    missing = sorted(set(_HREF_ANCHOR.findall(html)) - ids)
    if missing:
        raise BuildError(f"{where}: table-of-contents link(s) without a target: {', '.join(missing)}")


def anonymous_links(settings: Settings) -> dict[str, str]:
    """The link slots for a reader without personal links (the web version, a test send):
    the general unsubscribe and sign-up pages."""
    base = settings.public_base_url
    return {"unsubscribe_url": urls.absolute(base, urls.UNSUBSCRIBE_HELP),
            "preferences_url": urls.absolute(base, urls.SIGNUP)}


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


def write_build(settings: Settings, theme: str, files_hash: str) -> BuildResult:
    """Render THEME into a new `out/<theme>/`, replacing the old one only when all checks pass."""
    mailing = load_mailing(settings.content, theme, settings.root)
    partners = None
    if mailing.partners is not None:
        publications = read_publications(settings)
        partners = rows.digest(publications)
        mailing = with_partner_block(mailing, publications)
    renderer = Renderer(settings, mailing)
    cache = CompileCache(settings.out / ".cache" / theme)
    final = settings.out / theme
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{theme}.building-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        result = _build_into(tmp, settings, mailing, renderer, cache, files_hash, partners)
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cache.save()
    write_archive(settings)
    result.path = final
    return result


def _build_into(tmp: Path, settings: Settings, mailing: Mailing, renderer: Renderer,
                cache: CompileCache, files_hash: str, partners: str | None) -> BuildResult:
    by_blocks: dict[tuple, Variant] = {}
    segments: dict[str, Variant] = {}
    warnings: list[str] = []
    for region, audience in all_segments():
        blocks = select_blocks(mailing.blocks, region, audience)
        ids = tuple(b.id for b in blocks)
        key = tuple((b.id, tuple(i.url for i in b.items)) for b in blocks)
        variant = by_blocks.get(key)
        if variant is None:
            compiled = renderer.compile_variant(blocks, cache)
            variant = _store_variant(tmp, settings, mailing, renderer, compiled, ids, warnings)
            by_blocks[key] = variant
        segment = segment_key(region, audience)
        variant.segments.append(segment)
        segments[segment] = variant
    pages = _write_pages(tmp, settings, mailing, renderer)
    manifest = Manifest(
        theme=mailing.theme, kind=mailing.kind, title=mailing.title, subject=mailing.subject,
        preheader=mailing.preheader, topic=mailing.topic, date=mailing.date,
        greeting=mailing.greeting, greeting_named=mailing.greeting_named,
        public_url=renderer.urls.home, source_hash=files_hash, partners=partners,
        segments={key: Segment(v.html, v.text, v.online, renderer.urls.variant(v.name), v.blocks,
                               v.bytes, v.hash, v.name)
                  for key, v in segments.items()},
        pages=pages,
        articles=[Article(b.id, b.title, b.lead or b.subtitle, renderer.urls.article(b.id))
                  for b in mailing.blocks if b.has_page],
    )
    write_manifest(tmp, manifest)
    return BuildResult(mailing.theme, tmp, list(by_blocks.values()), segments, pages, warnings, 0.0,
                       manifest)


def _store_variant(tmp: Path, settings: Settings, mailing: Mailing, renderer: Renderer,
                   compiled: CompiledVariant, ids: tuple[str, ...], warnings: list[str]) -> Variant:
    digest = variant_digest(compiled.html.encode(), compiled.text.encode())
    size = encoded_size(compiled.html)  # as sent: Gmail counts the encoded part
    variant = Variant(digest[:12], ids, size, digest)
    if warning := size_check(mailing.theme, variant):
        warnings.append(warning)
    check_anchors(compiled.html, variant.where(mailing.theme))
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
