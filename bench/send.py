"""Benchmark: a full send of the stalking mailing through SMTP on loopback, beside a bare loop.

An aiosmtpd server that only counts runs in a process of its own (a real mail server is not in
the sender's process either). Each run gets a new SQLite database with N active subscribers
spread over all 30 segments (inserted in bulk, not timed) and a fresh build (not timed); then
`create_send` + `run_send` are timed: snapshot, slot filling, headers, SMTP over
`smtp_connections` connections, batched bookkeeping. The bare loop sends one pre-built message
of the same mailing over one smtplib connection to the same server, as fast as it can.

Memory: one more send runs under tracemalloc and reports the peak of Python allocations during
the send; ru_maxrss is the peak resident size of the whole process.

    python bench/send.py [--recipients 4000] [--dkim-recipients 4000] [--runs 3] [--cost-messages 2000]
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

from mailer.builds.builder import build  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.content.segments import all_segments  # noqa: E402
from mailer.db import engine_for  # noqa: E402
from mailer.message.assembly import MessageCommon, MessageTemplate  # noqa: E402
from mailer.message.dkimkeys import generate_key  # noqa: E402
from mailer.send import runner as sending  # noqa: E402
from mailer.send.preflight import current_manifest  # noqa: E402
from mailer.transport.transports import OutgoingMessage  # noqa: E402
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
    settings = Settings(root=root, secret_key="bench-secret-key-not-for-production", smtp_security="none")
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


def message_template(settings: Settings) -> MessageTemplate:
    """The limburg/netwerk variant of the stalking mailing, ready to fill per recipient."""
    manifest = current_manifest(settings, "stalking")
    name = manifest.segments["limburg/netwerk"].variant
    common = MessageCommon(1, "0123456789abcdef", manifest.subject, manifest.topic,
                           manifest.greeting, manifest.greeting_named)
    return MessageTemplate(settings, common,
                           *sending._read_variant(settings, "stalking", manifest, name))


def one_message(template: MessageTemplate, n: int) -> OutgoingMessage:
    url = f"https://nieuws.veiligheidvoorop.nl/afmelden/IjEi.aGVsbG8{n}"
    return template.message(recipient_id=n, address=f"r{n}@example.org", name=f"Ontvanger {n}",
                            unsubscribe=url, preferences=url, token=f"IjEi.aGVsbG8{n}")


def build_cost(settings: Settings, messages: int) -> float:
    """Microseconds the sender spends on one message: slots, headers, encoding, signing."""
    filled = message_template(settings)
    start = time.perf_counter()
    for n in range(messages):
        one_message(filled, n)
    return (time.perf_counter() - start) / messages * 1e6


def bare_loop(settings: Settings, messages: int) -> float:
    """Seconds to send one pre-built message `messages` times over one smtplib connection."""
    message = one_message(message_template(settings), 1)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port) as conn:
        start = time.perf_counter()
        for _ in range(messages):
            conn.sendmail(message.sender, [message.recipient], message.data)
        return time.perf_counter() - start


@click.command()
@click.option("--recipients", default=4_000, show_default=True)
@click.option("--dkim-recipients", default=4_000, show_default=True,
              help="Recipients of the DKIM-on send.")
@click.option("--bare-messages", default=3_000, show_default=True)
@click.option("--runs", default=3, show_default=True)
@click.option("--cost-messages", default=2_000, show_default=True,
              help="Messages made (not sent) to measure the sender's own cost.")
def main(recipients: int, dkim_recipients: int, bare_messages: int, runs: int,
         cost_messages: int) -> None:
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
            cost = {"off": build_cost(plain, cost_messages), "on": build_cost(signed, cost_messages)}
    finally:
        server.terminate()
    median = {k: statistics.median(v) for k, v in rows.items()}
    plain_ratio = statistics.median(s / b for s, b in zip(rows["send"], rows["bare"], strict=True))
    dkim_ratio = statistics.median(
        s / b for s, b in zip(rows["send dkim"], rows["bare dkim"], strict=True))
    print(f"\nmedians of {runs} runs, messages per second (ratio: median of the per-run ratios):")
    print(f"  bare loop (1 connection, pre-built message) {median['bare']:,.0f}")
    print(f"  full send, DKIM off ({recipients:,} recipients) {median['send']:,.0f}"
          f"  ratio {plain_ratio:.2f}")
    print(f"  bare loop, pre-signed message {median['bare dkim']:,.0f}")
    print(f"  full send, DKIM on ({dkim_recipients:,} recipients) {median['send dkim']:,.0f}"
          f"  ratio {dkim_ratio:.2f}")
    print(f"sender's own cost per message (slots, headers, encoding; no SMTP): DKIM off "
          f"{cost['off']:.0f} µs, DKIM on {cost['on']:.0f} µs")
    print(f"peak traced Python memory of a {recipients:,}-recipient send: {peak / 2**20:.1f} MiB;"
          f" peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          f" MiB; server counted {count.value:,} messages")


if __name__ == "__main__":
    main()
