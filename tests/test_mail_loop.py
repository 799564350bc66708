"""The whole loop through real mail servers: a mailing goes out through Postfix, which
delivers to local Maildirs and bounces the unknown users with DSNs of its own to our VERP
bounce address; `mailer bounces fetch` reads those over IMAP from Dovecot and suppresses
exactly the unknown users (tests/mailservers.py has both servers)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dkim
import pytest
from sqlmodel import select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Delivery, Suppression
from mailer.send import runner as sending
from mailer.subscribers.subscriptions import is_suppressed
from tests.conftest import add_subscriber
from tests.mailservers import (
    LOOP_DOMAIN,
    PASSWORD,
    Dovecot,
    Postfix,
    mail_root,
    missing,
    running,
    wait_until,
)
from tests.test_wire import signing

BOUNCES = "bounces@veiligheidvoorop.nl"
DELIVERED = [f"lezer{n}@{LOOP_DOMAIN}" for n in range(10)]
UNKNOWN = [f"vertrokken{n}@{LOOP_DOMAIN}" for n in (1, 2)]


@pytest.fixture
def servers() -> Iterator[tuple[Postfix, Dovecot]]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    mailboxes = {a: f"{LOOP_DOMAIN}/{a.split('@')[0]}" for a in DELIVERED}
    mailboxes[BOUNCES] = "veiligheidvoorop.nl/bounces"
    with mail_root() as root:
        postfix = Postfix(root, mailboxes, (LOOP_DOMAIN, "veiligheidvoorop.nl"))
        dovecot = Dovecot(root, {BOUNCES: mailboxes[BOUNCES]})
        with running(postfix, dovecot):
            yield postfix, dovecot


def arrived(folder: Path) -> list[Path]:
    new = folder / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def smtp_data(port: int, data: bytes) -> str:
    """Postfix's answer to one message sent as raw DATA (smtplib would mend its line ends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        replies = sock.makefile("rb")
        for line in (None, b"EHLO test\r\n", b"MAIL FROM:<" + BOUNCES.encode() + b">\r\n",
                     b"RCPT TO:<" + DELIVERED[0].encode() + b">\r\n", b"DATA\r\n", data):
            if line is not None:
                sock.sendall(line)
            while (answer := replies.readline())[3:4] == b"-":
                pass
    return answer.decode().strip()


def test_a_mailing_through_postfix_comes_back_as_dsns_that_suppress_exactly_the_unknown(
        send_settings: Settings, servers: tuple[Postfix, Dovecot], invoke) -> None:  # type: ignore[no-untyped-def]
    postfix, dovecot = servers
    settings, record = signing(replace(send_settings, smtp_host="127.0.0.1", smtp_port=postfix.port,
                                       smtp_security="none", smtp_timeout=10))
    with session_scope(settings, write=True) as session:
        for address in DELIVERED + UNKNOWN:
            add_subscriber(session, address, topics=("verdiepingen",))
    begin = time.monotonic()

    send_id = sending.create_send(settings, "stalking")
    assert sending.run_send(settings, send_id).counts == {"sent": 12}  # Postfix took all 12
    sent = time.monotonic()
    wait_until(lambda: all(arrived(postfix.maildir(a)) for a in DELIVERED)
               and len(arrived(postfix.maildir(BOUNCES))) == 2, 60,
               f"10 deliveries and 2 DSNs\n{postfix.log()}")
    back = time.monotonic()
    fetch = {"bounce_imap_url": dovecot.url(BOUNCES), "bounce_imap_password": PASSWORD}
    first = invoke("bounces", "fetch", **fetch)
    done = time.monotonic()

    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[-1] == (
        "2 messages: 2 hard, 0 soft, 0 blocked (0 unmatched), 0 unsubscribe mails, 0 ignored; "
        "2 moved to Verwerkt")
    assert sorted(line.split(": ", 1)[1].split(" -> ")[0] for line in first.output.splitlines()[:2]) == [
        f'{a} hard 5.1.1 (X-Postfix; unknown user: "{a}")' for a in UNKNOWN]
    with session_scope(settings) as session:
        assert [a for a in DELIVERED + UNKNOWN if is_suppressed(session, a)] == UNKNOWN
        bounced = session.exec(select(Delivery).where(Delivery.status == "bounced")).all()
        assert [(d.answer_class, d.enhanced_code) for d in bounced] == [("hard", "5.1.1")] * 2
    second = invoke("bounces", "fetch", **fetch)
    assert second.output.splitlines()[-1].startswith("0 messages: 0 hard")
    with session_scope(settings) as session:
        assert len(session.exec(select(Suppression)).all()) == 2

    # What arrived is what was signed: Postfix delivers to Maildir with Unix line ends, which
    # the signature's canonical form does not see. Bare LFs never got in: this Postfix
    # refuses every message with one (shown last).
    delivered = [arrived(postfix.maildir(a)) for a in DELIVERED]
    assert [len(files) for files in delivered] == [1] * 10
    for [file] in delivered:
        data = file.read_bytes().replace(b"\n", b"\r\n")
        assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record), file
    assert "bare <LF> received" not in postfix.log()
    assert smtp_data(postfix.port, b"Subject: x\r\n\r\nkale\nregel\r\n.\r\n").startswith("550 5.5.2")
    print(f"\nmail loop ({settings.database_url.split(':')[0].split('+')[0]}): {len(delivered)} messages "
          f"delivered, {len(bounced)} DSNs classified, {done - begin:.2f} s from send to "
          f"suppression (send {sent - begin:.2f} s, delivery and DSNs {back - sent:.2f} s, "
          f"fetch over IMAP {done - back:.2f} s)")
