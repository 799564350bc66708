"""The whole flows as a person meets them: a real SMTP server, a real server and browser."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace

import pytest
from aiosmtpd.controller import Controller
from starlette.testclient import TestClient

from mailer.db import session_scope
from mailer.models import Subscriber
from mailer.subscribers.subscriptions import (
    Profile,
    active_topics,
    find_by_email,
    request_subscription,
)
from mailer.subscribers.tokens import confirm_url, preferences_url
from mailer.transport.transports import transport_from_settings
from mailer.web.app import create_app
from tests.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium, serve
from tests.conftest import add_subscriber
from tests.smtp_server import free_port


class Inbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def test_double_opt_in_through_a_real_smtp_server(settings, engine, smtp_server):
    inbox, port = smtp_server
    settings = replace(settings, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    with TestClient(create_app(settings, transport_from_settings(settings))) as client:
        form = client.get("/aanmelden")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        response = client.post("/aanmelden", data={
            "csrf": csrf, "email": "Zoe@Example.org", "name": "Zoë de Wit",
            "organisation": "Wijkteam", "region": "limburg", "audience": "werkveld",
            "topics": ["verbeteractiviteiten"],
        })
        assert response.status_code == 200
        [message] = inbox.messages
        assert message["To"].addresses[0].addr_spec == "zoe@example.org"
        assert message["To"].addresses[0].display_name == "Zoë de Wit"
        link = re.search(r"http://testserver(/bevestig/\S+)", message.get_content()).group(1)
        page = client.get(link)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        confirmed = client.post(link, data={"csrf": csrf})
    assert confirmed.status_code == 200 and "bevestigd" in confirmed.text
    with session_scope(engine) as session:
        person = find_by_email(session, "zoe@example.org")
        assert person.status == "active"
        assert active_topics(session, person.id) == ["verbeteractiviteiten"]


@pytest.fixture
def live_server(settings):
    """The app under uvicorn on a loopback port, in a thread."""
    with serve(create_app(settings)) as url:
        yield url


@needs_chromium
def test_change_a_topic_in_a_real_browser(settings, engine, live_server):
    playwright = pytest.importorskip("playwright.sync_api")
    with session_scope(engine) as session:
        subscriber_id = add_subscriber(session, "anouk@example.org",
                                       topics=("updates", "verdiepingen"))
        public_id = session.get(Subscriber, subscriber_id).public_id
    url = preferences_url(replace(settings, public_base_url=live_server), public_id)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 1100})
        page.goto(url)
        assert page.is_checked("input[value=verdiepingen]")
        page.uncheck("input[value=verdiepingen]")
        page.check("input[value=verbeteractiviteiten]")
        page.click("text=Opslaan")
        page.wait_for_selector("text=Je voorkeuren zijn opgeslagen")
        page.goto(url)  # the link in the next mail shows what was saved
        shown = {v: page.is_checked(f"input[value={v}]")
                 for v in ("updates", "verdiepingen", "verbeteractiviteiten")}
        browser.close()
    assert shown == {"updates": True, "verdiepingen": False, "verbeteractiviteiten": True}
    with session_scope(engine) as session:
        assert active_topics(session, subscriber_id) == ["updates", "verbeteractiviteiten"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="browser test needs /usr/bin/chromium "
                    "(Debian package 'chromium')")
def test_confirm_and_erase_take_a_click_in_a_real_browser(settings, engine, live_server):
    """Opening the links (what a mail scanner does) changes nothing; the buttons do."""
    playwright = pytest.importorskip("playwright.sync_api")
    site = replace(settings, public_base_url=live_server)
    profile = Profile("Anouk", "", "limburg", "netwerk", ("updates",))
    with session_scope(engine, write=True) as session:
        person, nonce = request_subscription(session, "anouk@example.org", profile, "web")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(confirm_url(site, person.public_id, nonce))
        with session_scope(engine) as session:
            assert find_by_email(session, "anouk@example.org").status == "pending"
        page.click("text=Ja, bevestig mijn aanmelding")
        page.wait_for_selector("text=Je aanmelding is bevestigd")
        with session_scope(engine) as session:
            assert find_by_email(session, "anouk@example.org").status == "active"
        page.goto(confirm_url(site, person.public_id, nonce))
        page.wait_for_selector("text=Je aanmelding is al bevestigd")
        page.goto(preferences_url(site, person.public_id))
        page.click("text=Naar gegevens wissen")
        page.wait_for_selector("text=Al je gegevens wissen?")
        with session_scope(engine) as session:
            assert find_by_email(session, "anouk@example.org").status == "active"
        page.click("text=Ja, wis al mijn gegevens")
        page.wait_for_selector("text=Je gegevens zijn gewist")
        browser.close()
    with session_scope(engine) as session:
        assert session.get(Subscriber, person.id) is None
