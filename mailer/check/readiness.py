"""`mailer check THEME`: is this mailing ready to go to real people? One result per check.

The checks read the build (built first when stale) and the content it came from:
placeholder blocks, links, images, alt text, the size Gmail sees, heading order, colour
contrast and, when installed, SpamAssassin. The studio shows the same results, and a real send
refuses to start while any check fails (unless forced, which the send records).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mailer import urls
from mailer.builds.manifest import Manifest, Segment
from mailer.builds.preview import SAMPLE_READER
from mailer.builds.result import MAX_BYTES, WARN_BYTES
from mailer.builds.writer import anonymous_links
from mailer.check import markup
from mailer.check.doctor import alignment_problem
from mailer.check.links import LinkCache, check_links
from mailer.check.spam import SpamCheckError, spamassassin, verdicts
from mailer.config import Settings
from mailer.content.loader import Mailing, load_mailing, shown_path
from mailer.errors import AccessError
from mailer.message.assembly import MessageCommon, MessageError, MessageTemplate
from mailer.send.preflight import current_manifest

if TYPE_CHECKING:
    from lxml import html as lxml_html

IMAGE_MAX_BYTES = 200 * 1024  # a portrait or header image; more only slows the mail down
SAMPLE_ADDRESS = "lezer@example.org"


@dataclass(frozen=True)
class Finding:
    """One thing to fix (or, as a warning, to look at), and where."""

    message: str
    where: str = ""
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class CheckResult:
    name: str
    title: str
    findings: list[Finding] = field(default_factory=list)
    skipped: str = ""  # why the check did not run
    note: str = ""  # what was looked at, for a passing check

    @property
    def status(self) -> str:
        """pass | warn | fail | skip"""
        if self.skipped:
            return "skip"
        if any(not f.warning for f in self.findings):
            return "fail"
        return "warn" if self.findings else "pass"


@dataclass
class Readiness:
    theme: str
    source_hash: str
    results: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def problems(self) -> list[str]:
        """One line per failing finding, prefixed with its check: what a refused send shows."""
        return [f"{r.name}: {f}" for r in self.failed for f in r.findings if not f.warning]


@dataclass
class _Built:
    """What the checks share: the mailing, the build and each variant parsed once."""

    settings: Settings
    mailing: Mailing
    manifest: Manifest
    folder: Path
    variants: dict[str, Segment]  # name → manifest entry (of its first segment)
    segments: dict[str, int]  # name → how many segments get it
    html: dict[str, str] = field(default_factory=dict)
    docs: dict = field(default_factory=dict)

    def label(self, name: str) -> str:
        return f"variant {name} ({self.segments[name]} segment{'s' * (self.segments[name] != 1)})"

    def locate(self, needle: str, paths: list[Path] | None = None) -> str:
        """file:line of the first line holding `needle` in `paths` (default: the theme's
        content files), or ""."""
        theme_dir = self.settings.content / self.mailing.theme
        for path in paths or [theme_dir / "mailing.yaml", *sorted(theme_dir.glob("*.md"))]:
            for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
                if needle in line:
                    return f"{shown_path(path, self.settings.root)}:{number}"
        return ""

    def local_file(self, url: str) -> Path | None:
        """The built file an address on our own site stands for, or None for other sites."""
        path = urls.site_path(self.settings.public_base_url, url)
        if path is None:
            return None
        return self.settings.out / path.lstrip("/").split("#")[0].split("?")[0]


def _placeholders(built: _Built) -> CheckResult:
    result = CheckResult("placeholders", "Placeholder blocks (example: true)")
    reach = {block: sum(built.segments[seg.variant] for seg in built.variants.values()
                        if block in seg.blocks) for block in (b.id for b in built.mailing.blocks)}
    for block in built.mailing.blocks:
        if block.example:
            path = built.settings.content / built.mailing.theme / Path(block.source).name
            where = built.locate("example:", [path]) or str(block.source)
            result.findings.append(Finding(
                f"{block.id} ({block.title!r}) is example text, in {reach[block.id]} segment(s)",
                where))
    result.note = f"{len(result.findings)} of {len(built.mailing.blocks)} blocks"
    return result


def _links(built: _Built, offline: bool) -> CheckResult:
    result = CheckResult("links", "Links answer (2xx or 3xx)")
    urls = list(dict.fromkeys(url for doc in built.docs.values() for url in markup.links(doc)))
    own = {u: path for u in urls if (path := built.local_file(u)) is not None}
    for url, path in own.items():
        # Only pages of a built folder (a theme, the archive) can be missing; /aanmelden and
        # the other pages of `mailer serve` are not files.
        top = path.relative_to(built.settings.out).parts[:1]
        if top and (built.settings.out / top[0]).is_dir() and not path.exists():
            result.findings.append(Finding(f"{url}: no such page in the build", built.locate(url)))
    others = [u for u in urls if u not in own]
    if offline:
        result.skipped = f"--offline: {len(others)} external links not asked"
        return result
    settings = built.settings
    cache = LinkCache(settings.out / ".cache" / "links.json", settings.link_cache_hours)
    for url, answer in check_links(others, cache, settings.link_timeout).items():
        if not answer.ok:
            result.findings.append(Finding(f"{url} answers {answer.describe()}", built.locate(url)))
    result.note = f"{len(others)} external links, {len(own)} on our own site"
    return result


def _images(built: _Built) -> CheckResult:
    result = CheckResult("images", "Images present and not oversized")
    seen = set()
    for doc in built.docs.values():
        for image in markup.images(doc):
            path = built.local_file(image.src)
            if path is None or image.src in seen:
                continue
            seen.add(image.src)
            where = built.locate(Path(image.src).name)
            if not path.is_file():
                result.findings.append(Finding(f"image {image.src} is not in the build", where))
            elif path.stat().st_size > IMAGE_MAX_BYTES:
                result.findings.append(Finding(
                    f"image {image.src} is {path.stat().st_size / 1024:.0f} KB, over "
                    f"{IMAGE_MAX_BYTES // 1024} KB: make it smaller", where))
    result.note = f"{len(seen)} images of our own"
    return result


def _alt(built: _Built) -> CheckResult:
    result = CheckResult("alt", "Alt text on every image")
    problems = dict.fromkeys(p for doc in built.docs.values()
                             for p in map(markup.alt_problem, markup.images(doc)) if p)
    result.findings = [Finding(p) for p in problems]
    return result


def _sample_message(built: _Built, name: str) -> bytes:
    manifest = built.manifest
    common = MessageCommon(0, "0" * 16, manifest.subject, manifest.topic, manifest.greeting,
                           manifest.greeting_named)
    entry = built.variants[name]
    template = MessageTemplate(built.settings, common, built.html[name],
                               (built.folder / entry.text).read_text("utf-8"), entry.online_url)
    links = anonymous_links(built.settings)
    return template.message(recipient_id="check", address=SAMPLE_ADDRESS, name=SAMPLE_READER,
                          unsubscribe=links["unsubscribe_url"],
                          preferences=links["preferences_url"]).data


def _html_part_bytes(message: bytes) -> int:
    parsed = email.message_from_bytes(message, policy=email.policy.SMTP)
    part = next(p for p in parsed.walk() if p.get_content_type() == "text/html")
    payload = part.get_payload()
    assert isinstance(payload, str)  # a text/html leaf, never a multipart
    return len(payload.encode())


def _size(built: _Built, messages: dict[str, bytes | str]) -> CheckResult:
    result = CheckResult("size", "Gmail size of the encoded HTML part")
    sizes = []
    for name, message in messages.items():
        if isinstance(message, str):
            result.findings.append(Finding(f"cannot build a message: {message}", built.label(name)))
            continue
        size = _html_part_bytes(message)
        sizes.append(size)
        if size > WARN_BYTES:
            result.findings.append(Finding(
                f"encoded HTML part is {size / 1024:.1f} KB; Gmail clips at {MAX_BYTES // 1024} KB",
                built.label(name), warning=size <= MAX_BYTES))
    if sizes:
        result.note = f"largest {max(sizes) / 1024:.1f} KB of {MAX_BYTES // 1024} KB"
    return result


def _per_variant(built: _Built, name: str, title: str,
                 problems: Callable[[lxml_html.HtmlElement], list[str]]) -> CheckResult:
    result = CheckResult(name, title)
    for variant, doc in built.docs.items():
        result.findings += [Finding(p, built.label(variant)) for p in problems(doc)]
    return result


def _contrast_lines(doc: lxml_html.HtmlElement) -> list[str]:
    return [f"{p.text!r}: {p.foreground} on {p.background} at {p.size_px:g}px is "
            f"{p.ratio:.2f}:1, needs {p.needed:g}:1" for p in markup.contrast(doc)]


def _spam(built: _Built, messages: dict[str, bytes | str]) -> CheckResult:
    result = CheckResult("spam", "SpamAssassin (local tests)")
    program = spamassassin()
    if program is None:
        result.skipped = "spamassassin is not installed"
        return result
    ready = {name: message for name, message in messages.items() if isinstance(message, bytes)}
    try:
        found = verdicts(list(ready.values()), program)
    except SpamCheckError as exc:
        result.findings.append(Finding(str(exc)))
        return result
    scores = [v.score for v in found]
    for name, v in zip(ready, found, strict=True):
        if v.spam:
            result.findings.append(Finding(
                f"scored {v.score:g} (spam from {v.required:g}): {', '.join(v.tests)}", built.label(name)))
    if scores:
        result.note = f"highest score {max(scores):g}"
    return result


def _alignment(settings: Settings) -> CheckResult:
    """DMARC: a real send over SMTP needs From aligned with the DKIM signature."""
    result = CheckResult("alignment", "From and DKIM aligned (DMARC)")
    if not settings.smtp_host:
        result.skipped = "no smtp host: messages go to the local outbox"
        return result
    problem = alignment_problem(settings)
    if problem:
        result.findings.append(Finding(f"{problem}; see `mailer doctor`"))
    else:
        result.note = f"From {settings.sender_email} aligns with d={settings.dkim_domain}"
    return result


def load_built(settings: Settings, theme: str, manifest: Manifest | None = None) -> _Built:
    """What the checks read: `manifest` (the gate's), else THEME's, built first when stale."""
    manifest = manifest or current_manifest(settings, theme)
    mailing = load_mailing(settings.content, theme, settings.root)
    variants: dict[str, Segment] = {}
    segments: dict[str, int] = {}
    for entry in manifest.segments.values():
        variants.setdefault(entry.variant, entry)
        segments[entry.variant] = segments.get(entry.variant, 0) + 1
    folder = settings.out / theme
    built = _Built(settings, mailing, manifest, folder, variants, segments)
    for name, entry in variants.items():
        built.html[name] = (folder / entry.html).read_text("utf-8")
        built.docs[name] = markup.parse(built.html[name])
    return built


def check_theme(settings: Settings, theme: str, *, offline: bool = False,
                manifest: Manifest | None = None) -> Readiness:
    """Every readiness check of THEME on `manifest` (the gate's; else built first when stale);
    `offline` asks no server."""
    built = load_built(settings, theme, manifest)
    messages: dict[str, bytes | str] = {}
    for name in built.variants:
        try:
            messages[name] = _sample_message(built, name)
        except MessageError as exc:
            messages[name] = str(exc)
    results = [
        _placeholders(built),
        _links(built, offline),
        _images(built),
        _alt(built),
        _size(built, messages),
        _per_variant(built, "headings", "Heading order", markup.headings),
        _per_variant(built, "contrast", "Colour contrast (WCAG AA)", _contrast_lines),
        _spam(built, messages),
        _alignment(settings),
    ]
    return Readiness(theme, built.manifest.source_hash, results)


class NotReady(AccessError):
    """A real send was asked for while readiness checks fail, and nobody forced it."""

    def __init__(self, readiness: Readiness):
        self.readiness = readiness
        lines = "\n".join(f"  {p}" for p in readiness.problems())
        super().__init__(f"{readiness.theme} is not ready to send: {len(readiness.failed)} "
                         f"check(s) fail\n{lines}\nFix them (see `mailer check {readiness.theme}`), "
                         'or send anyway with --force --reason "why"; both are recorded.')

