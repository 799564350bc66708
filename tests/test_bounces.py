"""Bounce parsing on real-looking fixtures, in a folder, a Maildir and an mbox."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.bounces.classify import classify
from mailer.bounces.processing import findings_in, parse_message, read_messages

DATA = Path(__file__).parent / "data" / "bounces"

EXPECTED = {
    "postfix-user-unknown.eml": ("p.jansen@gemeente-voorbeeld.example", "hard", "5.1.1",
                                 "<send-12.rcpt-345@veiligheidvoorop.nl>"),
    "exchange-recipient-not-found.eml": ("m.devries@zorginstelling.example", "hard", "5.1.10",
                                         "<send-12.rcpt-346@veiligheidvoorop.nl>"),
    "qmail-plain-text.eml": ("k.bakker@wijkteam-voorbeeld.example", "hard", "5.1.1",
                             "<send-12.rcpt-347@veiligheidvoorop.nl>"),
    "postfix-mailbox-full.eml": ("s.elzinga@reclassering-voorbeeld.example", "soft", "4.2.2",
                                 "<send-12.rcpt-348@veiligheidvoorop.nl>"),
}


def summary(path: Path) -> dict[str, tuple[str, str, str, str | None]]:
    found = {}
    for source, message in read_messages(path):
        findings, _ = findings_in(message, source)
        found.update({f.source: (f.address, f.kind, f.status, f.message_id) for f in findings})
    return found


def test_the_fixture_folder() -> None:
    assert summary(DATA) == EXPECTED
    ignored = {source: findings_in(message, source)[1] for source, message in read_messages(DATA)}
    assert ignored["afwezigheidsassistent.eml"] == "auto-reply"
    [finding], _ = findings_in(next(m for s, m in read_messages(DATA)
                                    if s == "postfix-user-unknown.eml"), "x")
    assert "User unknown" in finding.reason


def test_a_maildir_and_an_mbox_give_the_same_findings(tmp_path: Path) -> None:
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for file in sorted(DATA.iterdir()):
        maildir.add(file.read_bytes())
        box.add(file.read_bytes())
    box.close()
    by_address = {v[0]: v[1:] for v in EXPECTED.values()}
    for path in (tmp_path / "Maildir", tmp_path / "bounces.mbox"):
        assert len(list(read_messages(path))) == 5
        assert {v[0]: v[1:] for v in summary(path).values()} == by_address


def plain(subject: str, body: str, sender: str = "postmaster@mx.example.net") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "bounces@veiligheidvoorop.nl", subject
    message.set_content(body)
    return message


@pytest.mark.parametrize(("subject", "body", "expected"), [
    ("Mail delivery failed", "This message was created automatically by mail delivery software."
     "\n\nA message that you sent could not be delivered to one or more of its\nrecipients. "
     "This is a permanent error. The following address(es) failed:\n\n  a.b@example.net\n"
     "    mailbox full\n", "soft"),
    ("Mail delivery failed", "This message was created automatically by mail delivery software."
     "\n\n  a.b@example.net\n    SMTP error from remote mail server after RCPT TO:<a.b@example.net>:"
     "\n    552 5.2.2 mailbox full\n", "soft"),
    ("failure notice", "Hi. This is the qmail-send program at mx.example.net.\n"
     "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
     "<c.d@example.net>:\nRemote host said: 550 no such user\n", "hard"),
    ("failure notice", "Hi. This is the qmail-send program at mx.example.net.\n"
     "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
     "<c.d@example.net>:\nRemote host said: 554 5.7.1 Message rejected as spam\n", "blocked"),
])
def test_plain_bounces(subject: str, body: str, expected: str) -> None:
    findings, ignored = findings_in(plain(subject, body), "x")
    assert [f.kind for f in findings] == [expected] and not ignored


def test_ordinary_mail_and_auto_replies_are_not_bounces() -> None:
    reply = plain("Re: Verdieping", "Dank, mijn mailbox full van nieuws!", sender="a@example.net")
    assert findings_in(reply, "x") == ([], "not a bounce")
    reply.replace_header("Subject", "Out of Office: Verdieping")
    assert findings_in(reply, "x") == ([], "auto-reply")


@pytest.mark.parametrize(("answer", "kind", "enhanced"), [
    ("550 5.1.1 <a@b.nl>: Recipient address rejected: User unknown", "hard", "5.1.1"),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound", "hard", "5.1.10"),
    ("550 5.7.13 User account disabled", "hard", "5.7.13"),
    ("550 5.7.1 Service unavailable; client host blocked using Spamhaus", "blocked", "5.7.1"),
    ("550 5.7.26 Unauthenticated email is not accepted (DMARC)", "blocked", "5.7.26"),
    ("553 5.1.8 Sender address rejected: Domain not found", "blocked", "5.1.8"),
    ("552 5.2.2 Mailbox full", "soft", "5.2.2"),
    ("452 4.2.2 Over quota", "soft", "4.2.2"),
    ("552 5.3.4 Message too big", "soft", "5.3.4"),
    ("451 4.7.1 Greylisted, try again", "soft", "4.7.1"),
    ("550 5.0.0 No such user here", "hard", "5.0.0"),
    ("554 Message rejected: blocked by policy", "blocked", ""),
    ("550 Something odd happened", "soft", ""),
])
def test_rfc_3463_classes(answer: str, kind: str, enhanced: str) -> None:
    verdict = classify(answer)
    assert (verdict.kind, verdict.enhanced, verdict.answer) == (kind, enhanced, answer)


def test_a_dsn_status_field_wins_over_its_text() -> None:
    assert classify("smtp; 550 user unknown", "5.7.1").kind == "blocked"


def test_a_bounce_in_a_charset_python_does_not_know_is_still_read() -> None:
    qmail = (DATA / "qmail-plain-text.eml").read_bytes()
    unknown = qmail.replace(b"Message-ID: <1795854664", b"MIME-Version: 1.0\nContent-Type: "
                            b"text/plain; charset=x-mac-unknown\nMessage-ID: <1795854664", 1)
    [finding], _ = findings_in(parse_message(unknown), "x")
    assert (finding.address, finding.kind, finding.status, finding.message_id) == \
        EXPECTED["qmail-plain-text.eml"]
