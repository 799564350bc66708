"""The house style of every mailing and web page: `content/brand.yaml` (optional).

A wordmark or logo, the partner logos under each mail, and the house colours. Colours are
checked when the file is read: a pair of text and background colour that the templates use
together must reach WCAG AA contrast, or the file is refused naming the pair and its ratio,
so no mailing can go out in colours that some readers cannot read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mailer.content.loader import ContentError, Image, _Reader, read_image, read_mapping_file

BRAND_FIELDS = {"wordmark", "logo", "partners", "colours"}
COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
WHITE = "#ffffff"
DEFAULT_COLOURS = {
    "brand": "#00567a",       # the band, headings, links
    "brand_dark": "#00415c",  # the bar under the band
    "accent": "#b4500b",      # badges ("Veilig Thuis", "Praktijkvoorbeeld"): white text on it
    "ink": "#1f2933",         # body text
    "muted": "#5b6770",       # dates, footer
    "paper": "#f3f6f8",       # around the mail and page
    "light": "#e8f0f4",       # the "about" block
}
AA_NORMAL = 4.5
# (text, background, why): every pair of colours the templates put text in.
PAIRS = (
    ("white", "brand", "band text"),
    ("white", "brand_dark", "bar links"),
    ("white", "accent", "badge text"),
    ("ink", "white", "body text"),
    ("brand", "white", "headings and links"),
    ("muted", "white", "dates"),
    ("muted", "paper", "footer"),
    ("ink", "light", "about text"),
    ("brand", "light", "about links"),
)


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2.x contrast ratio of two #rrggbb colours (1 to 21)."""
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@dataclass(frozen=True)
class Brand:
    wordmark: str = "Ontwikkelagenda Veiligheid voorop"
    logo: Image | None = None
    partners: tuple[Image, ...] = ()
    colours: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COLOURS))

    def images(self) -> list[Image]:
        return ([self.logo] if self.logo else []) + list(self.partners)


def _colours(raw: object, r: _Reader) -> dict[str, str]:
    colours = dict(DEFAULT_COLOURS)
    if raw is None:
        return colours
    if not isinstance(raw, dict):
        r.fail("colours must be a mapping of name to #rrggbb", "colours")
        return colours
    for name, value in raw.items():
        if name not in DEFAULT_COLOURS:
            r.fail(f"colours: unknown colour {name!r} (known: {', '.join(DEFAULT_COLOURS)})", "colours")
        elif not COLOUR_RE.match(str(value)):
            r.fail(f"colours.{name}: {value!r} is not a colour like #00567a", "colours")
        else:
            colours[name] = str(value).lower()
    for text, background, why in PAIRS:
        fg, bg = (colours.get(n, WHITE) for n in (text, background))
        ratio = contrast_ratio(fg, bg)
        if ratio < AA_NORMAL:
            r.fail(f"colours: {text} {fg} on {background} {bg} ({why}) has contrast {ratio:.2f}:1, "
                   f"WCAG AA needs {AA_NORMAL}:1", "colours")
    return colours


def load_brand(content_dir: Path, root: Path) -> Brand:
    """Read content/brand.yaml, or the house defaults when there is none."""
    path = content_dir / "brand.yaml"
    if not path.is_file():
        return Brand()
    data, r = read_mapping_file(path, root, BRAND_FIELDS)
    logo = read_image(data["logo"], "logo", r, content_dir, 200) if data.get("logo") else None
    raw_partners = data.get("partners") or []
    if not isinstance(raw_partners, list):
        r.fail("partners must be a list of {name, src, alt, url}", "partners")
        raw_partners = []
    partners = tuple(p for n, raw in enumerate(raw_partners, 1)
                     if (p := read_image(raw, f"partners[{n}]", r, content_dir, 100)))
    brand = Brand(str(data.get("wordmark") or Brand.wordmark), logo, partners,
                  _colours(data.get("colours"), r))
    if r.problems:
        raise ContentError(r.problems)
    return brand

