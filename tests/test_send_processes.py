"""Real `mailer` processes: killed mid-send and resumed, and two workers sharing one send."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest
from sqlmodel import col, select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Delivery, Subscriber
from mailer.send import runner as sending
from mailer.send.dkimkeys import generate_key
from mailer.subscribers.subscriptions import suppress
from tests.conftest import REPO, bulk_subscribers
from tests.smtp_server import SMTPTestServer

BATCH = 20  # what one worker has in flight at most: the most a kill can make go out twice


def mailer(settings: Settings, server: SMTPTestServer, *args: str) -> subprocess.Popen:
    key = settings.root / "dkim.pem"  # signed and aligned, as a real send must be
    if not key.exists():
        generate_key(key)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")},
           "PYTHONPATH": str(REPO), "MAILER_ROOT": str(settings.root),
           "MAILER_DATABASE_URL": settings.database_url, "MAILER_SECRET_KEY": settings.secret_key,
           "MAILER_PUBLIC_BASE_URL": settings.public_base_url, "MAILER_SMTP_HOST": server.host,
           "MAILER_SMTP_PORT": str(server.port), "MAILER_SMTP_SECURITY": "none",
           "MAILER_SEND_BATCH": str(BATCH), "MAILER_DKIM_SELECTOR": "test",
           "MAILER_DKIM_DOMAIN": "veiligheidvoorop.nl", "MAILER_DKIM_KEY_FILE": str(key)}
    return subprocess.Popen([sys.executable, "-m", "mailer", *args], cwd=settings.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_after(process: subprocess.Popen, server: SMTPTestServer, received: int) -> None:
    """SIGKILL the process once the server holds `received` messages (or it ended)."""
    deadline = time.monotonic() + 30
    while len(server.messages) < received and process.poll() is None:
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()


def finish(process: subprocess.Popen) -> str:
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    return output


def message_ids(server: SMTPTestServer) -> Counter[str]:
    return Counter(email.message_from_bytes(r.data)["Message-ID"] for r in server.messages)


def test_killed_at_any_point_a_resume_reaches_everyone_and_doubles_only_what_was_in_flight(
        send_settings: Settings, smtp_server: SMTPTestServer) -> None:
    if not send_settings.database_url.startswith("sqlite"):
        pytest.skip("one backend is enough to show crash safety; the claim code is shared")
    total = 2000
    bulk_subscribers(send_settings, total)
    with session_scope(send_settings, write=True) as session:
        early = ["r5@example.org", "r1500@example.org"]
        for address in early:
            suppress(session, address, "unsubscribed")

    kill_after(mailer(send_settings, smtp_server, "send", "stalking", "--offline", "--force",
                      "--reason", "test content", "--by", "tester"), smtp_server, 1)
    kills = 1
    for received in (500, 1100):
        if received == 1100:  # people who leave while the send is under way
            with session_scope(send_settings, write=True) as session:
                pending = session.exec(
                    select(Subscriber.email).join(Delivery, col(Delivery.subscriber_id) == Subscriber.id)
                    .where(Delivery.status == "pending").order_by(Delivery.id.desc()).limit(3)).all()  # type: ignore[union-attr]
                for address in pending:
                    suppress(session, address, "unsubscribed")
        kill_after(mailer(send_settings, smtp_server, "sends", "resume", "1"), smtp_server, received)
        kills += 1
    output = finish(mailer(send_settings, smtp_server, "sends", "resume", "1"))
    assert "Send 1: done" in output

    counts = message_ids(smtp_server)
    recipients = {r.recipients[0] for r in smtp_server.messages}
    suppressed = {*early, *pending}
    assert recipients == {f"r{n}@example.org" for n in range(total)} - suppressed
    doubles = sum(n - 1 for n in counts.values())
    assert doubles <= kills * BATCH
    assert sending.summary(send_settings, 1).counts == {"sent": total - 5, "skipped": 3}


def test_two_workers_share_one_send_on_postgresql(send_settings: Settings,
                                                  smtp_server: SMTPTestServer) -> None:
    if not send_settings.database_url.startswith("postgresql"):
        pytest.skip("several workers on one send need PostgreSQL (SKIP LOCKED)")
    total = 1000
    bulk_subscribers(send_settings, total)
    settings = replace(send_settings, smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    send_id = sending.create_send(settings, "stalking")
    sending.snapshot_send(settings, send_id)
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
