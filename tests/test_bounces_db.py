"""Bounces recorded in the database: suppression, the bounced delivery, soft counts, re-runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from mailer.bounces.processing import DatabaseHandler, process
from mailer.cli.main import main
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Delivery
from mailer.send import runner as sending
from mailer.subscribers.subscriptions import is_suppressed
from mailer.transport.transports import MemoryTransport
from tests.conftest import add_subscriber


def dsn(address: str, status: str, original_id: str) -> bytes:
    """A delivery status notification (RFC 3464) as an MTA writes it."""
    return f"""From: MAILER-DAEMON@mx.example.net
To: bounces@veiligheidvoorop.nl
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

This is the mail system at host mx.example.net.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {address}
Action: failed
Status: {status}
Diagnostic-Code: smtp; the server said no

--b1
Content-Type: text/rfc822-headers

Message-ID: {original_id}
Subject: Thematische verdieping

--b1--
""".replace("\n", "\r\n").encode()


@pytest.fixture
def sent(send_settings: Settings) -> tuple[int, int, int]:
    """A finished send to two people: (send id, hard bouncer's id, soft bouncer's id)."""
    with session_scope(send_settings, write=True) as session:
        hard = add_subscriber(session, "weg@example.org", topics=("verdiepingen",))
        soft = add_subscriber(session, "vol@example.org", topics=("verdiepingen",))
    send_id = sending.create_send(send_settings, "stalking")
    sending.run_send(send_settings, send_id, transport=MemoryTransport())
    return send_id, hard, soft


def write(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)


def test_hard_bounces_suppress_and_mark_the_delivery_and_reruns_change_nothing(
        send_settings: Settings, sent: tuple[int, int, int], tmp_path: Path) -> None:
    send_id, hard, soft = sent
    box = tmp_path / "bounces"
    write(box, "1.eml", dsn("weg@example.org", "5.1.1", f"<send-{send_id}.rcpt-{hard}@x.nl>"))
    for n in range(2):  # two different mails to the same full mailbox
        write(box, f"soft{n}.eml", dsn("vol@example.org", "4.2.2", f"<send-{n + 90}.rcpt-{soft}@x.nl>"))
    with session_scope(send_settings, write=True) as session:
        actions = [a for r in process(box, DatabaseHandler(session)) for a in r.actions]
    assert sorted(actions) == ["soft bounce 1 of 3", "soft bounce 2 of 3",
                               f"suppressed, delivery {hard_delivery(send_settings, hard)} bounced"]
    with session_scope(send_settings, write=True) as session:
        again = [a for r in process(box, DatabaseHandler(session)) for a in r.actions]
        assert again == ["already recorded"] * 3
    with session_scope(send_settings) as session:
        assert is_suppressed(session, "weg@example.org")
        assert not is_suppressed(session, "vol@example.org")
        rows = {d.subscriber_id: d for d in session.exec(select(Delivery))}
    assert rows[hard].status == "bounced" and rows[hard].error.startswith("5.1.1")
    assert rows[soft].status == "sent"


def hard_delivery(settings: Settings, subscriber_id: int) -> int:
    with session_scope(settings) as session:
        return session.exec(select(Delivery.id).where(
            Delivery.subscriber_id == subscriber_id)).one()


def test_the_command_records_and_suppresses_after_the_soft_limit(
        send_settings: Settings, sent: tuple[int, int, int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    send_id, _, soft = sent
    for key, value in {"MAILER_ROOT": str(send_settings.root),
                       "MAILER_DATABASE_URL": send_settings.database_url,
                       "MAILER_BOUNCE_SOFT_LIMIT": "2"}.items():
        monkeypatch.setenv(key, value)
    box = tmp_path / "bounces"
    write(box, "a.eml", dsn("vol@example.org", "4.2.2", f"<send-{send_id}.rcpt-{soft}@x.nl>"))
    write(box, "b.eml", dsn("vol@example.org", "4.2.2", f"<send-99.rcpt-{soft}@x.nl>"))
    result = CliRunner().invoke(main, ["bounces", "process", str(box)])
    assert result.exit_code == 0, result.output
    assert "a.eml: vol@example.org soft 4.2.2" in result.output
    assert "-> suppressed after 2 soft bounces" in result.output
    assert result.output.splitlines()[-1] == "2 messages: 0 hard, 2 soft, 0 ignored"
    with session_scope(send_settings) as session:
        assert is_suppressed(session, "vol@example.org")
    again = CliRunner().invoke(main, ["bounces", "process", str(box)])
    assert again.output.count("-> already recorded") == 2
