"""The archive of published mailings and an Atom feed, so partners can point to us.

Both list only what has gone out: a mailing appears once a real send of it has started, or once
it is published by hand (`mailer publish THEME`); a build alone announces nothing. Either leaves
a marker in `out/.published/`, outside the theme folders a build replaces. Both are rewritten
from the manifests in `out/` after every build and when a mailing is published. Entry ids are
tag URIs made from the theme, the block and the mailing's date: they stay the same across
builds. Every entry has a summary.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from mailer import urls
from mailer.builds.manifest import Manifest, ManifestError, read_manifest
from mailer.config import Settings
from mailer.content.brand import load_brand
from mailer.errors import ContentError
from mailer.render.renderer import jinja_environment
from mailer.taxonomy import KINDS

ATOM = "http://www.w3.org/2005/Atom"


MARKERS = ".published"


class ArchiveError(ContentError):
    """A mailing that cannot be published as asked."""


def published_mailings(out: Path) -> list[Manifest]:
    """Manifests of every built mailing that has been published, newest first; one of an
    older version waits for its next build."""
    manifests = []
    for path in sorted(out.glob("*/manifest.json")):
        theme = path.parent.name
        if not theme.startswith(".") and (out / MARKERS / f"{theme}.json").exists():
            try:
                manifests.append(read_manifest(path.parent))
            except ManifestError:
                continue
    return sorted(manifests, key=lambda m: (m.date, m.theme), reverse=True)


def publish(settings: Settings, theme: str, why: str) -> bool:
    """Mark a built mailing as gone out and rewrite the archive; False when it already was.

    A real send calls this when it starts; `mailer publish` for a mailing only put online.
    """
    if not (settings.out / theme / "manifest.json").exists():
        raise ArchiveError(f"out/{theme} is not built: run `mailer build {theme}` first")
    marker = settings.out / MARKERS / f"{theme}.json"
    if marker.exists():
        return False
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _replace(marker, json.dumps({"published_at": stamp, "why": why}).encode() + b"\n")
    write_archive(settings)
    return True


def _tag(settings: Settings, date: dt.date | str, specific: str) -> str:
    return f"tag:{settings.list_domain},{date}:{specific}"


def _stamp(date: dt.date) -> str:
    return date.isoformat() + "T00:00:00Z"


def atom_feed(settings: Settings, mailings: list[Manifest]) -> bytes:
    """A valid Atom 1.0 document: one entry per mailing and one per article."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": "nl"})
    base = settings.public_base_url

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        element.text = text
        return element

    sub(feed, "id", _tag(settings, "2026", "mailings"))
    sub(feed, "title", "Ontwikkelagenda Veiligheid voorop: mailings en artikelen")
    sub(feed, "updated", _stamp(mailings[0].date) if mailings else "2026-01-01T00:00:00Z")
    sub(feed, "link", rel="self", href=urls.absolute(base, urls.FEED))
    sub(feed, "link", rel="alternate", type="text/html", href=urls.absolute(base, urls.ARCHIVE))
    author = sub(feed, "author")
    sub(author, "name", settings.sender_name)
    sub(author, "email", settings.reply_to)
    for mailing in mailings:
        label = KINDS.get(mailing.kind, mailing.kind)
        title = mailing.title if mailing.title == label else f"{label}: {mailing.title}"
        entries = [(mailing.theme, title, mailing.preheader or mailing.subject, mailing.public_url)]
        entries += [(f"{mailing.theme}/{a.id}", a.title, a.summary or f"Artikel uit {title}.", a.url)
                    for a in mailing.articles]
        for specific, title, summary, url in entries:
            entry = sub(feed, "entry")
            sub(entry, "id", _tag(settings, mailing.date, specific))
            sub(entry, "title", title)
            sub(entry, "updated", _stamp(mailing.date))
            sub(entry, "published", _stamp(mailing.date))
            sub(entry, "link", rel="alternate", type="text/html", href=url)
            sub(entry, "category", term=mailing.kind, label=label)
            sub(entry, "summary", summary)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _replace(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_archive(settings: Settings) -> list[Path]:
    """Write out/feed.xml, out/index.html and out/archief/<kind>.html; return their paths."""
    out = settings.out
    mailings = published_mailings(out)
    env = jinja_environment(settings.templates, autoescape=True)
    template = env.get_template("web/archive.html.j2")
    brand = load_brand(settings.content, settings.root)
    written = {out / "feed.xml": atom_feed(settings, mailings)}
    kinds = [k for k in KINDS if any(m.kind == k for m in mailings)]
    pages: dict[str, tuple[str | None, list[Manifest]]] = {"index.html": (None, mailings)}
    pages.update({f"archief/{k}.html": (k, [m for m in mailings if m.kind == k]) for k in kinds})
    for name, (kind, listed) in pages.items():
        prefix = "../" if "/" in name else ""
        html = template.render(settings=settings, brand=brand, kind=kind, kinds=kinds,
                               labels=KINDS, mailings=listed, prefix=prefix,
                               home_url=f"{prefix}index.html",
                               page_title=KINDS[kind] if kind else "Archief")
        written[out / name] = html.encode("utf-8")
    for path, data in written.items():
        _replace(path, data)
    return list(written)
