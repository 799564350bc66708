"""Partner publications: who the partners are, which publications fit a mailing, and why.

Feeds are read by `mailer.feeds`; this module decides themes and regions of a publication and
ranks publications for a mailing, best first, with the reasons a person can check.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from mailer.segments import REGIONS

# Extra ways a region is named in partner publications, beside its own name.
REGION_ALIASES: dict[str, tuple[str, ...]] = {
    "noord-nederland": ("groningen", "friesland", "fryslân", "drenthe"),
    "oost-nederland": ("gelderland", "overijssel", "twente", "ijsselland"),
    "noord-holland": ("noord-holland-noord", "zaanstreek", "kennemerland"),
    "amsterdam-amstelland": ("amsterdam", "amstelland"),
    "midden-nederland": ("utrecht", "flevoland", "gooi en vechtstreek"),
    "haaglanden-hollands-midden": ("den haag", "haaglanden", "hollands midden", "leiden"),
    "rotterdam-zuid-holland-zuid": ("rotterdam", "rijnmond", "zuid-holland-zuid"),
    "zeeland-west-brabant": ("zeeland", "west-brabant", "breda"),
    "oost-brabant": ("oost-brabant", "eindhoven", "zuidoost-brabant", "den bosch"),
    "limburg": ("limburg", "maastricht", "venlo"),
}


class PartnerError(Exception):
    """partners.yaml or a publication cannot be used; the message names file and field."""


@dataclass(frozen=True)
class Partner:
    name: str
    abbreviation: str
    website: str
    feed: str = ""
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suggestion:
    """A publication that fits a mailing, with a score and the reasons for it."""

    url: str
    organisation: str
    title: str
    published: dt.date | None
    regions: tuple[str, ...]
    score: float
    reasons: tuple[str, ...]


def load_partners(content_dir: Path) -> list[Partner]:
    """Read content/partners.yaml; an error names the entry and field that is wrong."""
    path = content_dir / "partners.yaml"
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PartnerError(f"{where}: YAML error: {getattr(exc, 'problem', exc)}") from exc
    partners = []
    for n, item in enumerate(data.get("partners") or [], 1):
        if not isinstance(item, dict) or not item.get("name") or not item.get("website"):
            raise PartnerError(f"{path}: partners[{n}] needs at least a name and a website")
        regions = tuple(item.get("regions") or ())
        unknown = [r for r in regions if r not in REGIONS]
        if unknown:
            raise PartnerError(f"{path}: partners[{n}] ({item['name']}): unknown region(s) {unknown}")
        partners.append(Partner(str(item["name"]), str(item.get("abbreviation") or item["name"]),
                                str(item["website"]), str(item.get("feed") or ""), regions))
    return partners


def _contains(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", text.lower()) is not None


def regions_named(*texts: str) -> tuple[str, ...]:
    """Regions a publication names in its title, summary or categories."""
    found = []
    for slug, name in REGIONS.items():
        names = (name, *REGION_ALIASES.get(slug, ()))
        if any(_contains(text, n) for text in texts for n in names):
            found.append(slug)
    return tuple(found)


def themes_matching(keywords: dict[str, list[str]], *texts: str) -> tuple[str, ...]:
    """Themes whose keywords occur in the given texts."""
    return tuple(theme for theme, words in keywords.items()
                 if any(_contains(text, w) for text in texts for w in words))


def score(theme: str, keywords: list[str], title: str, summary: str, categories: list[str],
          themes: list[str], published: dt.date | None, today: dt.date,
          window_days: int) -> tuple[float, list[str]]:
    """How well a publication fits a theme; 0 means not at all. Returns (score, reasons)."""
    points, reasons = 0.0, []
    if theme in themes:
        points += 5
        reasons.append(f"tagged with theme {theme!r}")
    for word in keywords:
        if _contains(title, word):
            points += 3
            reasons.append(f"'{word}' in the title")
        elif any(_contains(c, word) for c in categories):
            points += 2
            reasons.append(f"category matches '{word}'")
        elif _contains(summary, word):
            points += 1
            reasons.append(f"'{word}' in the summary")
    if points and published:
        age = (today - published).days
        if age > window_days:
            return 0.0, []
        bonus = max(0.0, 1 - age / window_days)
        points += bonus
        reasons.append(f"published {published.isoformat()} ({age} days ago)")
    return points, reasons
