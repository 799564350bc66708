"""Benchmark: one send shared by 1, 2 and 4 `mailer sends work` processes on PostgreSQL.

The SMTP server (a minimal asyncio SMTP sink, a process of its own) takes 10 ms to answer each
message, as a real relay on a network would, so one worker with its `smtp_connections` connections is bound by
waiting, not by CPU, and more workers should add throughput until the two cores run out. Each
run snapshots a new send of the stalking mailing to N subscribers (not timed), starts K worker
processes at once and times the span from the server's first accepted message to its last;
the wall time including process start-up is printed beside it.

    python bench/workers.py [--recipients 2000] [--runs 2] [--delay-ms 10] [--workers 1 --workers 2 ...]

Needs PostgreSQL (MAILER_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test);
the benchmark works in a schema of its own and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
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

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.config import Settings  # noqa: E402
from mailer.content.segments import all_segments  # noqa: E402
from mailer.db import engine_for  # noqa: E402
from mailer.send import runner as sending  # noqa: E402
from tests.conftest import REPO, bulk_subscribers  # noqa: E402
from tests.smtp_server import free_port  # noqa: E402

POSTGRES_URL = os.environ.get("MAILER_BENCH_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Sink:
    """The server side of one SMTP connection: answers every command, reads DATA up to the
    final dot with one search per chunk, and accepts each message `delay` seconds later.

    aiosmtpd handles DATA line by line in Python: at several hundred 80 KB messages a second
    it would be the bottleneck being measured, not the workers."""

    def __init__(self, delay: float, count, first, last):  # type: ignore[no-untyped-def]
        self.delay, self.count, self.first, self.last = delay, count, first, last
        self.buffer, self.in_data = b"", False

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                self.buffer, self.in_data = self.buffer[end + 5:], False
                asyncio.get_running_loop().call_later(self.delay, self.accept)
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            command, self.buffer = self.buffer[:4].upper(), self.buffer[end + 2:]
            if command == b"EHLO":
                self.transport.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif command == b"DATA":
                self.in_data = True
                self.transport.write(b"354 end with <CRLF>.<CRLF>\r\n")
            elif command == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.transport.write(b"250 OK\r\n")

    def accept(self) -> None:
        now = time.time()
        with self.count.get_lock():
            self.count.value += 1
            if self.count.value == 1:
                self.first.value = now
            self.last.value = now
        if not self.transport.is_closing():
            self.transport.write(b"250 OK queued\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def eof_received(self) -> None:
        pass


def serve(port: int, delay: float, ready, count, first, last) -> None:  # type: ignore[no-untyped-def]
    """The SMTP sink on `port`, counting messages and noting the times of the first and the
    last; runs until terminated."""

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: Sink(delay, count, first, last), "127.0.0.1", port)
        ready.set()
        await server.serve_forever()

    asyncio.run(run())


@contextmanager
def sink(delay: float) -> Iterator[tuple[int, tuple]]:
    """`serve` (`delay` seconds a message) in a process of its own, for the length of the block:
    its port and its counters (messages, the first and the last one's time)."""
    port, ready = free_port(), multiprocessing.Event()
    counters = (multiprocessing.Value("q", 0), multiprocessing.Value("d", 0.0),
                multiprocessing.Value("d", 0.0))
    process = multiprocessing.Process(target=serve, args=(port, delay, ready, *counters), daemon=True)
    process.start()
    ready.wait(10)
    try:
        yield port, counters
    finally:
        process.terminate()


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a `mailer` process for `settings`: ours without MAILER_* settings, then
    the project, database, secret and SMTP sink of `settings`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")},
            "PYTHONPATH": str(REPO), "MAILER_ROOT": str(settings.root),
            "MAILER_DATABASE_URL": settings.database_url, "MAILER_SECRET_KEY": settings.secret_key,
            "MAILER_SMTP_HOST": settings.smtp_host, "MAILER_SMTP_PORT": str(settings.smtp_port),
            "MAILER_SMTP_SECURITY": "none"}


def workers_run(settings: Settings, recipients: int, workers: int, counters  # type: ignore[no-untyped-def]
                ) -> tuple[float, float, float]:
    """Seconds from the first to the last message at the server, wall seconds including the
    workers' start-up, and the workers' CPU seconds (user + system), for one send delivered by
    `workers` processes."""
    count, first, last = counters
    send_id = sending.create_send(settings, "stalking")
    sending.snapshot_send(settings, send_id)
    with count.get_lock():
        count.value, first.value, last.value = 0, 0.0, 0.0
    env = child_env(settings)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # Without the send's id: a worker that starts after the others finished finds nothing to do.
    processes = [subprocess.Popen([sys.executable, "-m", "mailer", "sends", "work"],
                                  cwd=settings.root, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(workers)]
    for process in processes:
        _, error = process.communicate(timeout=600)
        assert process.returncode == 0, error.decode()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    summary = sending.summary(settings, send_id)
    assert summary.counts == {"sent": recipients} and count.value == recipients, (summary, count.value)
    return last.value - first.value, wall, cpu


@click.command()
@click.option("--recipients", default=2_000, show_default=True)
@click.option("--runs", default=2, show_default=True)
@click.option("--delay-ms", default=10.0, show_default=True, help="The server's time per message.")
@click.option("--workers", "counts", multiple=True, type=int, default=[1, 2, 4], show_default=True,
              help="Numbers of workers to compare (repeatable).")
def main(recipients: int, runs: int, delay_ms: float, counts: tuple[int, ...]) -> None:
    schema = f"mailer_bench_{uuid.uuid4().hex[:8]}"
    admin = engine_for(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        with sink(delay_ms / 1000) as (port, counters), tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            shutil.copytree(REPO / "content", root / "content")
            settings = Settings(root=root, secret_key="bench-secret-key-not-for-production",
                                smtp_security="none",
                                smtp_host="127.0.0.1", smtp_port=port,
                                database_url=f"{POSTGRES_URL}{separator}"
                                             f"options=-csearch_path%3D{schema}")
            bulk_subscribers(settings, recipients, segments=list(all_segments()))
            rates: dict[int, list[float]] = {workers: [] for workers in counts}
            for run in range(runs):
                for workers in rates:
                    span, wall, cpu = workers_run(settings, recipients, workers, counters)
                    rates[workers].append(recipients / span)
                    print(f"run {run + 1}, {workers} worker(s): {recipients / span:,.0f} msg/s "
                          f"(server span {span:.2f} s; wall with start-up {wall:.2f} s, "
                          f"{recipients / wall:,.0f} msg/s; workers' CPU "
                          f"{1000 * cpu / recipients:.2f} ms a message, {cpu / span:.2f} cores "
                          f"busy)", flush=True)
            engine_for(settings.database_url).dispose()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    median = {workers: statistics.median(values) for workers, values in rates.items()}
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print(f"medians of {runs} runs, {recipients:,} recipients, {delay_ms:g} ms per message at "
          f"the server, {Settings.smtp_connections} connections per worker:")
    for workers, rate in median.items():
        print(f"  {workers} worker(s): {rate:,.0f} msg/s, {rate / median[counts[0]]:.2f}x "
              f"{counts[0]} worker(s)")


if __name__ == "__main__":
    main()
