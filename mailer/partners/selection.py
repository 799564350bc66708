"""Which partner publications fit a mailing, and why: ranking and the "Van onze partners" block.

This is the part of the partners package that `mailer build` needs. It works on publications
already read (`mailer.partners.rows`), so it pulls in no database or HTTP library.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from mailer.content.loader import Block, Mailing, PartnerItem
from mailer.partners.rows import PartnerError, Publication

WINDOW_DAYS = 365  # publications older than this (before the mailing's date) are not suggested
PARTNERS_BLOCK_ID = "van-onze-partners"


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

    def document(self) -> dict[str, Any]:
        """The suggestion as JSON-ready data (`mailer partners suggest --json`)."""
        return {"url": self.url, "organisation": self.organisation, "title": self.title,
                "published": self.published.isoformat() if self.published else None,
                "regions": list(self.regions), "score": self.score,
                "reasons": list(self.reasons)}


def contains_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", text.lower()) is not None


def score(theme: str, keywords: list[str], title: str, summary: str, categories: Iterable[str],
          themes: Iterable[str], published: dt.date | None, today: dt.date,
          window_days: int) -> tuple[float, list[str]]:
    """How well a publication fits a theme; 0 means not at all. Returns (score, reasons)."""
    points, reasons = 0.0, []
    if theme in themes:
        points += 5
        reasons.append(f"tagged with theme {theme!r}")
    for word in keywords:
        if contains_word(title, word):
            points += 3
            reasons.append(f"'{word}' in the title")
        if any(contains_word(c, word) for c in categories):
            points += 2
            reasons.append(f"category matches '{word}'")
        if contains_word(summary, word):
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


def rank(publications: Iterable[Publication], mailing: Mailing, limit: int,
         today: dt.date | None = None, window_days: int = WINDOW_DAYS) -> list[Suggestion]:
    """Publications that fit a mailing, best first, each with why it matches."""
    today = today or mailing.date
    keywords = list(mailing.keywords) or [mailing.theme]
    found = []
    for row in publications:
        points, reasons = score(mailing.theme, keywords, row.title, row.summary, row.categories,
                                row.themes, row.published, today, window_days)
        if points > 0:
            if row.regions:
                reasons.append(f"regional: {', '.join(row.regions)}")
            found.append(Suggestion(row.url, row.organisation, row.title, row.published,
                                    row.regions, round(points, 2), tuple(reasons)))
    found.sort(key=lambda s: (-s.score, -(s.published or dt.date.min).toordinal(), s.url))
    return found[:limit]


def partner_items(publications: Iterable[Publication], mailing: Mailing) -> tuple[PartnerItem, ...]:
    """The publications of a mailing's "Van onze partners" block: chosen first, then suggested."""
    config = mailing.partners
    if config is None:
        return ()
    rows = {row.url: row for row in publications}
    missing = [url for url in config.chosen if url not in rows]
    if missing:
        raise PartnerError(f"{mailing.source}: partners.chosen: unknown publication(s) {missing}; "
                           "add them with `mailer partners add`")
    urls = list(config.chosen)
    if config.suggest:
        urls += [s.url for s in rank(rows.values(), mailing, config.max) if s.url not in urls]
    items = []
    for url in urls[: max(config.max, len(config.chosen))]:
        row = rows[url]
        items.append(PartnerItem(row.organisation, row.title, row.url, row.published, row.summary,
                                 frozenset(row.regions) or None))
    return tuple(items)


def with_partner_block(mailing: Mailing, publications: Iterable[Publication]) -> Mailing:
    """The mailing with its "Van onze partners" block filled in, when it asks for one."""
    items = partner_items(publications, mailing)
    if not items or mailing.partners is None:
        return mailing
    block = Block(id=PARTNERS_BLOCK_ID, type="partners", title=mailing.partners.title,
                  source=mailing.source, items=items)
    blocks = list(mailing.blocks)
    ids = [b.id for b in blocks]
    at = ids.index(mailing.partners.after) + 1 if mailing.partners.after else len(blocks)
    blocks.insert(at, block)
    toc = list(mailing.toc)
    before = next((i for i in ids[at:] if i in toc), None)
    toc.insert(toc.index(before) if before else len(toc), PARTNERS_BLOCK_ID)
    return replace(mailing, blocks=tuple(blocks), toc=tuple(toc))
