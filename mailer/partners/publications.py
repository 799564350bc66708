"""Partner publications: who the partners are, which publications fit a mailing, and why.

Feeds are read by `mailer.partners.feeds`; this module decides themes and regions of a publication and
ranks publications for a mailing, best first, with the reasons a person can check.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import yaml
from sqlmodel import Session, select

from mailer import taxonomy
from mailer.config import Settings
from mailer.content.loader import Block, Mailing, PartnerItem, yaml_problem
from mailer.db import session_scope
from mailer.models import PartnerFeed, PartnerPublication, utcnow
from mailer.partners.feeds import Entry, fetch_feed

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


WINDOW_DAYS = 365  # publications older than this (before the mailing's date) are not suggested


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
        raise PartnerError(str(yaml_problem(exc, path))) from exc
    partners = []
    for n, item in enumerate(data.get("partners") or [], 1):
        if not isinstance(item, dict) or not item.get("name") or not item.get("website"):
            raise PartnerError(f"{path}: partners[{n}] needs at least a name and a website")
        regions = tuple(item.get("regions") or ())
        problems = taxonomy.problems("region", regions)
        if problems:
            raise PartnerError(f"{path}: partners[{n}] ({item['name']}): {'; '.join(problems)}")
        partners.append(Partner(str(item["name"]), str(item.get("abbreviation") or item["name"]),
                                str(item["website"]), str(item.get("feed") or ""), regions))
    return partners


def _contains(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word.lower())}(?![\w-])", text.lower()) is not None


def regions_named(*texts: str) -> tuple[str, ...]:
    """Regions a publication names in its title, summary or categories."""
    found = []
    for slug, name in taxonomy.REGIONS.items():
        names = (name, *REGION_ALIASES.get(slug, ()))
        if any(_contains(text, n) for text in texts for n in names):
            found.append(slug)
    return tuple(found)


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
        if any(_contains(c, word) for c in categories):
            points += 2
            reasons.append(f"category matches '{word}'")
        if _contains(summary, word):
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


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


@dataclass(frozen=True)
class FetchReport:
    """What one feed fetch did, for the command's report."""

    organisation: str
    url: str
    status: str
    new: int = 0
    updated: int = 0
    error: str = ""


def _store(session: Session, organisation: str, source: str, entry: Entry,
           regions: tuple[str, ...]) -> str:
    """Insert or refresh one publication; returns "new", "updated" or "same"."""
    row = session.exec(select(PartnerPublication).where(PartnerPublication.url == entry.url)).first()
    values = {
        "organisation": organisation, "title": entry.title[:500], "summary": entry.summary,
        "published": entry.published, "categories": _unique(entry.categories),
        "regions": _unique(regions or regions_named(entry.title, entry.summary, *entry.categories)),
        "source": source,
    }
    if row is None:
        session.add(PartnerPublication(url=entry.url, **values))
        return "new"
    if all(getattr(row, k) == v for k, v in values.items()):
        return "same"
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.add(row)
    return "updated"


def fetch_all(settings: Settings, client: httpx.Client | None = None,
              on_report: Callable[[FetchReport], None] | None = None) -> list[FetchReport]:
    """Read every partner feed into the database; a failing feed is reported and skipped."""
    partners = [p for p in load_partners(settings.content) if p.feed]
    own_client = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(settings.feed_timeout), follow_redirects=True)
    reports = []
    try:
        for partner in partners:
            report = _fetch_one(settings, client, partner)
            reports.append(report)
            if on_report:
                on_report(report)
    finally:
        if own_client:
            client.close()
    return reports


def _feed_state(session: Session, partner: Partner) -> PartnerFeed:
    return session.get(PartnerFeed, partner.feed) or PartnerFeed(url=partner.feed,
                                                                 organisation=partner.name)


