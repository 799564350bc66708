"""Real `mailer` processes: killed at random points while people unsubscribe (the chaos test),
two workers sharing one send, and a second resume beside a sending one.

The chaos test SIGKILLs a send at least KILLS times at random moments (while starting up,
holding the lease, in the middle of a batch), against a real SMTP server that also answers 421
and 451, drops connections and refuses some recipients with 550, while people unsubscribe. On
SQLite one process sends at a time (`sends resume`, the lease passes on when its holder is
killed); on PostgreSQL three `sends work` processes share the send and a killed one is replaced.
It asserts that nobody is lost, nobody is mailed after their unsubscribe was recorded, and that
doubles stay within one batch per kill. Its figures are in docs/guarantees.md.
"""

from __future__ import annotations

import email
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.message.dkimkeys import generate_key
from mailer.models import Delivery, Subscriber, Subscription
from mailer.send import runner as sending
from tests.conftest import REPO, bulk_subscribers
from tests.smtp_server import SMTPTestServer

BATCH = 20  # what one worker has in flight at most: the most a kill can make go out twice
KILLS = 10
RECIPIENTS = 1500
LEAVERS = 30


def mailer(settings: Settings, server: SMTPTestServer, *args: str, output=subprocess.PIPE,  # type: ignore[no-untyped-def]
           **env: str) -> subprocess.Popen:
    key = settings.root / "dkim.pem"  # signed and aligned, as a real send must be
    if not key.exists():
        generate_key(key)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")},
           "PYTHONPATH": str(REPO), "MAILER_ROOT": str(settings.root),
           "MAILER_DATABASE_URL": settings.database_url, "MAILER_SECRET_KEY": settings.secret_key,
           "MAILER_PUBLIC_BASE_URL": settings.public_base_url, "MAILER_SMTP_HOST": server.host,
           "MAILER_SMTP_PORT": str(server.port), "MAILER_SMTP_SECURITY": "none",
           "MAILER_SEND_BATCH": str(BATCH), "MAILER_DKIM_SELECTOR": "test",
           "MAILER_DKIM_DOMAIN": "veiligheidvoorop.nl", "MAILER_DKIM_KEY_FILE": str(key),
           **{f"MAILER_{k.upper()}": v for k, v in env.items()}}
    return subprocess.Popen([sys.executable, "-m", "mailer", *args], cwd=settings.root, env=env,
                            stdout=output, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen) -> str:
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    return output


def message_ids(server: SMTPTestServer) -> Counter[str]:
    return Counter(email.message_from_bytes(r.data)["Message-ID"] for r in server.messages)


class Leavers(threading.Thread):
    """Unsubscribes people whose rows are still pending, close to where the workers claim, one
    every `every` seconds, and notes when each unsubscribe was recorded (committed)."""

    def __init__(self, settings: Settings, send_id: int, count: int, every: float):
        super().__init__(daemon=True)
        self.settings, self.send_id, self.count, self.every = settings, send_id, count, every
        self.recorded: dict[str, float] = {}
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.rng = random.Random(send_id)

    def run(self) -> None:
        try:
            self.leave()
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.error = exc

    def leave(self) -> None:
        while len(self.recorded) < self.count and not self.done.wait(self.every):
            with session_scope(self.settings, write=True) as session:
                row = session.exec(
                    select(Delivery.subscriber_id)
                    .join(Subscription, col(Subscription.subscriber_id) == Delivery.subscriber_id)
                    .where(Delivery.send_id == self.send_id, Delivery.status == "pending",
                           Subscription.status == "active")
                    .order_by(Delivery.id).offset(self.rng.randint(0, 3 * BATCH)).limit(1)
                    .with_for_update(of=Delivery, skip_locked=True)).first()
                if row is None:
                    continue
                address = session.exec(select(Subscriber.email).where(Subscriber.id == row)).one()
                session.execute(update(Subscription).where(col(Subscription.subscriber_id) == row)
                                .values(status="unsubscribed"))
            self.recorded[address] = time.time()


def chaos(settings: Settings, server: SMTPTestServer, command: tuple[str, ...], workers: int,
          seed: int) -> tuple[int, list[subprocess.Popen]]:
    """Run `workers` processes of `command`, SIGKILL one at a random moment KILLS times and
    start another in its place; returns the kills and the processes still running."""
    rng = random.Random(seed)
    logs = tempfile.TemporaryFile()  # noqa: SIM115 - the processes write to it until they end
    env = {"send_retry_seconds": "0.05", "send_max_attempts": "50",
           "send_connection_retry_seconds": "0.01"}
    running = [mailer(settings, server, *command, output=logs, **env) for _ in range(workers)]
    kills = 0
    deadline = time.monotonic() + 120
    while kills < KILLS:
        assert time.monotonic() < deadline, "the send made no progress"
        victim = rng.choice(running)
        if rng.random() < 0.3:  # while starting, snapshotting, taking the lease …
            victim_deadline, target = time.monotonic() + rng.uniform(0.1, 1.5), None
        else:  # … or in the middle of sending
            victim_deadline, target = time.monotonic() + 20, len(server.messages) + rng.randint(5, 90)
        while victim.poll() is None and time.monotonic() < victim_deadline and (
                target is None or len(server.messages) < target):
            time.sleep(0.005)
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            kills += 1
        victim.wait()
        running.remove(victim)
        running.append(mailer(settings, server, *command, output=logs, **env))
    return kills, running


