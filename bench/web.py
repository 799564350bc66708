"""Benchmark: RFC 8058 one-click unsubscribes against `mailer serve --workers N` on loopback,
while a send runs against the same database.

Starts the server in its own processes on a fresh database (SQLite, or a new schema on the
PostgreSQL server) with enough subscribers, sends `List-Unsubscribe=One-Click` POSTs at a fixed
rate (open loop: latency counts from the moment a request was due, so a slow server cannot hide
its queue), then checks that every answered request left an unsubscribed subscriber behind.
During the measured window a `mailer sends work` process delivers the stalking mailing to
other subscribers of the same database, through an SMTP sink that takes 10 ms per message.

    python bench/web.py [--duration 30] [--rate 1000] [--workers 2] [--database postgresql]
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
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
from sqlmodel import col, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers import child_env, sink  # noqa: E402  (bench/workers.py, beside this file)

from mailer.config import Settings  # noqa: E402
from mailer.content.segments import all_segments  # noqa: E402
from mailer.db import engine_for, session_scope  # noqa: E402
from mailer.models import Subscriber  # noqa: E402
from mailer.send import runner as sending  # noqa: E402
from mailer.subscribers.lists import import_list  # noqa: E402
from mailer.subscribers.tokens import unsubscribe_url  # noqa: E402
from tests.conftest import bulk_subscribers  # noqa: E402
from tests.smtp_server import free_port  # noqa: E402

POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WEB_APP_NAME = "mailer-bench-web"  # PostgreSQL application_name of the server's connections


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
        return list(session.exec(select(Subscriber.public_id)
                                 .where(col(Subscriber.email).like("p%@example.org"))
                                 .order_by(Subscriber.id)))


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


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a running process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(root: int) -> dict[int, float]:
    """CPU seconds so far of a process and of its children that still run: the server's own
    cost, whatever else the machine is busy with."""
    found = {root: cpu_of(root)}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1]
                                            .split()[1]) == root:
                found[int(entry.name)] = cpu_of(int(entry.name))
        except OSError:
            continue
    return found


def is_worker(pid: int) -> bool:
    """A worker of `mailer serve --workers N` (not the supervisor's resource tracker)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def database_cpu(kind: str) -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL backends serving the web server (by their
    application_name); nothing on SQLite, which runs inside the server processes."""
    if kind != "postgresql":
        return {}
    with engine_for(POSTGRES_URL).connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                            {"n": WEB_APP_NAME}).scalars()
        return {pid: cpu_of(pid) for pid in pids}


def used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


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

    async def one(due: float, url: str) -> None:
        nonlocal failures
        connection = await pool.get()
        try:
            status = await connection.post(parts.netloc, urlsplit(url).path,
                                           b"List-Unsubscribe=One-Click")
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        pool.put_nowait(connection)
        latencies.append(time.perf_counter() - due)
        failures += status != 200

    # One task per request, started when it is due: creating them all up front would take the
    # loop a good part of a second at the start, and make the first requests late by that much.
    tasks = []
    for i, url in enumerate(urls):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due, url)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().writer.close()
    return latencies, failures, elapsed


def plan_send(settings: Settings, recipients: int) -> int:
    """`recipients` subscribers of the stalking mailing and a running send to them (snapshot
    taken now, so the people the benchmark unsubscribes are not among them)."""
    bulk_subscribers(settings, recipients, segments=list(all_segments()))
    send_id = sending.create_send(settings, "stalking")
    sending.snapshot_send(settings, send_id)
    return send_id


@click.command()
@click.option("--duration", default=30.0, show_default=True, help="Seconds of load.")
@click.option("--rate", default=1000.0, show_default=True, help="Requests per second.")
@click.option("--concurrency", default=64, show_default=True, help="Requests in flight at most.")
@click.option("--warmup", default=2.0, show_default=True,
              help="Seconds of load before measuring (first requests compile templates).")
@click.option("--workers", default=2, show_default=True, help="`mailer serve --workers`.")
@click.option("--database", "kind", type=click.Choice(["sqlite", "postgresql"]),
              default="postgresql", show_default=True)
@click.option("--recipients", default=10_000, show_default=True,
              help="Recipients of the send that runs meanwhile (0: no send).")
def main(duration: float, rate: float, concurrency: int, warmup: float, workers: int,
         kind: str, recipients: int) -> None:
    first = int(warmup * rate)
    count = first + int(duration * rate)
    with (tempfile.TemporaryDirectory() as tmp, database(kind, tmp) as url,
          sink(0.010) as (smtp, (sent, _, _))):
        shutil.copytree(ROOT / "content", Path(tmp) / "content")
        settings = Settings(root=Path(tmp), database_url=url,
                            secret_key="bench-secret-key-not-for-production",
                            smtp_host="127.0.0.1", smtp_port=smtp, smtp_security="none")
        send_id = plan_send(settings, recipients) if recipients else None
        ids = seed(settings, count)
        port = str(free_port())
        base = f"http://127.0.0.1:{port}"  # the server itself: the links in mails name the proxy
        urls = [base + urlsplit(unsubscribe_url(settings, i)).path for i in ids]
        env = child_env(settings)
        if kind == "postgresql":
            env["MAILER_DATABASE_URL"] += f"&application_name={WEB_APP_NAME}"
        server = subprocess.Popen(
            [sys.executable, "-m", "mailer", "serve", "--port", port, "--workers", str(workers)],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sender = None
        try:
            wait_for(f"{base}/aanmelden", server)
            _, warmup_failures, _ = asyncio.run(load(urls[:first], rate, concurrency))
            if send_id is not None:
                sender = subprocess.Popen(
                    [sys.executable, "-m", "mailer", "sends", "work", str(send_id)],
                    env={**env, "MAILER_DATABASE_URL": settings.database_url}, cwd=tmp,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                while not sent.value and sender.poll() is None:  # type: ignore[attr-defined]
                    time.sleep(0.01)
            sent_before = sent.value  # type: ignore[attr-defined]
            server_before, db_before = cpu_by_process(server.pid), database_cpu(kind)
            sender_before = cpu_of(sender.pid) if sender else 0.0
            client_before = resource.getrusage(resource.RUSAGE_SELF)
            latencies, failures, elapsed = asyncio.run(load(urls[first:], rate, concurrency))
            client_after = resource.getrusage(resource.RUSAGE_SELF)
            server_cpu = cpu_by_process(server.pid)
            worker_pids = {pid for pid in server_cpu if pid != server.pid and is_worker(pid)}
            db_cpu = used(db_before, database_cpu(kind))
            sender_cpu = cpu_of(sender.pid) - sender_before if sender else 0.0
            sent_in_window = sent.value - sent_before  # type: ignore[attr-defined]
            send_still_running = sender is not None and sender.poll() is None
            failures += warmup_failures
        finally:
            if sender is not None:
                sender.terminate()
                sender.wait(30)
            server.terminate()
            server.wait(10)
        with session_scope(settings) as session:
            recorded = session.exec(select(func.count()).select_from(Subscriber)
                                    .where(Subscriber.status == "unsubscribed")).one()
        engine_for(settings.resolved_database_url).dispose()
    n = len(latencies)
    cuts = statistics.quantiles(latencies, n=100)
    per_worker = sorted((server_cpu[pid] - server_before.get(pid, 0.0)
                         for pid in server_cpu if pid in worker_pids), reverse=True)
    total = used(server_before, server_cpu)
    client = (client_after.ru_utime + client_after.ru_stime
              - client_before.ru_utime - client_before.ru_stime)
    print(f"{kind}, {workers} workers, {rate:.0f} requests/s offered")
    print(f"{n} requests in {elapsed:.1f} s: {n / elapsed:.0f} requests/s, p50 "
          f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} "
          f"ms, {failures} failed")
    print(f"CPU per request: server {total / n * 1000:.2f} ms ({total / elapsed:.2f} cores"
          + (f"; per worker {', '.join(f'{c / elapsed:.2f}' for c in per_worker)}" if per_worker
             else "") + ")"
          + (f", PostgreSQL backends {db_cpu / n * 1000:.2f} ms" if kind == "postgresql" else "")
          + f", load generator {client / n * 1000:.2f} ms")
    if send_id is None:
        print("no send ran meanwhile (--recipients 0)")
    else:
        print(f"send meanwhile: `mailer sends work` delivered {sent_in_window} messages in the "
              f"window ({sent_in_window / elapsed:.0f}/s, {sender_cpu / elapsed:.2f} cores), "
              + ("still running at its end" if send_still_running
                 else "FINISHED BEFORE THE END: use more --recipients"))
    print(f"machine load average {os.getloadavg()[0]:.1f}")
    answered = first + n - failures
    ok = recorded == answered
    print(f"unsubscribes recorded: {recorded} of {answered} answered (warm-up included) "
          f"({'all recorded' if ok else 'MISSING'})")
    if not ok or failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
