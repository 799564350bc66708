"""Sends through a real SMTP server on loopback: the whole way to the inbox, and under faults."""

from __future__ import annotations

import base64
import email
import email.policy
from collections import Counter
from dataclasses import replace
from email.message import EmailMessage
from urllib.parse import urlsplit

import dkim
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.message.dkimkeys import generate_key
from mailer.message.identity import Reference, install_id, parse_bounce_address
from mailer.models import Delivery, Subscriber
from mailer.send import runner as sending
from mailer.subscribers.lists import import_list
from mailer.subscribers.subscriptions import active_topics
from mailer.subscribers.tokens import read_token
from mailer.web.app import create_app
from tests.conftest import LISTS_DIR, bulk_subscribers
from tests.smtp_server import SMTPTestServer

ROTTERDAM_BLOCK = "Nieuw werkproces Rotterdam"
MINISTER_BLOCK = "Brief van de minister"


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def via(settings: Settings, server: SMTPTestServer) -> Settings:
    return replace(settings, smtp_host=server.host, smtp_port=server.port, smtp_security="none",
                   smtp_timeout=5.0)


def test_a_send_to_two_regions_arrives_right_signed_and_unsubscribable(
        send_settings: Settings, smtp_server: SMTPTestServer) -> None:
    key_file = send_settings.root / "dkim.pem"
    public_key = generate_key(key_file)
    settings = replace(via(send_settings, smtp_server), dkim_selector="mail2026",
                       dkim_domain="veiligheidvoorop.nl", dkim_key_file=str(key_file))
    regions = ["rotterdam-zuid-holland-zuid", "limburg"]
    with session_scope(settings, write=True) as session:
        for region in [*regions, "noord-holland"]:
            import_list(session, LISTS_DIR / f"{region}.csv", topic="verdiepingen")
        people = {p.email: p for p in session.exec(select(Subscriber))
                  if p.region in regions}
    send_id = sending.create_send(settings, "stalking", regions)
    summary = sending.run_send(settings, send_id)
    assert summary.status == "done" and summary.counts == {"sent": len(people)} == {"sent": 10}

    received = smtp_server.wait_for(len(people))
    assert sorted(r.recipients[0] for r in received) == sorted(people)
    install = install_id(get_engine(settings))
    for item in received:
        message = parse(item.data)
        person = people[item.recipients[0]]
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        assert message.get_content_type() == "multipart/alternative"
        assert (ROTTERDAM_BLOCK in html) == (person.region == "rotterdam-zuid-holland-zuid")
        assert (MINISTER_BLOCK in html) == (person.audience == "beleidsmakers")
        assert f"Beste {person.name}," in text
        assert message["To"].addresses[0].addr_spec == person.email
        assert message["From"].addresses[0].addr_spec == settings.sender_email
        assert message["Subject"] == "Thematische verdieping: (Ex-)Partnerstalking"
        assert message["Message-ID"] == f"<{send_id}.{person.public_id}.{install}@veiligheidvoorop.nl>"
        assert parse_bounce_address(settings, item.sender) == Reference(send_id, person.public_id)
        assert message["List-Id"] == "Thematische verdiepingen <verdiepingen.veiligheidvoorop.nl>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Date"] and message["Reply-To"] == settings.reply_to
        https, mailto = [part.strip(" <>") for part in str(message["List-Unsubscribe"]).split(",")]
        assert https.startswith("https://testserver/afmelden/") and https in html
        token = urlsplit(https).path.rsplit("/", 1)[1]
        assert read_token(settings, token, "unsubscribe").public_id == person.public_id
        assert mailto == f"mailto:afmelden@veiligheidvoorop.nl?subject=unsubscribe%20verdiepingen%20{token}"
        assert message["DKIM-Signature"]
        assert dkim.verify(item.data, dnsfunc=lambda name, timeout=5: (
            b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_key)))

    # RFC 8058 one-click from the header, against the subscription pages
    message = parse(received[0].data)
    url = str(message["List-Unsubscribe"]).split(",")[0].strip(" <>")
    person = people[received[0].recipients[0]]
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        response = client.post(urlsplit(url)._replace(scheme="", netloc="").geturl(),
                               data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    with session_scope(settings) as session:
        assert "verdiepingen" not in active_topics(session, person.id)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [421, 451])
def test_under_faults_every_deliverable_message_arrives_exactly_once(
        send_settings: Settings, code: int) -> None:
    rejected = [f"r{n}@example.org" for n in (3, 17, 40)]
    with SMTPTestServer(temporary=0.15, temporary_code=code, drop=0.08, reject=rejected,
                        seed=code) as server:
        settings = replace(via(send_settings, server), send_max_attempts=30)
        bulk_subscribers(settings, 60)
        send_id = sending.create_send(settings, "stalking")
        summary = sending.run_send(settings, send_id)
        received = server.messages
        faults = Counter(server.faults)
    assert summary.status == "done" and summary.counts == {"sent": 57, "failed": 3}
    assert faults["drop"] and faults[str(code)], "the faults were injected"
    by_id = Counter(parse(r.data)["Message-ID"] for r in received)
    assert len(by_id) == 57 and set(by_id.values()) == {1}
    assert not {r.recipients[0] for r in received} & set(rejected)
    with session_scope(settings) as session:
        failed = session.exec(select(Delivery).where(Delivery.status == "failed")).all()
        retried = session.exec(select(Delivery).where(Delivery.attempts > 1)).all()
    assert [(d.code, d.attempts) for d in failed] == [(550, 1)] * 3
    assert all("User unknown" in d.error for d in failed)
    # 451 is the recipient's temporary failure; 421 and drops are the connection's, nobody's try
    assert bool(retried) == (code == 451)