@pytest.mark.parametrize("seed", [2026])
def test_chaos_killed_at_random_points_nobody_lost_nobody_mailed_after_leaving(
        send_settings: Settings, seed: int) -> None:
    postgres = send_settings.database_url.startswith("postgresql")
    rejected = {f"r{n}@example.org" for n in (7, 700, 1400)}
    bulk_subscribers(send_settings, RECIPIENTS)
    send_id = sending.create_send(send_settings, "stalking")
    sending.snapshot_send(send_settings, send_id)
    started = time.monotonic()
    with SMTPTestServer(temporary=0.04, temporary_code=(421, 451), drop=0.02, reject=rejected,
                        seed=seed) as server:
        leavers = Leavers(send_settings, send_id, LEAVERS, every=0.1)
        leavers.start()
        command = ("sends", "work", str(send_id)) if postgres else ("sends", "resume", str(send_id))
        kills, running = chaos(send_settings, server, command, 3 if postgres else 1, seed)
        for process in running:
            process.wait(timeout=60)
        if not postgres or sending.summary(send_settings, send_id).status != "done":
            finish(mailer(send_settings, server, "sends", "resume", str(send_id),
                          send_retry_seconds="0.05"))
        leavers.done.set()
        leavers.join()
        assert leavers.error is None, repr(leavers.error)
        received = server.messages
        faults = Counter(server.faults)
    seconds = time.monotonic() - started

    left = set(leavers.recorded)
    summary = sending.summary(send_settings, send_id)
    assert summary.status == "done"
    failed = len(rejected - left)  # unless they left before their turn
    assert summary.counts == {"sent": RECIPIENTS - len(left) - failed, "skipped": len(left),
                              "failed": failed}
    everyone = {f"r{n}@example.org" for n in range(RECIPIENTS)}
    reached = {r.recipients[0] for r in received}
    lost = everyone - left - rejected - reached
    assert not lost, f"lost: {sorted(lost)}"
    assert not reached & rejected, "a refused address was delivered"
    # A leaver may have been mailed before their unsubscribe was recorded: a batch killed
    # after sending is taken up again, and their row then ends skipped. What they are
    # promised is that nothing reaches them after it was recorded:
    late = [r for r in received if r.at > leavers.recorded.get(r.recipients[0], float("inf"))]
    assert not late, "mailed after their unsubscribe was recorded"
    doubles = sum(n - 1 for n in message_ids(server).values())
    assert kills >= KILLS and doubles <= kills * BATCH
    assert faults["421"] and faults["451"] and faults["drop"], "the faults were injected"
    print(f"\nchaos {'postgresql, 3 workers' if postgres else 'sqlite, 1 worker'}: "
          f"{RECIPIENTS} recipients, {kills} SIGKILLs, {len(left)} unsubscribed during the run, "
          f"faults {dict(faults)}, 550 x{failed}; lost 0, mailed after leaving 0, doubles {doubles} "
          f"(bound {kills * BATCH}); {seconds:.1f} s")


def started_on_postgresql(send_settings: Settings, smtp_server: SMTPTestServer, total: int,
                          why: str) -> tuple[Settings, int]:
    """Settings that send to `smtp_server` and a started send to `total` people (PostgreSQL)."""
    if not send_settings.database_url.startswith("postgresql"):
        pytest.skip(why)
    bulk_subscribers(send_settings, total)
    settings = replace(send_settings, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    send_id = sending.create_send(settings, "stalking")
    sending.snapshot_send(settings, send_id)
    return settings, send_id


def test_two_workers_share_one_send_on_postgresql(send_settings: Settings,
                                                  smtp_server: SMTPTestServer) -> None:
    total = 1000
    settings, send_id = started_on_postgresql(
        send_settings, smtp_server, total, "several workers on one send need PostgreSQL (SKIP LOCKED)")
    workers = [mailer(settings, smtp_server, "sends", "work", str(send_id), "--rate", "300")
               for _ in range(2)]
    for worker in workers:
        finish(worker)
    counts = message_ids(smtp_server)
    assert len(counts) == total and set(counts.values()) == {1}
    with session_scope(settings) as session:
        names = set(session.exec(select(Delivery.worker).where(Delivery.send_id == send_id)))
    assert len(names) == 2, "both workers took part"
    assert sending.summary(settings, send_id).status == "done"


def test_a_second_resume_leaves_the_first_ones_batches_alone_on_postgresql(
        send_settings: Settings, smtp_server: SMTPTestServer) -> None:
    """A second `sends resume` while the first is sending takes over only the claims of workers
    that are gone: the first one's batches in flight are not sent twice."""
    total = 600
    settings, send_id = started_on_postgresql(
        send_settings, smtp_server, total,
        "on SQLite the lease refuses a second worker (tests/test_send_lease.py)")
    first = mailer(settings, smtp_server, "sends", "resume", str(send_id), "--rate", "100")
    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < 2 * BATCH:  # the first one is in the middle of its send
        assert first.poll() is None and time.monotonic() < deadline, "the first resume stalled"
        time.sleep(0.01)
    second = mailer(settings, smtp_server, "sends", "resume", str(send_id), "--rate", "100")
    for process in (first, second):
        finish(process)
    counts = message_ids(smtp_server)
    assert len(counts) == total
    assert [mid for mid, n in counts.items() if n > 1] == [], "sent twice"
    assert sending.summary(settings, send_id).counts == {"sent": total}
