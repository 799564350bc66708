"""Reading partners' RSS/Atom feeds over HTTP: a deadline, a size limit, conditional requests.

One broken, slow or huge feed must never stop the others, so every failure becomes a FeedResult
with an error instead of an exception. httpx's timeout bounds each read only, so a server that
trickles a byte at a time is cut off by a deadline on the whole request as well.
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from dataclasses import dataclass, field

import feedparser
import httpx

MAX_BYTES = 2 * 1024 * 1024
# Feeds that declare one encoding and use another still parse fine; anything else is broken.
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
USER_AGENT = "mailer (Ontwikkelagenda Veiligheid Voorop; partner publications)"


@dataclass(frozen=True)
class Entry:
    """One publication as a feed describes it."""

    url: str
    title: str
    summary: str
    published: dt.date | None
    categories: tuple[str, ...]


@dataclass
class FeedResult:
    url: str
    status: str  # "ok" | "not-modified" | "error"
    entries: list[Entry] = field(default_factory=list)
    etag: str = ""
    last_modified: str = ""
    error: str = ""


def _date(entry: feedparser.FeedParserDict) -> dt.date | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return dt.datetime.fromtimestamp(calendar.timegm(parsed), dt.UTC).date()


def parse_feed(body: bytes) -> list[Entry]:
    """Entries of an RSS 2.0 or Atom document; raise ValueError when it is not a feed at all."""
    parsed = feedparser.parse(body)
    problem = parsed.get("bozo_exception")
    if parsed.bozo and not isinstance(problem, _HARMLESS):
        raise ValueError(f"not a valid feed: {problem or 'unreadable'}")
    if not parsed.version:
        raise ValueError("not a valid feed: neither RSS nor Atom")
    entries = []
    for item in parsed.entries:
        link = item.get("link") or item.get("id") or ""
        title = " ".join(str(item.get("title", "")).split())
        if not link.startswith(("http://", "https://")) or not title:
            continue
        categories = tuple(t.get("term", "") for t in item.get("tags", []) if t.get("term"))
        summary = " ".join(str(item.get("summary", "")).split())
        entries.append(Entry(link, title, summary[:2000], _date(item), categories))
    return entries


def fetch_feed(client: httpx.Client, url: str, etag: str = "", last_modified: str = "",
               max_bytes: int = MAX_BYTES, deadline: float = 20.0) -> FeedResult:
    """GET one feed, conditional on what the last fetch saw; never raises for network trouble.

    The body is cut off once `deadline` seconds have passed since the start, and no single read
    (connecting, the headers, a chunk) waits longer than that either.
    """
    started = time.monotonic()
    until = started + deadline
    headers = {"User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        timeout = httpx.Timeout(min(deadline, client.timeout.read or deadline))
        with client.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.status_code == 304:
                return FeedResult(url, "not-modified", etag=etag, last_modified=last_modified)
            if response.status_code != 200:
                return FeedResult(url, "error", error=f"HTTP {response.status_code}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                return FeedResult(url, "error", error=f"too large ({declared} bytes > {max_bytes})")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    return FeedResult(url, "error", error=f"too large (more than {max_bytes} bytes)")
                if time.monotonic() > until:
                    return _timed_out(url, started)
            new_etag = response.headers.get("etag", "")
            new_modified = response.headers.get("last-modified", "")
    except httpx.TimeoutException:
        return _timed_out(url, started)
    except httpx.HTTPError as exc:
        return FeedResult(url, "error", error=f"{type(exc).__name__}: {exc}")
    try:
        entries = parse_feed(bytes(body))
    except ValueError as exc:
        return FeedResult(url, "error", error=str(exc))
    return FeedResult(url, "ok", entries, new_etag, new_modified)


def _timed_out(url: str, started: float) -> FeedResult:
    return FeedResult(url, "error", error=f"timed out after {time.monotonic() - started:.1f} s")
