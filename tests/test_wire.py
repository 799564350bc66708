"""What a real SMTP server receives: CRLF-canonical, dot-stuffed, signed messages; RCPT answers
classed (RFC 3463); transport security that is never silently off."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import dkim
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from mailer.config import ConfigError, Settings, load_settings
from mailer.content.segments import all_segments
from mailer.db import get_engine, session_scope
from mailer.message.dkimkeys import generate_key
from mailer.message.identity import install_id
from mailer.models import Delivery
from mailer.send import runner as sending
from mailer.send.report import send_report
from mailer.transport.transports import (
    InsecureServer,
    MemoryTransport,
    OutgoingMessage,
    SMTPTransport,
)
from mailer.web.app import create_app
from tests.conftest import add_subscriber, bulk_subscribers
from tests.smtp_server import SMTPTestServer
from tests.test_web import FORM, post_form

VERIFY_PL = Path(__file__).parent / "tools" / "dkim_verify.pl"


def via(settings: Settings, server: SMTPTestServer, security: str = "none") -> Settings:
    return replace(settings, smtp_host=server.host, smtp_port=server.port,
                   smtp_security=security, smtp_timeout=5.0)


def send_to(settings: Settings, server: SMTPTestServer, people: int
            ) -> tuple[Settings, int, sending.SendSummary]:
    """A send of the stalking mailing to `people` subscribers r0…, through `server`."""
    settings = via(settings, server)
    bulk_subscribers(settings, people)
    send_id = sending.create_send(settings, "stalking")
    return settings, send_id, sending.run_send(settings, send_id)


def signing(settings: Settings) -> tuple[Settings, bytes]:
    """`settings` with a new DKIM key, and the DNS record that verifies its signatures."""
    key_file = settings.root / "dkim.pem"
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(generate_key(key_file))
    return replace(settings, dkim_selector="nieuws2026", dkim_domain="veiligheidvoorop.nl",
                   dkim_key_file=str(key_file)), record


def wire_problems(data: bytes) -> list[str]:
    """Everything about raw DATA that receivers since the SMTP-smuggling fixes reject."""
    problems = []
    if b"\n" in data.replace(b"\r\n", b""):
        problems.append("bare LF")
    if b"\r" in data.replace(b"\r\n", b""):
        problems.append("bare CR")
    if not data.endswith(b"\r\n"):
        problems.append("no final CRLF")
    lines = data.split(b"\r\n")
    if max(map(len, lines)) > 998:
        problems.append("line over 998 octets")
    body = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    if max(map(len, body)) > 76:
        problems.append("quoted-printable line over 76 characters")
    return problems


def mail_dkim(data: bytes, record: bytes) -> str:
    """Mail::DKIM's verdict (Perl, independent of dkimpy; SpamAssassin's verifier)."""
    if not shutil.which("perl") or subprocess.run(
            ["perl", "-MMail::DKIM::Verifier", "-e", "1"], capture_output=True).returncode:
        pytest.skip("Mail::DKIM (Debian libmail-dkim-perl) is not installed")
    result = subprocess.run(["perl", str(VERIFY_PL), record.decode()], input=data,
                            capture_output=True, timeout=30)
    return result.stdout.decode().strip() or result.stderr.decode()


def test_every_variant_arrives_wire_correct_and_signed_verifiably(
        send_settings: Settings, smtp_server: SMTPTestServer) -> None:
    settings, record = signing(via(send_settings, smtp_server))
    segments = list(all_segments())
    bulk_subscribers(settings, len(segments), segments=segments)
    send_id = sending.create_send(settings, "stalking")
    assert sending.run_send(settings, send_id).counts == {"sent": len(segments)}
    with session_scope(settings) as session:
        variants = set(session.exec(select(Delivery.variant).where(Delivery.send_id == send_id)))
    assert len(variants) == 4  # every distinct variant of the stalking mailing went out

    received = smtp_server.wait_for(len(segments))
    for item in received:
        assert wire_problems(item.data) == [], item.recipients
        assert dkim.verify(item.data, dnsfunc=lambda name, timeout=5: record)
        assert item.sender.startswith("bounces+") and item.sender.endswith("@veiligheidvoorop.nl")
    assert mail_dkim(received[0].data, record) == "pass"
    altered = received[0].data.replace(b"Beste ", b"Geachte ", 1)
    assert mail_dkim(altered, record).startswith("fail")


def test_a_confirmation_mail_goes_out_like_a_mailing_signed_and_from_the_bounce_address(
        settings: Settings, smtp_server: SMTPTestServer) -> None:
    settings, record = signing(via(settings, smtp_server))
    with TestClient(create_app(settings), follow_redirects=False) as client:
        assert "Kijk in je mail" in post_form(client, "/aanmelden", FORM).text
    [item] = smtp_server.wait_for(1)
    assert (item.sender, item.recipients) == ("bounces@veiligheidvoorop.nl", ("anouk@example.org",))
    assert b"\r\nFrom: Landelijk Netwerk Zorg-Straf <nieuws@veiligheidvoorop.nl>\r\n" in item.data
    assert wire_problems(item.data) == []
    assert dkim.verify(item.data, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(item.data.replace(b"Anouk", b"Anne", 1),
                           dnsfunc=lambda name, timeout=5: record)


def test_lines_starting_with_a_dot_are_stuffed(smtp_server: SMTPTestServer) -> None:
    data = (b"From: a@veiligheidvoorop.nl\r\nTo: b@example.org\r\nSubject: punt\r\n\r\n"
            b".\r\n..\r\n.begint met een punt\r\nmidden . punt\r\n.\r\n")
    transport = SMTPTransport(smtp_server.host, smtp_server.port, "none", timeout=5)
    try:
        transport.send(OutgoingMessage("a@veiligheidvoorop.nl", "b@example.org", data, "<x@y>"))
        transport.send(OutgoingMessage("a@veiligheidvoorop.nl", "b@example.org", b"." + data, "<x@y>"))
    finally:
        transport.close()
    assert [r.data for r in smtp_server.wait_for(2)] == [data, b"." + data]


@pytest.mark.parametrize("smtp_server", [{"reject": ["r1@example.org", "r2@example.org"],
                                          "block": ["r3@example.org"]}], indirect=True)
def test_rcpt_answers_follow_rfc_3463(send_settings: Settings,
                                      smtp_server: SMTPTestServer) -> None:
    settings, send_id, summary = send_to(send_settings, smtp_server, 8)
    assert summary.status == "done" and summary.counts == {"sent": 5, "failed": 3}
    with session_scope(settings) as session:
        rows = {d.subscriber_id: d for d in session.exec(select(Delivery))}
    classes = sorted((d.answer_class, d.enhanced_code) for d in rows.values() if d.error)
    assert classes == [("blocked", "5.7.1"), ("hard", "5.1.1"), ("hard", "5.1.1")]
    # the unknown addresses are suppressed at once; the blocked one is not
    who = [address for address, _, _ in sending.dry_run(settings, "stalking")]
    assert "r1@example.org" not in who and "r2@example.org" not in who
    assert "r3@example.org" in who and len(who) == 6
    report = send_report(settings, send_id)
    assert report.classes == {"blocked": 1, "hard": 2}
    assert "Deliverability alarm: 1 recipient(s) blocked" in report.alarm


@pytest.mark.parametrize("smtp_server", [{"block": [f"r{n}@example.org" for n in range(0, 30, 2)]}],
                         indirect=True)
def test_blocks_over_the_threshold_pause_the_send(send_settings: Settings,
                                                  smtp_server: SMTPTestServer) -> None:
    _, _, summary = send_to(send_settings, smtp_server, 30)
    assert summary.status == "paused"
    assert summary.pause_reason.startswith("deliverability alarm: 10 of the first 19 answers")
    assert summary.counts["pending"] == 10  # the rest waits for the operator


def test_starttls_in_capitals_without_server_support_sends_nothing(
        send_settings: Settings, smtp_server: SMTPTestServer, tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, environ={"MAILER_SMTP_SECURITY": "STARTTLS"})
    assert loaded.smtp_security == "starttls"
    settings = via(send_settings, smtp_server, loaded.smtp_security)
    with session_scope(settings, write=True) as session:
        add_subscriber(session, "a@example.org", topics=("verdiepingen",))
    send_id = sending.create_send(settings, "stalking")
    summary = sending.run_send(settings, send_id)  # a refused session pauses, like a 530
    assert smtp_server.messages == []
    assert summary.status == "paused" and summary.counts == {"pending": 1}
    assert summary.pause_reason.startswith("the mail server refused the session: ")
    assert "does not offer STARTTLS" in summary.pause_reason
    with pytest.raises(InsecureServer, match="does not offer STARTTLS"):
        SMTPTransport(smtp_server.host, smtp_server.port, settings.smtp_security).send(
            OutgoingMessage("news@example.org", "a@example.org", b"Subject: x\r\n\r\nx\r\n", "<x@y>"))


@pytest.mark.parametrize("value", ["startls", "ssl", "yes", ""])
def test_an_unknown_security_mode_is_an_error_before_any_connection(
        tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="MAILER_SMTP_SECURITY: must be one of starttls, tls, none"):
        load_settings(tmp_path, environ={"MAILER_SMTP_SECURITY": value})
    with pytest.raises(ConfigError, match="smtp security must be one of"):
        SMTPTransport("192.0.2.1", 25, value)  # never connects: the address is not reachable


def test_two_databases_sending_the_same_mailing_share_no_message_id(project: Settings) -> None:
    ids: list[set[str]] = []
    for name in ("a", "b"):
        settings = replace(project, database_url=f"sqlite:///{project.root}/{name}.db",
                           public_base_url="https://testserver")
        bulk_subscribers(settings, 3)
        transport = MemoryTransport()
        sending.run_send(settings, sending.create_send(settings, "stalking"), transport=transport)
        ids.append({m.message_id for m in transport.sent})
        install = install_id(get_engine(settings))
        pattern = rf"<1\.[0-9a-f]{{32}}\.{install}@veiligheidvoorop\.nl>"
        assert all(re.fullmatch(pattern, i) for i in ids[-1])
    assert len(ids[0]) == len(ids[1]) == 3 and not ids[0] & ids[1]
