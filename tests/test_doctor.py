"""`mailer doctor` and the alignment check that guards real sends."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailer.check.doctor import alignment_problem, checks, dns_records, organisational_domain, published
from mailer.cli.main import main
from mailer.config import Settings, load_settings
from mailer.db import session_scope
from mailer.message.dkimkeys import generate_key
from tests.conftest import REPO, add_subscriber
from tests.smtp_server import SMTPTestServer

EXAMPLE = REPO / "docs" / "mailer.example.toml"


@pytest.fixture
def shipped(project: Settings) -> Path:
    """The project with the shipped example configuration and its DKIM key made."""
    shutil.copy(EXAMPLE, project.root / "mailer.toml")
    result = CliRunner().invoke(main, ["dkim", "keygen"])
    assert result.exit_code == 0, result.output
    return project.root


def test_the_shipped_configuration_is_aligned_and_prints_what_to_publish(shipped: Path) -> None:
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "ERROR" not in result.output
    assert "ok      From and DKIM: From veiligheidvoorop.nl aligns with d=veiligheidvoorop.nl" \
        in result.output
    assert 'DKIM  nieuws2026._domainkey.veiligheidvoorop.nl.  IN TXT  "v=DKIM1; k=rsa; p=MII' \
        in result.output
    assert 'SPF   veiligheidvoorop.nl.  IN TXT  "v=spf1 a:smtp.veiligheidvoorop.nl -all"' \
        in result.output
    assert "DMARC _dmarc.veiligheidvoorop.nl.  IN TXT  \"v=DMARC1; p=reject" in result.output


def test_a_misaligned_configuration_is_named_and_a_real_send_refuses(
        shipped: Path, monkeypatch: pytest.MonkeyPatch, smtp_server: SMTPTestServer) -> None:
    monkeypatch.setenv("MAILER_SENDER_EMAIL", "info@ovv.nl")
    monkeypatch.setenv("MAILER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("MAILER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("MAILER_SMTP_SECURITY", "none")
    result = CliRunner().invoke(main, ["doctor", "--no-dns"])
    assert result.exit_code == 1
    assert ("ERROR   From and DKIM: From is on ovv.nl but DKIM signs as d=veiligheidvoorop.nl"
            in result.output)
    with session_scope(load_settings(), write=True) as session:
        add_subscriber(session, "a@example.org", topics=("verdiepingen",))
    refused = CliRunner().invoke(main, ["send", "stalking", "--offline"])
    assert refused.exit_code == 1
    assert "alignment: From is on ovv.nl" in refused.output  # a readiness check
    assert smtp_server.messages == []
    assert "Send 1 of stalking created" not in refused.output
    forced = CliRunner().invoke(main, ["send", "stalking", "--offline", "--force",
                                       "--reason", "alignment being fixed in DNS"])
    assert forced.exit_code == 0, forced.output
    assert "smtp security is none" not in forced.output  # loopback: no warning
    assert len(smtp_server.wait_for(1)) == 1


def test_a_project_without_a_dkim_key_is_told_how_to_make_one(project: Settings) -> None:
    result = CliRunner().invoke(main, ["doctor", "--no-dns"])
    assert result.exit_code == 1
    assert "ERROR   From and DKIM: no DKIM key is configured" in result.output
    assert "Make a key with `mailer dkim keygen`" in result.output


@pytest.mark.parametrize(("settings", "problem"), [
    ({}, "no DKIM key is configured"),
    ({"dkim_domain": "mail.veiligheidvoorop.nl"}, ""),  # relaxed: a subdomain aligns
    ({"dkim_domain": "veiligheidvoorop.nl.evil.example"}, "not the same organisational domain"),
])
def test_relaxed_alignment(settings: dict, problem: str) -> None:
    base = Settings(dkim_selector="s", dkim_domain="veiligheidvoorop.nl", dkim_key_file="k.pem")
    found = alignment_problem(replace(base, **settings) if settings else Settings())
    assert (problem in found) if problem else found == ""
    assert organisational_domain("a.b.nieuws.veiligheidvoorop.nl") == "veiligheidvoorop.nl"


def test_the_bounce_address_must_not_be_the_reply_box_and_plain_text_warns() -> None:
    settings = Settings(bounce_address="info@ovv.nl", smtp_host="smtp.example.net",
                        smtp_security="none")
    found = {c.topic: c for c in checks(settings)}
    assert found["bounce address"].level == "error"
    assert found["TLS"].level == "warning" and "unencrypted" in found["TLS"].message


def test_published_records_are_compared_with_what_they_should_say(tmp_path: Path) -> None:
    generate_key(tmp_path / "k.pem")
    settings = Settings(root=tmp_path, dkim_selector="s", dkim_domain="veiligheidvoorop.nl",
                        dkim_key_file="k.pem")
    wanted = dns_records(settings)
    zone = {name: [value] for name, value in wanted.values()}
    assert {c.level for c in published(settings, lambda name: zone.get(name, []))} == {"ok"}
    zone[wanted["DKIM"][0]] = ["v=DKIM1; k=rsa; p=MIIBother"]
    del zone[wanted["DMARC"][0]]
    found = {c.topic: c.level for c in published(settings, lambda name: zone.get(name, []))}
    assert found == {"DNS DKIM": "error", "DNS SPF": "ok", "DNS DMARC": "error"}
