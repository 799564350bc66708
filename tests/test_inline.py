"""The CSS inliner against premailer's output: the same document to an email client.

tests/data/golden/<theme>.mjml is a compiled variant's MJML source; <theme>.premailer.html is what
the build produced from it with premailer before css-inline replaced it (byte-identical to that
build's mail/*.html). Both are parsed and normalised: serialisation (quotes, line breaks, doctype
case), equivalent CSS values (`0pt` = `0`, `#fff` = `#ffffff`) and the order of declarations that
cannot override each other are ignored; every element, attribute, text and declaration counts.
"""

from __future__ import annotations

import difflib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from mjml import mjml2html

from mailer.render.inline import inline_css

GOLDEN = Path(__file__).parent / "data" / "golden"


def _css_value(value: str) -> str:
    value = " ".join(value.split()).lower()
    value = re.sub(r"(?<![\w.#-])0(?:px|pt|em|%)(?![\w%])", "0", value)
    return re.sub(r"#([0-9a-f])([0-9a-f])([0-9a-f])(?![0-9a-f])", r"#\1\1\2\2\3\3", value)


def _style(text: str) -> str:
    declarations = [d.split(":", 1) for d in text.split(";") if d.strip()]
    pairs = [(name.strip().lower(), _css_value(value)) for name, value in declarations]
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"a property twice in {text!r}"
    # Only a shorthand and its longhands (margin, margin-top) override each other: keep their order.
    related = [n for n in names if any(o != n and (o.startswith(n + "-") or n.startswith(o + "-"))
                                       for o in names)]
    return f"{dict(sorted(pairs))} order {related}"


class _Normaliser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        shown = {k: _style(v or "") if k == "style" else (v or "") for k, v in attrs}
        self.lines.append(f"<{tag} {dict(sorted(shown.items()))}")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        self.lines.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if data.split():
            self.lines.append(" ".join(data.split()))

    def handle_comment(self, data: str) -> None:
        self.lines.append(f"<!-- {' '.join(data.split())} -->")

    def handle_decl(self, decl: str) -> None:
        self.lines.append(decl.lower())


def normalised(html: str) -> list[str]:
    parser = _Normaliser()
    parser.feed(html)
    return parser.lines


@pytest.mark.parametrize("theme", ["stalking", "update-2021"])
def test_inlined_html_equals_premailers(theme: str) -> None:
    source = (GOLDEN / f"{theme}.mjml").read_text(encoding="utf-8")
    expected = normalised((GOLDEN / f"{theme}.premailer.html").read_text(encoding="utf-8"))
    got = normalised(inline_css(mjml2html(source, fonts={})))
    diff = "\n".join(difflib.unified_diff(expected, got, "premailer", "css-inline", lineterm="", n=1))
    assert not diff, f"inlined HTML differs from premailer's:\n{diff[:6000]}"


def test_legacy_attributes_follow_the_inlined_css() -> None:
    html = inline_css(mjml2html((GOLDEN / "update-2021.mjml").read_text(encoding="utf-8"), fonts={}))
    assert html.startswith("<!doctype html>") or html.startswith("<!DOCTYPE html>")
    assert 'bgcolor="#ffffff"' in html and 'valign="top"' in html
    assert "<!--[if mso | IE]><td" in html and 'valign="top"><![endif]' not in html, \
        "Outlook's conditional markup is left as MJML wrote it"
