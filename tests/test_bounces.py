"""Bounce parsing on real-looking fixtures, in a folder, a Maildir and an mbox."""

from __future__ import annotations

import mailbox
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.bounces.processing import MemoryHandler, classify, kind_of, process
from mailer.cli.bounces import bounces

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


def summary(results) -> dict[str, tuple[str, str, str, str | None]]:
    return {f.source: (f.address, f.kind, f.status, f.message_id)
            for r in results for f in r.findings}


def test_the_fixture_folder() -> None:
    handler = MemoryHandler()
    results = process(DATA, handler)
    assert summary(results) == EXPECTED
    ignored = {r.source: r.ignored for r in results if r.ignored}
    assert ignored == {"afwezigheidsassistent.eml": "auto-reply"}
    assert set(handler.suppressed) == {v[0] for v in EXPECTED.values() if v[1] == "hard"}
    assert "User unknown" in handler.suppressed["p.jansen@gemeente-voorbeeld.example"]


def test_a_maildir_and_an_mbox_give_the_same_findings(tmp_path: Path) -> None:
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for file in sorted(DATA.iterdir()):
        maildir.add(file.read_bytes())
        box.add(file.read_bytes())
    box.close()
    by_address = {v[0]: v[1:] for v in EXPECTED.values()}
    for path in (tmp_path / "Maildir", tmp_path / "bounces.mbox"):
        results = process(path, MemoryHandler())
        assert len(results) == 5
        assert {v[0]: v[1:] for v in summary(results).values()} == by_address


def test_soft_bounces_suppress_after_the_limit(tmp_path: Path) -> None:
    for n in range(3):
        shutil.copy(DATA / "postfix-mailbox-full.eml", tmp_path / f"{n}.eml")
    handler = MemoryHandler(soft_limit=3)
    actions = [a for r in process(tmp_path, handler) for a in r.actions]
    assert actions == ["soft bounce 1 of 3", "soft bounce 2 of 3", "suppressed"]
    assert "s.elzinga@reclassering-voorbeeld.example" in handler.suppressed


def plain(subject: str, body: str, sender: str = "postmaster@mx.example.net") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "info@ovv.nl", subject
    message.set_content(body)
    return message


@pytest.mark.parametrize(("subject", "body", "expected"), [
    ("Undeliverable: Verdieping",
     "Delivery has failed to these recipients or groups:\n\nj.smit@example.net\n", "hard"),
    ("Mail delivery failed", "a.b@example.net\n  mailbox full\n", "soft"),
    ("Mail delivery failed", "a.b@example.net: 552 5.2.2 mailbox full\n", "soft"),
    ("failure notice", "<c.d@example.net>:\nRemote host said: 550 no such user\n", "hard"),
])
def test_plain_bounce_heuristics(subject: str, body: str, expected: str) -> None:
    findings, ignored = classify(plain(subject, body), "x")
    assert [f.kind for f in findings] == [expected] and not ignored


def test_ordinary_mail_and_auto_replies_are_not_bounces() -> None:
    reply = plain("Re: Verdieping", "Dank, mijn mailbox full van nieuws!", sender="a@example.net")
    assert classify(reply, "x") == ([], "not a bounce")
    reply.replace_header("Subject", "Out of Office: Verdieping")
    assert classify(reply, "x") == ([], "auto-reply")


@pytest.mark.parametrize(("status", "kind"), [("5.1.1", "hard"), ("4.4.1", "soft"),
                                              ("5.2.2", "soft"), ("5.7.1", "hard")])
def test_kind_of(status: str, kind: str) -> None:
    assert kind_of(status) == kind


def test_the_command_reports_one_line_per_message() -> None:
    result = CliRunner().invoke(bounces, ["process", str(DATA), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 6
    assert "afwezigheidsassistent.eml: ignored (auto-reply)" in lines
    assert any(line.startswith("postfix-mailbox-full.eml: s.elzinga@") and "soft 4.2.2" in line
               for line in lines)
    assert lines[-1].startswith("5 messages: 3 hard, 1 soft, 1 ignored")
