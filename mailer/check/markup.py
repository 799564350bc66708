"""What the compiled HTML of a variant shows a reader: headings, images and colour contrast.

Everything is read from the compiled mail itself (premailer has inlined the styles), so it is
what a mail client gets, not what the template meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import html as lxml_html

# WCAG 2.x AA: 4.5:1 for normal text, 3:1 for large text (24 px, or 18.66 px bold).
NORMAL_RATIO = 4.5
LARGE_RATIO = 3.0
LARGE_PX = 24.0
LARGE_BOLD_PX = 18.66
_FILE_NAME = re.compile(r"\.(png|jpe?g|gif|svg|webp)$", re.I)
_NAMED = {"white": "#ffffff", "black": "#000000", "red": "#ff0000", "transparent": ""}
_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})\b", re.I)
_RGB = re.compile(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)", re.I)
_SKIP_TAGS = {"head", "style", "script", "title", "meta"}


def parse(html: str) -> lxml_html.HtmlElement:
    return lxml_html.document_fromstring(html)


def headings(doc: lxml_html.HtmlElement) -> list[str]:
    """Heading problems: not exactly one h1, not starting at h1, or a skipped level."""
    levels = [(int(str(el.tag)[1]), el.text_content().strip())
              for el in doc.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    problems = []
    ones = sum(level == 1 for level, _ in levels)
    if ones != 1:
        problems.append(f"{ones} h1 headings; a mail has exactly one")
    if levels and levels[0][0] != 1:
        problems.append(f"the first heading is h{levels[0][0]} ({levels[0][1][:60]!r}), not h1")
    for (before, _), (level, text) in zip(levels, levels[1:], strict=False):
        if level > before + 1:
            problems.append(f"h{level} {text[:60]!r} follows an h{before}: level h{before + 1} skipped")
    return problems


@dataclass(frozen=True)
class Image:
    src: str
    alt: str | None  # None: no alt attribute at all


def images(doc: lxml_html.HtmlElement) -> list[Image]:
    return [Image(el.get("src", ""), el.get("alt")) for el in doc.iter("img")]


def alt_problem(image: Image) -> str:
    """Why an image's alt text does not serve a reader who cannot see it, or ""."""
    if image.alt is None:
        return f"image {image.src} has no alt attribute"
    if _FILE_NAME.search(image.alt.strip()):
        return f"image {image.src} has a file name as alt text ({image.alt!r})"
    return ""


def links(doc: lxml_html.HtmlElement) -> list[str]:
    """Every absolute http(s) link target and image source."""
    found = [el.get("href", "") for el in doc.iter("a")] + [el.get("src", "") for el in doc.iter("img")]
    return [url for url in found if url.startswith(("http://", "https://"))]


# --- colour contrast ------------------------------------------------------------------------


def _styles(el: lxml_html.HtmlElement) -> dict[str, str]:
    pairs = (part.split(":", 1) for part in el.get("style", "").split(";") if ":" in part)
    return {k.strip().lower(): v.strip().lower() for k, v in pairs}


def colour(value: str) -> str | None:
    """A CSS colour as #rrggbb; "" for transparent; None when it cannot be read."""
    value = value.replace("!important", "").strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    if match := _HEX.search(value):
        digits = match.group(1)
        return "#" + ("".join(c * 2 for c in digits) if len(digits) == 3 else digits)
    if match := _RGB.search(value):
        return "#" + "".join(f"{int(n):02x}" for n in match.groups())
    return None


def _luminance(hex_colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(foreground: str, background: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _px(value: str, inherited: float) -> float:
    match = re.match(r"([\d.]+)\s*(px|pt|em|%)?", value)
    if not match:
        return inherited
    number, unit = float(match.group(1)), match.group(2) or "px"
    return {"px": number, "pt": number * 4 / 3, "em": number * inherited,
            "%": number * inherited / 100}[unit]


@dataclass(frozen=True)
class ContrastProblem:
    text: str
    foreground: str
    background: str
    ratio: float
    needed: float
    size_px: float


def contrast(doc: lxml_html.HtmlElement) -> list[ContrastProblem]:
    """Text whose colour against its background falls under WCAG AA, once per combination."""
    found: dict[tuple, ContrastProblem] = {}
    body = doc.find("body")
    if body is None:
        return []

    def visit(el: lxml_html.HtmlElement, fg: str, bg: str, size: float, bold: bool) -> None:
        if not isinstance(el.tag, str) or el.tag in _SKIP_TAGS:
            return
        style = _styles(el)
        if style.get("display") == "none" or style.get("mso-hide") == "all":
            return
        fg = colour(style.get("color", "")) or colour(el.get("color", "")) or fg
        own_bg = (colour(style.get("background-color", "")) or colour(style.get("background", ""))
                  or colour(el.get("bgcolor", "")))
        bg = own_bg or bg
        size = _px(style["font-size"], size) if "font-size" in style else size
        weight = style.get("font-weight", "")
        bold = bold or el.tag in ("b", "strong", "h1", "h2", "h3", "h4", "h5", "h6") or \
            weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 700)
        pieces = [el.text or ""] + [child.tail or "" for child in el]
        text = " ".join(" ".join(pieces).split())
        if text and fg and bg:
            ratio = contrast_ratio(fg, bg)
            large = size >= LARGE_PX or (bold and size >= LARGE_BOLD_PX)
            needed = LARGE_RATIO if large else NORMAL_RATIO
            if ratio < needed:
                key = (fg, bg, round(size, 1), bold)
                found.setdefault(key, ContrastProblem(text[:50], fg, bg, ratio, needed, size))
        for child in el:
            visit(child, fg, bg, size, bold)

    visit(body, "#000000", "#ffffff", 16.0, False)
    return list(found.values())
