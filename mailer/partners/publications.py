"""Partner publications: who the partners are, and storing what they publish.

Feeds are read by `mailer.partners.feeds`; this module stores their entries (or one added by
hand) with the regions a publication names. Ranking for a mailing is `mailer.partners.selection`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlmodel import Session, select

from mailer import taxonomy
from mailer.config import Settings
from mailer.content.loader import Mailing, yaml_problem
from mailer.db import session_scope
from mailer.models import PartnerFeed, PartnerPublication, utcnow
from mailer.partners.feeds import Entry, FeedResult, fetch_feed
from mailer.partners.rows import PartnerError, read_publications, unique
from mailer.partners.selection import WINDOW_DAYS, Suggestion, contains_word, rank

FEED_WORKERS = 4  # feeds read at the same time

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


@dataclass(frozen=True)
class Partner:
    name: str
    abbreviation: str
    website: str
    feed: str = ""
    regions: tuple[str, ...] = ()


def load_partners(content_dir: Path) -> list[Partner]:
    """Read content/partners.yaml; an error names the entry and field that is wrong."""
    path = content_dir / "partners.yaml"
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PartnerError(str(yaml_problem(exc, path))) from exc
    if not isinstance(data, dict):
        raise PartnerError(f"{path}: must be a mapping with the key 'partners', not a "
                           f"{type(data).__name__}; write `partners:` above the list")
    items = data.get("partners") or []
    if not isinstance(items, list):
        raise PartnerError(f"{path}: partners: must be a list of partners (each with a name and a "
                           f"website), not {items!r}")
    partners = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or not item.get("name") or not item.get("website"):
            raise PartnerError(f"{path}: partners[{n}] needs at least a name and a website")
        regions = item.get("regions") or ()
        if not isinstance(regions, list | tuple):
            raise PartnerError(f"{path}: partners[{n}].regions: must be a list of region slugs")
        regions = tuple(regions)
        problems = taxonomy.problems("region", regions)
        if problems:
            raise PartnerError(f"{path}: partners[{n}] ({item['name']}): {'; '.join(problems)}")
        partners.append(Partner(str(item["name"]), str(item.get("abbreviation") or item["name"]),
                                str(item["website"]), str(item.get("feed") or ""), regions))
    return partners


def regions_named(*texts: str) -> tuple[str, ...]:
    """Regions a publication names in its title, summary or categories."""
    found = []
    for slug, name in taxonomy.REGIONS.items():
        names = (name, *REGION_ALIASES.get(slug, ()))
        if any(contains_word(text, n) for text in texts for n in names):
            found.append(slug)
    return tuple(found)


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
    values: dict[str, Any] = {  # column → value
        "organisation": organisation, "title": entry.title[:500], "summary": entry.summary,
        "published": entry.published, "categories": unique(entry.categories),
        "regions": unique(regions or regions_named(entry.title, entry.summary, *entry.categories)),
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
    """Read every partner feed into the database; a failing feed is reported and skipped.

    Feeds are fetched FEED_WORKERS at a time, each within `feed_deadline`, so a slow feed
    delays the others by no more than that. Storing stays in this thread: one writer.
    """
    partners = [p for p in load_partners(settings.content) if p.feed]
    with session_scope(settings) as session:
        seen = {p.feed: (s.etag, s.last_modified) for p in partners
                if (s := session.get(PartnerFeed, p.feed))}
    own_client = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(settings.feed_timeout), follow_redirects=True)
    reports: dict[str, FetchReport] = {}
    try:
        with ThreadPoolExecutor(FEED_WORKERS) as pool:
            futures = {pool.submit(fetch_feed, client, p.feed, *seen.get(p.feed, ("", "")),
                                   deadline=settings.feed_deadline): p for p in partners}
            for future in as_completed(futures):
                partner = futures[future]
                reports[partner.feed] = report = _store_result(settings, partner, future.result())
                if on_report:
                    on_report(report)
    finally:
        if own_client:
            client.close()
    return [reports[p.feed] for p in partners]


def _store_result(settings: Settings, partner: Partner, result: FeedResult) -> FetchReport:
    counts = {"new": 0, "updated": 0, "same": 0}
    with session_scope(settings, write=True) as session:
        state = session.get(PartnerFeed, partner.feed) or PartnerFeed(url=partner.feed,
                                                                      organisation=partner.name)
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
        row.themes = unique([*row.themes, *themes])
        session.add(row)
    return "new" if outcome == "new" else "updated"


def suggest(settings: Settings, mailing: Mailing, limit: int = 10,
            today: dt.date | None = None, window_days: int = WINDOW_DAYS) -> list[Suggestion]:
    """Recent publications that fit a mailing, best first, each with why it matches."""
    return rank(read_publications(settings), mailing, limit, today, window_days)
