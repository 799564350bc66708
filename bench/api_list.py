"""Benchmark: list every subscriber through the REST API, page by page, over real HTTP.

Fills a fresh database (SQLite, or a new schema on the PostgreSQL server) with N active
subscribers spread over every region and audience, starts `mailer serve` in its own process,
and walks GET /api/v1/subscribers from the first page to the last (next_cursor null) with one
keep-alive connection, timing each page from request to its last byte. The first walk warms
the server up and is not counted; the figures are over the pages of the walks after it.
Every walk must see every subscriber exactly once.

    python bench/api_list.py [--subscribers 100000] [--limit 500] [--runs 3] [--database sqlite]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from web import database, wait_for  # noqa: E402  (bench/web.py, beside this file)

from mailer.accounts import api_tokens  # noqa: E402
from mailer.audit import command_line  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.db import get_engine  # noqa: E402
from mailer.taxonomy import AUDIENCES, REGIONS  # noqa: E402
from tests.conftest import bulk_subscribers  # noqa: E402
from tests.smtp_server import free_port  # noqa: E402

SEGMENTS = [(region, audience) for region in REGIONS for audience in AUDIENCES]


def walk(client: httpx.Client, limit: int) -> tuple[list[float], int, int]:
    """Seconds per page, subscribers seen and how many of them were distinct."""
    times: list[float] = []
    seen: list[str] = []
    cursor = None
    while True:
        started = time.perf_counter()
        answer = client.get("/api/v1/subscribers",
                            params={"limit": limit, **({"cursor": cursor} if cursor else {})})
        page = answer.json()
        times.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise SystemExit(f"page {len(times)}: {answer.status_code} {answer.text[:300]}")
        seen += [person["id"] for person in page["data"]]
        if (cursor := page["next_cursor"]) is None:
            return times, len(seen), len(set(seen))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@click.command()
@click.option("--subscribers", default=100_000, show_default=True, help="Subscribers to list.")
@click.option("--limit", default=500, show_default=True, help="Subscribers per page (at most 500).")
@click.option("--runs", default=3, show_default=True, help="Measured walks (after one warm-up).")
@click.option("--database", "kind", type=click.Choice(["sqlite", "postgresql"]),
              default="sqlite", show_default=True)
def main(subscribers: int, limit: int, runs: int, kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(kind, tmp) as url:
        settings = Settings(root=Path(tmp), database_url=url,
                            secret_key="bench-secret-key-0123456789")
        get_engine(settings)
        started = time.perf_counter()
        bulk_subscribers(settings, subscribers, segments=SEGMENTS)
        print(f"{subscribers:,} subscribers on {kind} in {time.perf_counter() - started:.1f} s")
        secret = api_tokens.add(settings, command_line("bench"), "bench", ["subscribers:read"])[1]
        port = str(free_port())
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")},
               "PYTHONPATH": str(ROOT), "MAILER_ROOT": tmp, "MAILER_DATABASE_URL": url,
               "MAILER_SECRET_KEY": settings.secret_key,
               "MAILER_API_REQUESTS_PER_MINUTE": "1000000"}
        server = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--port", port],
                                  env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{base}/api/v1/openapi.json", server)
            with httpx.Client(base_url=base, timeout=60,
                              headers={"Authorization": f"Bearer {secret}"}) as client:
                report(client, subscribers, limit, runs)
        finally:
            server.terminate()
            server.wait(10)


def report(client: httpx.Client, subscribers: int, limit: int, runs: int) -> None:
    times: list[float] = []
    walls: list[float] = []
    for run in range(runs + 1):
        started = time.perf_counter()
        pages, seen, distinct = walk(client, limit)
        wall = time.perf_counter() - started
        if seen != subscribers or distinct != subscribers:
            raise SystemExit(f"walk {run}: saw {seen:,} ({distinct:,} distinct) of "
                             f"{subscribers:,} subscribers")
        label = "warm-up" if run == 0 else f"walk {run}"
        print(f"{label}: {len(pages)} pages of {limit} in {wall:.2f} s, median "
              f"{statistics.median(pages) * 1000:.1f} ms (every subscriber exactly once)")
        if run:
            times += pages
            walls.append(wall)
    print(f"per page over {len(times)} pages ({runs} walks): median "
          f"{statistics.median(times) * 1000:.1f} ms, p99 {p99(times) * 1000:.1f} ms, max "
          f"{max(times) * 1000:.1f} ms; a whole walk {statistics.median(walls):.2f} s "
          f"({subscribers / statistics.median(walls):,.0f} subscribers/s)")


if __name__ == "__main__":
    main()
