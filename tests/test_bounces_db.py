"""Bounces recorded in the database: suppression, the bounced delivery, soft counts, re-runs."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from click.testing import CliRunner
from sqlmodel import select

from mailer.bounces.processing import process
from mailer.cli.main import main
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Bounce, Delivery, Subscriber
from mailer.send import runner as sending
from mailer.subscribers.subscriptions import active_topics, is_suppressed
from mailer.transport.transports import MemoryTransport, OutgoingMessage
from tests.conftest import add_subscriber


def dsn(address: str, status: str, original_id: str, to: str = "bounces@veiligheidvoorop.nl",
        answer: str = "the server said no") -> bytes:
    """A delivery status notification (RFC 3464) as an MTA writes it."""
    return f"""From: MAILER-DAEMON@mx.example.net
To: {to}
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
Diagnostic-Code: smtp; {answer}

--b1
Content-Type: text/rfc822-headers

Message-ID: {original_id}
Subject: Thematische verdieping

--b1--
""".replace("\n", "\r\n").encode()


PEOPLE = ("weg@example.org", "vol@example.org", "blok@example.org")


@dataclass
class Sent:
    """Two finished sends to three people, and what each message was sent with."""

    sends: tuple[int, int]
    ids: dict[str, int]  # address → subscriber id
    messages: dict[tuple[int, str], OutgoingMessage]  # (send, address) → message


@pytest.fixture
def sent(send_settings: Settings) -> Sent:
    return send_twice(send_settings)


def send_twice(send_settings: Settings) -> Sent:
    with session_scope(send_settings, write=True) as session:
        ids = {a: add_subscriber(session, a, topics=("verdiepingen",)) for a in PEOPLE}
    messages = {}
    sends = []
    for _ in range(2):
        transport = MemoryTransport()
        send_id = sending.create_send(send_settings, "stalking")
        sending.run_send(send_settings, send_id, transport=transport)
        messages.update({(send_id, m.recipient): m for m in transport.sent})
        sends.append(send_id)
    return Sent((sends[0], sends[1]), ids, messages)


def write(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)


def bounce_of(sent: Sent, send_id: int, address: str, status: str, **kw: str) -> bytes:
    """A DSN of the message we sent, to the VERP address it was sent from."""
    message = sent.messages[send_id, address]
    return dsn(address, status, message.message_id, to=message.sender, **kw)


def actions(results) -> list[str]:  # type: ignore[no-untyped-def]
    return [a for r in results for a in r.actions]


def test_bounces_of_our_messages_apply_their_class_and_reruns_change_nothing(
        send_settings: Settings, sent: Sent, tmp_path: Path) -> None:
    first, second = sent.sends
    box = tmp_path / "bounces"
    write(box, "1.eml", bounce_of(sent, first, "weg@example.org", "5.1.1", answer="550 5.1.1 no"))
    write(box, "2.eml", bounce_of(sent, first, "vol@example.org", "4.2.2"))
    write(box, "3.eml", bounce_of(sent, second, "vol@example.org", "4.2.2"))
    write(box, "4.eml", bounce_of(sent, first, "blok@example.org", "5.7.1",
                                  answer="550 5.7.1 blocked by Spamhaus"))
    done = actions(process(send_settings, box))
    assert [a.split(";")[0] for a in done] == [
        "suppressed", "soft bounce 1 of 3", "soft bounce 2 of 3",
        "blocked: nobody suppressed (a problem of our server or reputation)"]
    assert actions(process(send_settings, box)) == ["already recorded"] * 4
    with session_scope(send_settings) as session:
        assert is_suppressed(session, "weg@example.org")
        assert not is_suppressed(session, "vol@example.org")
        assert not is_suppressed(session, "blok@example.org")
        rows = {(d.send_id, d.subscriber_id): d for d in session.exec(select(Delivery))}
        bounces = {(b.kind, b.status, b.answer) for b in session.exec(select(Bounce))}
    hard = rows[first, sent.ids["weg@example.org"]]
    assert (hard.status, hard.answer_class, hard.enhanced_code) == ("bounced", "hard", "5.1.1")
    assert rows[first, sent.ids["blok@example.org"]].answer_class == "blocked"
    assert bounces == {("hard", "5.1.1", "550 5.1.1 no"), ("soft", "4.2.2", "the server said no"),
                       ("blocked", "5.7.1", "550 5.7.1 blocked by Spamhaus")}


def test_forged_and_foreign_bounces_change_nothing(
        send_settings: Settings, sent: Sent, tmp_path: Path) -> None:
    first, _ = sent.sends
    ours = sent.messages[first, "weg@example.org"]
    box = tmp_path / "bounces"
    # an address we never mailed, with a made-up Message-ID
    write(box, "1.eml", dsn("nooit@example.org", "5.1.1", f"<{first}.{'9' * 32}.0123456789abcdef@x.nl>"))
    # someone else's address, with a real Message-ID of ours
    write(box, "2.eml", dsn("vol@example.org", "5.1.1", ours.message_id))
    # a VERP address with a wrong signature
    forged_to = ours.sender.replace(ours.sender.split("-")[-1][:4], "aaaa")
    write(box, "3.eml", dsn("weg@example.org", "5.1.1", "<x@y.nl>", to=forged_to))
    # a Message-ID of another installation
    other = ours.message_id.replace(ours.message_id.split(".")[2].split("@")[0], "f" * 16)
    write(box, "4.eml", dsn("weg@example.org", "5.1.1", other))
    done = actions(process(send_settings, box))
    assert len(done) == 4 and all(a.startswith("unmatched") for a in done)
    with session_scope(send_settings) as session:
        assert not any(is_suppressed(session, a) for a in (*PEOPLE, "nooit@example.org"))
        assert session.exec(select(Bounce)).all() == []


def test_a_message_id_alone_matches_when_the_address_is_the_one_we_sent_to(
        send_settings: Settings, sent: Sent, tmp_path: Path) -> None:
    first, _ = sent.sends
    box = tmp_path / "bounces"
    write(box, "1.eml", dsn("weg@example.org", "5.1.1",
                            sent.messages[first, "weg@example.org"].message_id))
    assert actions(process(send_settings, box))[0].startswith("suppressed")


def test_a_mail_to_the_unsubscribe_address_unsubscribes_exactly_that_person(
        send_settings: Settings, sent: Sent, tmp_path: Path) -> None:
    first, _ = sent.sends
    header = str(sent.messages[first, "vol@example.org"].email()["List-Unsubscribe"])
    mailto = urlsplit(header.split(",")[1].strip(" <>"))
    subject = unquote(parse_qs(mailto.query)["subject"][0])
    box = tmp_path / "inbox"
    forged = subject.replace("verdiepingen ", "verdiepingen x")
    for name, sender, subject_line in [("1.eml", "vol@example.org", subject),
                                       ("2.eml", "evil@example.net", forged),
                                       ("3.eml", "evil@example.net", "unsubscribe")]:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, mailto.path, subject_line
        message.set_content("")
        write(box, name, bytes(message))
    done = actions(process(send_settings, box, dry_run=True))
    with session_scope(send_settings) as session:
        public_id = session.get(Subscriber, sent.ids["vol@example.org"]).public_id
    assert done[0] == f"subscriber {public_id} unsubscribed from verdiepingen"
    with session_scope(send_settings) as session:  # a dry run keeps nothing
        assert "verdiepingen" in active_topics(session, sent.ids["vol@example.org"])
    done = actions(process(send_settings, box))
    assert done[1:] == ["unsubscribe mail with an unknown or forged token: nothing changed",
                        "unsubscribe mail without a valid topic and token: nothing changed"]
    with session_scope(send_settings) as session:
        topics = {a: active_topics(session, i) for a, i in sent.ids.items()}
    assert topics == {"weg@example.org": ["verdiepingen"], "vol@example.org": [],
                      "blok@example.org": ["verdiepingen"]}


def test_the_command_records_and_suppresses_after_the_soft_limit(
        send_settings: Settings, sent: Sent, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = sent.sends
    for key, value in {"MAILER_ROOT": str(send_settings.root),
                       "MAILER_DATABASE_URL": send_settings.database_url,
                       "MAILER_BOUNCE_SOFT_LIMIT": "2"}.items():
        monkeypatch.setenv(key, value)
    box = tmp_path / "bounces"
    write(box, "a.eml", bounce_of(sent, first, "vol@example.org", "4.2.2"))
    write(box, "b.eml", bounce_of(sent, second, "vol@example.org", "4.2.2"))
    write(box, "c.eml", dsn("nooit@example.org", "5.1.1", "<x@y.nl>"))
    result = CliRunner().invoke(main, ["bounces", "process", str(box), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "3 messages: 1 hard, 2 soft, 0 blocked (1 unmatched), 0 unsubscribe mails, 0 ignored "
        "(dry run: nothing recorded)")
    result = CliRunner().invoke(main, ["bounces", "process", str(box)])
    assert "a.eml: vol@example.org soft 4.2.2" in result.output
    assert "-> suppressed after 2 soft bounces" in result.output
    with session_scope(send_settings) as session:
        assert is_suppressed(session, "vol@example.org")
    again = CliRunner().invoke(main, ["bounces", "process", str(box)])
    assert again.output.count("-> already recorded") == 2
