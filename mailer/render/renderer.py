"""Turn a mailing's blocks into HTML and text: Jinja2 → MJML → mjml-python → css-inline.

The expensive steps run once per distinct block set. What differs per recipient (greeting,
unsubscribe and preference links, web-version link) is left as `[[slot-<key>:name]]` markers
that survive compilation and are filled later by plain string joins. The key is an HMAC of the
variant's own source with the project secret, written in the first line of each compiled part:
content and partner feeds cannot guess it, so slot syntax they carry stays inert text, while an
unchanged source keeps its key (and its compile-cache entry).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html as html_lib
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup
from mjml import mjml2html

from mailer import urls
from mailer.config import Settings
from mailer.content.brand import load_brand
from mailer.content.loader import Block, Mailing
from mailer.errors import ContentError
from mailer.render.bytecode import TemplateBytecodeCache
from mailer.render.dates import dutch_date, dutch_datetime
from mailer.render.events import event_when, has_calendar_file
from mailer.render.inline import inline_css
from mailer.render.overrides import OverridableLoader
from mailer.render.plaintext import markdown_to_text
from mailer.taxonomy import KINDS, label

SLOTS = ("greeting", "unsubscribe_url", "preferences_url", "webversion_url")
SLOT_HEADER = "<!--slots:{key}-->\n"
_HEADER_RE = re.compile(r"<!--slots:([0-9a-f]{16})-->\n")
_EMAIL_WRAPPER = re.compile(r'<div [^>]*aria-roledescription="email"')
_md = MarkdownIt("commonmark", {"html": False})


class RenderError(ContentError):
    """A template or the MJML compiler failed; the message says which mailing and why."""


def markdown_html(source: str, below: int = 1) -> Markup:
    """Markdown as HTML whose headings sit below the page's own level-`below` heading."""
    tokens = _md.parse(source or "")
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, max(int(token.tag[1]), below + 1))}"
    return Markup(_md.renderer.render(tokens, _md.options, {}))


def slot(key: str, name: str) -> Markup:
    """A per-recipient placeholder under this variant's key; the name must be one of SLOTS."""
    if name not in SLOTS:
        raise RenderError(f"unknown slot {name!r}")
    return Markup(f"[[slot-{key}:{name}]]")


def slot_key(secret: str, *sources: str) -> str:
    """The slot key of a variant: stable for the same sources, unguessable without the secret."""
    digest = hashlib.sha256("\0".join(sources).encode()).digest()
    return hmac.new(secret.encode(), digest, hashlib.sha256).hexdigest()[:16]


def split_slots(body: str) -> list[str]:
    """A compiled part as (text, name, text, …), splitting only on the markers of the key in its
    first line; any other slot syntax (from content or a feed) is left as text."""
    header = _HEADER_RE.match(body)
    if header is None:
        raise RenderError("compiled mail without a slot key line; run `mailer build` again")
    marker = re.compile(rf"\[\[slot-{header[1]}:([a-z_]+)\]\]")
    return marker.split(body[header.end():])


@dataclass(frozen=True)
class Urls:
    """Every public address a mailing links to, under the configured base URL."""

    base: str
    theme: str
    reply_address: str
    subject: str

    @property
    def home(self) -> str:
        return urls.theme_page(self.base, self.theme, "index.html")

    @property
    def subscribe(self) -> str:
        return urls.absolute(self.base, urls.SIGNUP)

    @property
    def reply(self) -> str:
        return f"mailto:{self.reply_address}?subject=Reactie%20op%20{self.subject.replace(' ', '%20')}"

    def article(self, block_id: str) -> str:
        return urls.theme_page(self.base, self.theme, f"{block_id}.html")

    def bundle(self, block_id: str | None = None) -> str:
        anchor = f"#{block_id}" if block_id else ""
        return urls.theme_page(self.base, self.theme, f"bundel.html{anchor}")

    def calendar(self, block_id: str) -> str:
        return urls.theme_page(self.base, self.theme, f"{block_id}.ics")

    def image(self, path: str) -> str:
        return urls.theme_page(self.base, self.theme, path)

    def variant(self, name: str) -> str:
        return urls.theme_page(self.base, self.theme, f"online/{name}.html")


def greeting(anonymous: str, named: str, name: str) -> str:
    """The greeting slot: `named` with {naam} filled in when the name is known, else `anonymous`."""
    return named.replace("{naam}", name) if name and named else anonymous


def slot_value(value: str, html: bool) -> str:
    """A slot value as it goes into the HTML (escaped) or the text part (as is)."""
    return html_lib.escape(value, quote=True) if html else value


class CompiledVariant:
    """HTML and text of one variant with slots; `fill` makes one recipient's copy cheaply.

    `html` and `text` are the stored form, each starting with its SLOT_HEADER line.

    `html_parts` and `text_parts` alternate constant text and slot names (text, name, text, …),
    for a sender that encodes the constant text once per send.
    """

    __slots__ = ("html", "text", "html_parts", "text_parts")

    def __init__(self, html: str, text: str):
        self.html = html
        self.text = text
        self.html_parts = split_slots(html)
        self.text_parts = split_slots(text)

    @staticmethod
    def _join(parts: list[str], values: Mapping[str, str], html: bool) -> str:
        out = parts[:]
        for i in range(1, len(out), 2):
            out[i] = slot_value(values[out[i]], html)
        return "".join(out)

    def fill(self, values: Mapping[str, str]) -> tuple[str, str]:
        """Return (html, text) with every slot replaced; values are escaped for HTML."""
        return self._join(self.html_parts, values, True), self._join(self.text_parts, values, False)


