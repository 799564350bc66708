"""Benchmark: a full send of the stalking mailing through SMTP on loopback, beside a bare loop.

An aiosmtpd server that only counts runs in a process of its own (a real mail server is not in
the sender's process either). Each run gets a new SQLite database with N active subscribers
spread over all 30 segments (inserted in bulk, not timed) and a fresh build (not timed); then
`create_send` + `run_send` are timed: snapshot, slot filling, headers, SMTP over
`smtp_connections` connections, batched bookkeeping. The bare loop sends one pre-built message
of the same mailing over one smtplib connection to the same server, as fast as it can.

Memory: one more send runs under tracemalloc and reports the peak of Python allocations during
the send; ru_maxrss is the peak resident size of the whole process.

    python bench/send.py [--recipients 20000] [--dkim-recipients 2000] [--runs 3]
"""

from __future__ import annotations

import multiprocessing
import resource
import smtplib
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.build.builder import build  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.content.segments import all_segments  # noqa: E402
from mailer.db import engine_for  # noqa: E402
from mailer.send import runner as sending  # noqa: E402
from mailer.send.dkimkeys import generate_key  # noqa: E402
from tests.conftest import REPO, bulk_subscribers  # noqa: E402
from tests.smtp_server import free_port  # noqa: E402


def serve(port: int, ready: multiprocessing.synchronize.Event, count: multiprocessing.Value) -> None:
    """A counting SMTP server; runs in its own process until terminated."""
    from aiosmtpd.controller import Controller

    class Counter:
        async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
            with count.get_lock():
                count.value += 1
            return "250 OK"

    controller = Controller(Counter(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def project(root: Path, dkim: bool) -> Settings:
    target = root / "content"
    if not target.exists():
        import shutil

        shutil.copytree(REPO / "content", target)
    settings = Settings(root=root, secret_key="bench", smtp_security="none")
    if dkim:
        key = root / "dkim.pem"
        if not key.exists():
            generate_key(key)
        settings = replace(settings, dkim_selector="bench", dkim_domain="veiligheidvoorop.nl",
                           dkim_key_file=str(key))
    return settings


def full_send(settings: Settings, recipients: int, run: str, memory: bool = False
              ) -> tuple[float, int]:
    """Seconds for create_send + run_send of `recipients`, and the traced peak (bytes)."""
    url = f"sqlite:///{settings.root}/{run}.db"
    settings = replace(settings, database_url=url)
    bulk_subscribers(settings, recipients, segments=list(all_segments()))
    build(settings, "stalking")
    if memory:
        tracemalloc.start()
    start = time.perf_counter()
    send_id = sending.create_send(settings, "stalking")
    summary = sending.run_send(settings, send_id)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if memory else 0
    tracemalloc.stop()
    engine_for(url).dispose()
    assert summary.counts == {"sent": recipients}, summary
    return seconds, peak


def bare_loop(settings: Settings, messages: int) -> float:
    """Seconds to send one pre-built message `messages` times over one smtplib connection."""
    from mailer.send.runner import MessageCommon, MessageTemplate

    manifest = sending.current_manifest(settings, "stalking")
    name = manifest.segments["limburg/netwerk"].variant
    common = MessageCommon(0, manifest.subject, manifest.topic, manifest.greeting,
                           manifest.greeting_named)
    template = MessageTemplate(settings, common,
                               *sending._read_variant(settings, "stalking", manifest, name))
    url = f"{settings.public_base_url}/afmelden/x"
    message = template.message(recipient_id=1, address="r1@example.org", name="Ontvanger 1",
                             unsubscribe=url, preferences=url)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port) as conn:
        start = time.perf_counter()
        for _ in range(messages):
            conn.sendmail(message.sender, [message.recipient], message.data)
        return time.perf_counter() - start


@click.command()
@click.option("--recipients", default=20_000, show_default=True)
@click.option("--dkim-recipients", default=2_000, show_default=True,
              help="Recipients of the DKIM-on send (RSA signing costs ~8 ms a message).")
@click.option("--bare-messages", default=5_000, show_default=True)
@click.option("--runs", default=3, show_default=True)
def main(recipients: int, dkim_recipients: int, bare_messages: int, runs: int) -> None:
    port = free_port()
    ready, count = multiprocessing.Event(), multiprocessing.Value("q", 0)
    server = multiprocessing.Process(target=serve, args=(port, ready, count), daemon=True)
    server.start()
    ready.wait(10)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            plain = replace(project(root, dkim=False), smtp_host="127.0.0.1", smtp_port=port)
            signed = replace(project(root, dkim=True), smtp_host="127.0.0.1", smtp_port=port)
            build(plain, "stalking")
            rows = {"bare": [], "send": [], "bare dkim": [], "send dkim": []}
            for run in range(runs):
                rows["bare"].append(bare_messages / bare_loop(plain, bare_messages))
                rows["send"].append(recipients / full_send(plain, recipients, f"p{run}")[0])
                rows["bare dkim"].append(bare_messages / bare_loop(signed, bare_messages))
                rows["send dkim"].append(
                    dkim_recipients / full_send(signed, dkim_recipients, f"d{run}")[0])
                print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rows.items()),
                      flush=True)
            _, peak = full_send(plain, recipients, "memory", memory=True)
    finally:
        server.terminate()
    median = {k: statistics.median(v) for k, v in rows.items()}
    print(f"\nmedians of {runs} runs, messages per second:")
    print(f"  bare loop (1 connection, pre-built message) {median['bare']:,.0f}")
    print(f"  full send, DKIM off ({recipients:,} recipients) {median['send']:,.0f}"
          f"  ratio {median['send'] / median['bare']:.2f}")
    print(f"  bare loop, pre-signed message {median['bare dkim']:,.0f}")
    print(f"  full send, DKIM on ({dkim_recipients:,} recipients) {median['send dkim']:,.0f}"
          f"  ratio {median['send dkim'] / median['bare dkim']:.2f}")
    print(f"peak traced Python memory of a {recipients:,}-recipient send: {peak / 2**20:.1f} MiB;"
          f" peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          f" MiB; server counted {count.value:,} messages")


if __name__ == "__main__":
    main()
