"""Do the links of a mailing answer? Checked concurrently, with a timeout and an on-disk cache.

A link answers when the server returns 2xx or 3xx (redirects are not followed: a redirect is an
answer). Servers that refuse HEAD get a GET. Good answers are cached for `link_cache_hours`, so a
second `mailer check` in a row asks nothing again; failures are always asked again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

CONCURRENCY = 8
USER_AGENT = "mailer-linkcheck (Ontwikkelagenda Veiligheid Voorop)"


@dataclass(frozen=True)
class LinkAnswer:
    url: str
    status: int | None  # None: no answer (timeout, refused, DNS)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else self.error


class LinkCache:
    """{url: [status, checked at]} in a JSON file; only good answers are kept."""

    def __init__(self, path: Path, max_age_hours: float):
        self.path = path
        self.max_age = max_age_hours * 3600
        try:
            self.entries: dict[str, list] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def get(self, url: str, now: float) -> LinkAnswer | None:
        entry = self.entries.get(url)
        if entry and now - entry[1] < self.max_age:
            return LinkAnswer(url, entry[0])
        return None

    def put(self, answer: LinkAnswer, now: float) -> None:
        if answer.ok:
            self.entries[answer.url] = [answer.status, now]
        else:
            self.entries.pop(answer.url, None)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=0, sort_keys=True), "utf-8")
        tmp.replace(self.path)


async def _ask(client: httpx.AsyncClient, limit: asyncio.Semaphore, url: str) -> LinkAnswer:
    async with limit:
        try:
            response = await client.head(url)
            if response.status_code >= 400:
                response = await client.get(url)  # some servers answer HEAD badly
            return LinkAnswer(url, response.status_code)
        except httpx.HTTPError as exc:
            return LinkAnswer(url, None, f"{type(exc).__name__}: {exc}".rstrip(": "))


async def _ask_all(urls: list[str], timeout: float) -> list[LinkAnswer]:
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                 headers={"User-Agent": USER_AGENT}) as client:
        return await asyncio.gather(*(_ask(client, limit, url) for url in urls))


def check_links(urls: Iterable[str], cache: LinkCache, timeout: float) -> dict[str, LinkAnswer]:
    """The answer for each URL, from the cache when fresh, else asked concurrently."""
    now = time.time()
    answers: dict[str, LinkAnswer] = {}
    todo = []
    for url in dict.fromkeys(urls):
        cached = cache.get(url, now)
        if cached is None:
            todo.append(url)
        else:
            answers[url] = cached
    if todo:
        for answer in asyncio.run(_ask_all(todo, timeout)):
            answers[answer.url] = answer
            cache.put(answer, now)
        cache.save()
    return answers
