"""Benchmark: RFC 8058 one-click unsubscribes against `mailer serve` on loopback.

Starts the server in its own process on a fresh SQLite database with enough subscribers, sends
`List-Unsubscribe=One-Click` POSTs at a fixed rate (open loop: latency counts from the moment a
request was due, so a slow server cannot hide its queue), then checks that every answered
request left an unsubscribed subscriber behind.

    python bench/web.py [--duration 30] [--rate 200] [--concurrency 64] [--warmup 2]
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import click
import httpx
from sqlmodel import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.config import Settings  # noqa: E402
from mailer.db import session_scope  # noqa: E402
from mailer.models import Subscriber  # noqa: E402
from mailer.subscribers.lists import import_list  # noqa: E402
from mailer.subscribers.tokens import unsubscribe_url  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(settings: Settings, count: int) -> list[int]:
    path = settings.root / "people.csv"
    path.write_text("email,region,audience\n" + "".join(
        f"p{i}@example.org,limburg,netwerk\n" for i in range(count)), encoding="utf-8")
    with session_scope(settings, write=True) as session:
        import_list(session, path)
    with session_scope(settings) as session:
        return list(session.exec(select(Subscriber.id).order_by(Subscriber.id)))


def wait_for(url: str, server: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server stopped while starting")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for this test.

    A hand-written client, because the client shares the machine's two cores with the server:
    a full HTTP library would use more CPU than the server it measures.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def post(self, host: str, path: str, body: bytes) -> int:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        await self.reader.readexactly(length)
        return int(head.split(b" ", 2)[1])


async def load(urls: list[str], rate: float, concurrency: int) -> tuple[list[float], int, float]:
    """Open-loop load: request i is due at start + i / rate, whatever happened before it."""
    parts = urlsplit(urls[0])
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(Connection(*await asyncio.open_connection(parts.hostname, parts.port)))
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter()

    async def one(i: int, url: str) -> None:
        nonlocal failures
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        connection = await pool.get()
        try:
            status = await connection.post(parts.netloc, urlsplit(url).path,
                                           b"List-Unsubscribe=One-Click")
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        pool.put_nowait(connection)
        latencies.append(time.perf_counter() - due)
        failures += status != 200

    await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().writer.close()
    return latencies, failures, elapsed


@click.command()
@click.option("--duration", default=30.0, show_default=True, help="Seconds of load.")
@click.option("--rate", default=200.0, show_default=True, help="Requests per second.")
@click.option("--concurrency", default=64, show_default=True, help="Requests in flight at most.")
@click.option("--warmup", default=2.0, show_default=True,
              help="Seconds of load before measuring (first requests compile templates).")
def main(duration: float, rate: float, concurrency: int, warmup: float) -> None:
    first = int(warmup * rate)
    count = first + int(duration * rate)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(root=Path(tmp), database_url=f"sqlite:///{tmp}/bench.db",
                            secret_key="bench", public_base_url=f"http://127.0.0.1:{free_port()}")
        ids = seed(settings, count)
        urls = [unsubscribe_url(settings, i) for i in ids]
        port = settings.public_base_url.rsplit(":", 1)[1]
        env = {**os.environ, "MAILER_ROOT": tmp, "MAILER_DATABASE_URL": settings.database_url,
               "MAILER_SECRET_KEY": settings.secret_key, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(
            [sys.executable, "-m", "mailer", "serve", "--port", port], env=env, cwd=tmp,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(f"{settings.public_base_url}/aanmelden", server)
            _, warmup_failures, _ = asyncio.run(load(urls[:first], rate, concurrency))
            latencies, failures, elapsed = asyncio.run(load(urls[first:], rate, concurrency))
            failures += warmup_failures
        finally:
            server.terminate()
            server.wait(10)
        with session_scope(settings) as session:
            recorded = session.exec(select(func.count()).select_from(Subscriber)
                                    .where(Subscriber.status == "unsubscribed")).one()
    cuts = statistics.quantiles(latencies, n=100)
    print(f"{len(latencies)} requests in {elapsed:.1f} s: {len(latencies) / elapsed:.0f} "
          f"requests/s, p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms, {failures} failed")
    answered = first + len(latencies) - failures
    ok = recorded == answered
    print(f"unsubscribes recorded: {recorded} of {answered} answered (warm-up included) "
          f"({'all recorded' if ok else 'MISSING'})")
    if not ok or failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
