"""A relay's bad hour: answers about the connection pause or delay a send, and fail nobody.

Each answer comes from a real SMTP server on loopback, scripted: a 421 or 554 greeting, a login
that is wrong (535) or missing (530), STARTTLS required (530) or offered with a certificate we
must not trust. Back-off and patience are scaled down from seconds and an hour to milliseconds
and seconds; the rules are the same.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Delivery
from mailer.send import runner as sending
from mailer.send.outcomes import CONNECTION_RETRY_MAX, ConnectionWatch, Verdict
from mailer.transport.transports import DeliveryError
from tests.conftest import bulk_subscribers
from tests.smtp_server import SMTPTestServer

PEOPLE = 12


def via(settings: Settings, server: SMTPTestServer, **changes: object) -> Settings:
    return replace(settings, **{"smtp_host": server.host, "smtp_port": server.port,  # type: ignore[arg-type]
                                "smtp_security": "none", "smtp_timeout": 5.0, **changes})


def attempts(settings: Settings, send_id: int) -> set[int]:
    with session_scope(settings) as session:
        return set(session.exec(select(Delivery.attempts).where(Delivery.send_id == send_id)))


def test_a_relay_answering_421_for_a_while_delays_the_send_then_delivers_all(
        send_settings: Settings) -> None:
    bulk_subscribers(send_settings, PEOPLE)
    busy = "421 4.3.2 Too many connections, try again later"
    with SMTPTestServer(greetings=[busy] * 9) as server:
        settings = via(send_settings, server, send_connection_patience=30.0)
        summary = sending.run_send(settings, sending.create_send(settings, "stalking"))
        received = server.wait_for(PEOPLE)
        assert server.refused_greetings == 9
    assert summary.status == "done" and summary.counts == {"sent": PEOPLE}  # 0 failed, 0 lost
    assert len({r.recipients[0] for r in received}) == PEOPLE
    assert attempts(settings, summary.send_id) == {1}  # the 421s were nobody's attempt


def test_a_relay_that_stays_down_past_the_patience_pauses_the_send_with_the_reason(
        send_settings: Settings) -> None:
    bulk_subscribers(send_settings, PEOPLE)
    with SMTPTestServer() as server:
        server.greeting = "421 4.3.2 Service not available"
        settings = via(send_settings, server, send_connection_patience=0.3)
        send_id = sending.create_send(settings, "stalking")
        summary = sending.run_send(settings, send_id)
        assert summary.status == "paused" and summary.counts == {"pending": PEOPLE}
        assert "no working connection to the mail server" in summary.pause_reason
        assert "421 4.3.2 Service not available" in summary.pause_reason
        server.greeting = ""
        summary = sending.run_send(settings, send_id)
        assert summary.status == "done" and summary.counts == {"sent": PEOPLE}
        assert len(server.wait_for(PEOPLE)) == PEOPLE
    assert attempts(settings, send_id) == {1}


REFUSALS = {
    "554 greeting": ({"greetings": ["554 5.7.1 You are not welcome here"] * 99}, {}, "554 5.7.1"),
    "535 wrong password": ({"login": ("mailer", "right")},
                           {"smtp_user": "mailer", "smtp_password": "wrong"}, "535"),
    "530 login required": ({"login": ("mailer", "right")}, {}, "530 5.7.0 Authentication"),
    "530 STARTTLS required": ({"starttls": True}, {}, "530 Must issue a STARTTLS command first"),
    "untrusted certificate": ({"starttls": True}, {"smtp_security": "starttls"},
                              "CERTIFICATE_VERIFY_FAILED"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_an_answer_that_needs_a_person_pauses_the_send_and_fails_nobody(
        send_settings: Settings, case: str) -> None:
    server_options, client_options, answer = REFUSALS[case]
    bulk_subscribers(send_settings, PEOPLE)
    with SMTPTestServer(**server_options) as server:  # type: ignore[arg-type]
        settings = via(send_settings, server, **client_options)
        send_id = sending.create_send(settings, "stalking")
        summary = sending.run_send(settings, send_id)
        assert not server.messages
    assert summary.status == "paused" and summary.counts == {"pending": PEOPLE}
    assert "refused the session" in summary.pause_reason and answer in summary.pause_reason
    assert attempts(settings, send_id) == {0}

    with SMTPTestServer() as fixed:  # the settings or the relay were put right: resume
        summary = sending.run_send(via(send_settings, fixed), send_id)
        assert summary.status == "done" and summary.counts == {"sent": PEOPLE}
        assert len(fixed.wait_for(PEOPLE)) == PEOPLE


def test_with_the_default_settings_a_15_minute_outage_waits_and_a_longer_one_pauses() -> None:
    """The real numbers, on a clock that only moves when the send waits."""
    settings = Settings()
    now = [0.0]
    watch = ConnectionWatch(settings.send_connection_retry_seconds,
                            settings.send_connection_patience, clock=lambda: now[0])
    busy = DeliveryError("421 4.3.2 try again later", permanent=False, code=421, connection=True)
    waits = []
    while now[0] < 15 * 60:
        wait, reason = watch.after_batch([Verdict.CONNECTION], [busy])
        assert reason == ""
        waits.append(wait)
        now[0] += wait
    assert waits[:5] == [0.0, 15.0, 30.0, 60.0, 120.0] and max(waits) == CONNECTION_RETRY_MAX
    assert watch.after_batch([Verdict.SENT] * 50, []) == (0.0, "")  # the relay is back

    outage_began, reason = now[0], ""
    while not reason:
        wait, reason = watch.after_batch([Verdict.CONNECTION], [busy])
        now[0] += wait
    assert now[0] - outage_began >= settings.send_connection_patience
    assert reason.startswith("no working connection to the mail server for ")
