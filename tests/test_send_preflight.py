"""Preflight: a send that cannot work stops with one clear line before any Send row exists;
and a send that paused itself ends `mailer send` with exit code 3."""

from __future__ import annotations

import re

import pytest
from sqlmodel import func, select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.message.dkimkeys import generate_key
from mailer.models import Send
from tests.conftest import add_subscriber
from tests.smtp_server import SMTPTestServer


@pytest.fixture
def run(invoke, send_settings: Settings):  # type: ignore[no-untyped-def]
    with session_scope(send_settings, write=True) as session:
        add_subscriber(session, "jan@example.org", "limburg", "netwerk", ("verdiepingen",), "Jan")
    return invoke


def sends(settings: Settings) -> int:
    with session_scope(settings) as session:
        return session.exec(select(func.count()).select_from(Send)).one()


DKIM = {"dkim_selector": "mail2026", "dkim_domain": "veiligheidvoorop.nl"}
# past the readiness checks, which the example content does not pass
FORCE = ("--offline", "--force", "--reason", "example text accepted for this test", "--by", "tester")


def test_a_bad_dkim_key_stops_send_dry_run_and_test_before_anything_is_written(
        run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    key = send_settings.root / "dkim.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    for args in (["send", "stalking"], ["send", "stalking", "--dry-run"],
                 ["send", "stalking", "--test", "me@example.org"]):
        result = run(*args, dkim_key_file=str(key), **DKIM)
        assert result.exit_code == 1
        assert re.fullmatch(r"error: dkim_key_file \S+dkim\.pem: cannot sign with it: .+\n",
                            result.output), result.output
    assert sends(send_settings) == 0
    assert not (send_settings.root / "out" / "outbox").exists()

    missing = run("send", "stalking", dkim_key_file="nowhere.pem", **DKIM)
    assert missing.exit_code == 1 and "nowhere.pem: cannot read it" in missing.output
    half = run("send", "stalking", dkim_key_file="", dkim_domain="", dkim_selector="mail2026")
    assert half.exit_code == 1
    assert "DKIM needs dkim_selector, dkim_domain, dkim_key_file together" in half.output
    generate_key(key, force=True)
    assert run("send", "stalking", *FORCE, dkim_key_file=str(key), **DKIM).exit_code == 0
    assert sends(send_settings) == 1


def test_a_line_break_in_the_subject_stops_build_and_send(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    config = send_settings.content / "stalking" / "mailing.yaml"
    text = config.read_text(encoding="utf-8")
    line = 1 + text[:text.index("\nsubject:")].count("\n") + 1
    broken = 'subject: "Verdieping\\nBcc: iedereen@example.org"'  # YAML's \n: a line break
    config.write_text(re.sub(r"(?m)^subject: .*$", lambda _: broken, text), encoding="utf-8")
    for args in (["build", "stalking"], ["send", "stalking"], ["send", "stalking", "--dry-run"]):
        result = run(*args)
        assert result.exit_code == 1
        assert (f"content/stalking/mailing.yaml:{line}: field 'subject' must be one line"
                in result.output), result.output
    assert sends(send_settings) == 0


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("sender_name", "Netwerk\r\nBcc: iedereen@example.org",
     "sender_name contains a line break or control character"),
    ("smtp_security", "ssl", "MAILER_SMTP_SECURITY: must be one of starttls, tls, none"),
    ("smtp_port", "0", "MAILER_SMTP_PORT: must be between 1 and 65535"),
    ("smtp_host", "smtp example.org", "MAILER_SMTP_HOST: must be a host name or address"),
    ("smtp_password", "geheim", "MAILER_SMTP_PASSWORD: is set without smtp_user"),
])
def test_unusable_settings_stop_the_send_in_one_line(run, send_settings: Settings, setting: str,
                                                     value: str, message: str) -> None:  # type: ignore[no-untyped-def]
    result = run("send", "stalking", **{"smtp_host": "127.0.0.1", setting: value})
    assert result.exit_code == 1 and message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert sends(send_settings) == 0


def test_a_negative_rate_is_refused_before_anything_is_sent(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    result = run("send", "stalking", "--rate", "-1")
    assert result.exit_code == 2 and "Invalid value for '--rate'" in result.output
    assert sends(send_settings) == 0


def test_a_send_that_paused_itself_exits_with_3(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    with SMTPTestServer(login=("mailer", "right")) as server:
        result = run("send", "stalking", *FORCE, smtp_host=server.host, smtp_port=str(server.port),
                     smtp_security="none", smtp_user="mailer", smtp_password="wrong")
        assert result.exit_code == 3, result.output
        assert "Paused: the mail server refused the session: 535" in result.output
        assert "1 pending" in result.output
        resumed = run("sends", "resume", "1", smtp_password="right")
        assert resumed.exit_code == 0 and "Send 1: done; 1 recipients (1 sent)" in resumed.output
        assert "local outbox" not in resumed.output  # it went to the SMTP server
        assert len(server.wait_for(1)) == 1
