"""Benchmark: RFC 8058 one-click unsubscribes against `mailer serve --workers N` on loopback.

Starts the server in its own processes on a fresh database (SQLite, or a new schema on the
PostgreSQL server) with enough subscribers, sends `List-Unsubscribe=One-Click` POSTs at a fixed
rate (open loop: latency counts from the moment a request was due, so a slow server cannot hide
its queue), then checks that every answered request left an unsubscribed subscriber behind.

    python bench/web.py [--duration 30] [--rate 1000] [--workers 2] [--database postgresql]
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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import click
import httpx
from sqlalchemy import text
from sqlmodel import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.config import Settings  # noqa: E402
from mailer.db import engine_for, session_scope  # noqa: E402
from mailer.models import Subscriber  # noqa: E402
from mailer.subscribers.lists import import_list  # noqa: E402
from mailer.subscribers.tokens import unsubscribe_url  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def database(kind: str, tmp: str) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp}/bench.db"
        return
    schema = f"bench_web_{uuid.uuid4().hex[:8]}"
    admin = engine_for(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def seed(settings: Settings, count: int) -> list[str]:
    path = settings.root / "people.csv"
    path.write_text("email,region,audience\n" + "".join(
        f"p{i}@example.org,limburg,netwerk\n" for i in range(count)), encoding="utf-8")
    with session_scope(settings, write=True) as session:
        import_list(session, path)
    with session_scope(settings) as session:
        return list(session.exec(select(Subscriber.public_id).order_by(Subscriber.id)))


def wait_for(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
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


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by a process and its children that still run:
    the server's own cost, whatever else the machine is busy with."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == root or int(fields[1]) == root:  # fields[1] is the parent's id
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


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
@click.option("--rate", default=1000.0, show_default=True, help="Requests per second.")
@click.option("--concurrency", default=64, show_default=True, help="Requests in flight at most.")
@click.option("--warmup", default=2.0, show_default=True,
              help="Seconds of load before measuring (first requests compile templates).")
@click.option("--workers", default=2, show_default=True, help="`mailer serve --workers`.")
@click.option("--database", "kind", type=click.Choice(["sqlite", "postgresql"]),
              default="postgresql", show_default=True)
def main(duration: float, rate: float, concurrency: int, warmup: float, workers: int,
         kind: str) -> None:
    first = int(warmup * rate)
    count = first + int(duration * rate)
    with tempfile.TemporaryDirectory() as tmp, database(kind, tmp) as url:
        settings = Settings(root=Path(tmp), database_url=url,
                            secret_key="bench-secret-key-not-for-production", public_base_url=f"http://127.0.0.1:{free_port()}")
        ids = seed(settings, count)
        urls = [unsubscribe_url(settings, i) for i in ids]
        port = settings.public_base_url.rsplit(":", 1)[1]
        env = {**os.environ, "MAILER_ROOT": tmp, "MAILER_DATABASE_URL": settings.database_url,
               "MAILER_SECRET_KEY": settings.secret_key, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(
            [sys.executable, "-m", "mailer", "serve", "--port", port, "--workers", str(workers)],
            env=env, cwd=tmp,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(f"{settings.public_base_url}/aanmelden", server)
            _, warmup_failures, _ = asyncio.run(load(urls[:first], rate, concurrency))
            cpu_before = cpu_seconds(server.pid)
            latencies, failures, elapsed = asyncio.run(load(urls[first:], rate, concurrency))
            cpu = cpu_seconds(server.pid) - cpu_before
            failures += warmup_failures
        finally:
            server.terminate()
            server.wait(10)
        with session_scope(settings) as session:
            recorded = session.exec(select(func.count()).select_from(Subscriber)
                                    .where(Subscriber.status == "unsubscribed")).one()
        engine_for(settings.resolved_database_url).dispose()
    cuts = statistics.quantiles(latencies, n=100)
    print(f"{kind}, {workers} workers, {rate:.0f} requests/s offered")
    print(f"{len(latencies)} requests in {elapsed:.1f} s: {len(latencies) / elapsed:.0f} "
          f"requests/s, p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms, {failures} failed")
    print(f"server CPU: {cpu / len(latencies) * 1000:.2f} ms per request "
          f"({cpu / elapsed:.2f} cores busy on average; machine load {os.getloadavg()[0]:.1f})")
    answered = first + len(latencies) - failures
    ok = recorded == answered
    print(f"unsubscribes recorded: {recorded} of {answered} answered (warm-up included) "
          f"({'all recorded' if ok else 'MISSING'})")
    if not ok or failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