def _fetch_one(settings: Settings, client: httpx.Client, partner: Partner) -> FetchReport:
    with session_scope(settings) as session:
        state = _feed_state(session, partner)
        etag, modified = state.etag, state.last_modified
    result = fetch_feed(client, partner.feed, etag, modified)
    counts = {"new": 0, "updated": 0, "same": 0}
    with session_scope(settings, write=True) as session:
        state = _feed_state(session, partner)
        state.fetched_at, state.status, state.error = utcnow(), result.status, result.error
        if result.status == "ok":
            state.etag, state.last_modified = result.etag, result.last_modified
            for entry in result.entries:
                counts[_store(session, partner.name, partner.feed, entry, partner.regions)] += 1
        session.add(state)
    return FetchReport(partner.name, partner.feed, result.status, counts["new"], counts["updated"],
                       result.error)


def add_publication(settings: Settings, organisation: str, title: str, url: str,
                    published: dt.date | None, themes: Iterable[str] = (),
                    regions: Iterable[str] = ()) -> str:
    """Record a publication by hand (partners without a feed); returns "new" or "updated"."""
    known = {p.name for p in load_partners(settings.content)}
    if known and organisation not in known:
        raise PartnerError(f"unknown organisation {organisation!r} (known: {', '.join(sorted(known))})")
    if not url.startswith(("https://", "http://")):
        raise PartnerError(f"url {url!r} must start with https:// or http://")
    if not title.strip():
        raise PartnerError("title must not be empty")
    regions = tuple(regions)
    problems = taxonomy.problems("region", regions)
    if problems:
        raise PartnerError("; ".join(problems))
    entry = Entry(url, " ".join(title.split()), "", published, ())
    with session_scope(settings, write=True) as session:
        outcome = _store(session, organisation, "hand", entry, regions)
        row = session.exec(select(PartnerPublication).where(PartnerPublication.url == url)).one()
        row.themes = _unique([*row.themes, *themes])
        session.add(row)
    return "new" if outcome == "new" else "updated"


def _all_publications(settings: Settings) -> dict[str, PartnerPublication]:
    with session_scope(settings) as session:
        return {row.url: row for row in session.exec(select(PartnerPublication))}


def _rank(rows: Iterable[PartnerPublication], mailing: Mailing, limit: int, today: dt.date | None,
          window_days: int) -> list[Suggestion]:
    today = today or mailing.date
    keywords = list(mailing.keywords) or [mailing.theme]
    found = []
    for row in rows:
        points, reasons = score(mailing.theme, keywords, row.title, row.summary,
                                row.categories, row.themes, row.published,
                                today, window_days)
        if points > 0:
            regions = tuple(row.regions)
            if regions:
                reasons.append(f"regional: {', '.join(regions)}")
            found.append(Suggestion(row.url, row.organisation, row.title, row.published,
                                    regions, round(points, 2), tuple(reasons)))
    found.sort(key=lambda s: (-s.score, -(s.published or dt.date.min).toordinal(), s.url))
    return found[:limit]


def suggest(settings: Settings, mailing: Mailing, limit: int = 10,
            today: dt.date | None = None, window_days: int = WINDOW_DAYS) -> list[Suggestion]:
    """Recent publications that fit a mailing, best first, each with why it matches."""
    return _rank(_all_publications(settings).values(), mailing, limit, today, window_days)


def partner_items(settings: Settings, mailing: Mailing) -> tuple[PartnerItem, ...]:
    """The publications of a mailing's "Van onze partners" block: chosen first, then suggested."""
    config = mailing.partners
    if config is None:
        return ()
    rows = _all_publications(settings)
    missing = [url for url in config.chosen if url not in rows]
    if missing:
        raise PartnerError(f"{mailing.source}: partners.chosen: unknown publication(s) {missing}; "
                           "add them with `mailer partners add`")
    urls = list(config.chosen)
    if config.suggest:
        ranked = _rank(rows.values(), mailing, config.max, None, WINDOW_DAYS)
        urls += [s.url for s in ranked if s.url not in urls]
    items = []
    for url in urls[: max(config.max, len(config.chosen))]:
        row = rows[url]
        regions = frozenset(row.regions) or None
        items.append(PartnerItem(row.organisation, row.title, row.url, row.published, row.summary,
                                 regions))
    return tuple(items)


PARTNERS_BLOCK_ID = "van-onze-partners"


def with_partner_block(settings: Settings, mailing: Mailing) -> Mailing:
    """The mailing with its "Van onze partners" block filled in, when it asks for one."""
    items = partner_items(settings, mailing)
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