def mjml_to_html(source: str) -> str:
    """The expensive step: MJML → HTML with inlined CSS and a main landmark. ValueError when
    the MJML is invalid."""
    return with_main_landmark(inline_css(mjml2html(source, fonts={})))


def with_main_landmark(html: str) -> str:
    """Wrap the mail's content in a main landmark, so a screen reader can jump straight to it
    and every part of the mail sits in a landmark (axe: landmark-one-main, region)."""
    start = _EMAIL_WRAPPER.search(html)
    end = html.rfind("</body>")
    if start is None or end < 0:
        raise RenderError("compiled mail has no email wrapper <div> inside <body>")
    return (f'{html[: start.start()]}<div role="main">{html[start.start() : end].rstrip()}\n</div>\n'
            f"{html[end:]}")


@functools.lru_cache(maxsize=16)
def jinja_environment(templates: Path, autoescape: bool) -> Environment:
    """One environment per templates folder, kept: it compiles each template once per process
    (or loads it from the bytecode cache) and recompiles only a template whose file changed (the
    studio rebuilds on every save)."""
    env = Environment(
        loader=OverridableLoader(templates),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
        bytecode_cache=TemplateBytecodeCache(autoescape),
    )
    env.filters.update(
        markdown=markdown_html,
        markdown_inline=lambda s: Markup(_md.renderInline(s or "")),
        plaintext=markdown_to_text,
        dutch_date=dutch_date,
        dutch_datetime=dutch_datetime,
        region_name=lambda slug: label("region", slug),
        event_when=event_when,
    )
    env.tests["with_calendar_file"] = has_calendar_file
    return env


class Renderer:
    """Renders one mailing: its mail variants, its text parts and its web pages."""

    def __init__(self, settings: Settings, mailing: Mailing):
        self.settings = settings
        self.mailing = mailing
        self.urls = Urls(settings.public_base_url, mailing.theme, settings.reply_to, mailing.subject)
        # Autoescape is ON for every template here, whatever the suffix (.mjml is not covered
        # by select_autoescape); the text templates get their own environment without it.
        self.markup_env = jinja_environment(settings.templates, autoescape=True)
        self.text_env = jinja_environment(settings.templates, autoescape=False)
        self.brand = load_brand(settings.content, settings.root)

    def context(self, blocks: Iterable[Block]) -> dict[str, Any]:
        blocks = tuple(blocks)
        present = {b.id for b in blocks}
        return {
            "mailing": self.mailing,
            "blocks": blocks,
            "toc": [self.mailing.block(i) for i in self.mailing.toc if i in present],
            "show_toc": self.mailing.kind != "update" and len(blocks) > 1,
            "has_bundle": self.mailing.kind != "update",
            "heading": self.mailing.title,
            "kind_label": KINDS.get(self.mailing.kind, ""),
            "topic_name": label("topic", self.mailing.topic),
            "settings": self.settings,
            "urls": self.urls,
            "brand": self.brand,
        }

    def sources(self, blocks: Iterable[Block]) -> tuple[str, str, str]:
        """The MJML source and the text part of one variant before compilation, and their key."""
        # Render with a throwaway nonce, then swap in the key derived from the nonce-free sources.
        nonce = secrets.token_hex(16)
        context = self.context(blocks)
        context["slot"] = functools.partial(slot, nonce)
        source = self.markup_env.get_template("mjml/mailing.mjml.j2").render(context)
        text = self.text_env.get_template("text/mailing.txt.j2").render(context)
        text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
        key = slot_key(self.settings.secret_key, source.replace(nonce, ""), text.replace(nonce, ""))
        return source.replace(nonce, key), text.replace(nonce, key), key

    def compile_variant(self, blocks: Iterable[Block],
                        compile_mjml: Callable[[str], str] = mjml_to_html) -> CompiledVariant:
        """Run once per distinct block set, never per recipient; `compile_mjml` may be a cache."""
        source, text, key = self.sources(blocks)
        try:
            html = compile_mjml(source)
        except ValueError as exc:
            raise RenderError(f"{self.mailing.theme}: MJML compilation failed: {exc}") from exc
        header = SLOT_HEADER.format(key=key)
        return CompiledVariant(header + html, header + text)

    def page(self, template: str, **extra: Any) -> str:
        """A web page (article, bundle, index) in the mail's look."""
        # Pages link relatively ("../<theme>/…"), so they work on disk and once published.
        urls = Urls("..", self.mailing.theme, self.settings.reply_to, self.mailing.subject)
        context = self.context(self.mailing.blocks)
        context.update(extra, urls=urls, home_url=urls.home)
        return self.markup_env.get_template(f"web/{template}").render(context)
