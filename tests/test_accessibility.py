"""WCAG 2.1 AA in the real browser: axe-core finds nothing on any public page or mail variant,
and a form with errors moves the focus to a summary that links each marked field."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mailer.builds.archive import publish
from mailer.builds.builder import build
from mailer.builds.preview import write_preview
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Subscriber
from mailer.subscribers.subscriptions import Profile, request_subscription
from mailer.subscribers.tokens import confirm_url, preferences_url, unsubscribe_url
from mailer.web.app import create_app
from tests.browser import axe_source, axe_violations, needs_chromium, serve
from tests.conftest import add_subscriber

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


def check(browser, axe: str, url: str, width: int = 1000) -> list[str]:
    context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(url)
    found = axe_violations(page, axe)
    context.close()
    return found


def built_pages(project: Settings) -> list[Path]:
    build(project, "stalking")
    publish(project, "stalking", "test")  # the archive pages list only what has gone out
    out = project.out / "stalking"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    variants = {v["html"] for v in manifest["segments"].values()}
    variants |= {v["online"] for v in manifest["segments"].values()}
    return ([out / name for name in sorted(variants)] + sorted(out.glob("*.html"))
            + [project.out / "index.html", *sorted((project.out / "archief").glob("*.html"))])


def test_every_mail_variant_and_web_page_has_no_axe_violations(project, browser, axe) -> None:
    pages = built_pages(project)
    assert len(pages) >= 4 + 4 + 11 + 2
    found = {str(p.relative_to(project.out)): check(browser, axe, p.as_uri()) for p in pages}
    assert {name: v for name, v in found.items() if v} == {}


def test_the_preview_page_has_no_axe_violations(project, browser, axe) -> None:
    build(project, "stalking")
    [index] = write_preview(project, "stalking")
    assert check(browser, axe, index.as_uri()) == []
    assert check(browser, axe, index.as_uri(), width=375) == []


@pytest.fixture
def site(tmp_path: Path):
    """The subscription pages on loopback (SQLite), with one subscriber's personal links."""
    settings = Settings(root=tmp_path, secret_key="test-secret-key",
                        database_url=f"sqlite:///{tmp_path}/mailer.db")
    app = create_app(settings)
    with serve(app) as url:
        settings = replace(settings, public_base_url=url)
        from mailer.db import get_engine

        with session_scope(get_engine(settings)) as session:
            row_id = add_subscriber(session, "anouk@example.org", topics=("updates", "verdiepingen"))
            subscriber = session.get(Subscriber, row_id).public_id
            pending = request_subscription(session, "bram@example.org", Profile(
                "Bram", "", "limburg", "netwerk", ("updates",)), "web")
        yield url, {
            "aanmelden": f"{url}/aanmelden",
            "privacy": f"{url}/privacy",
            "bevestigen": confirm_url(settings, pending.subscriber.public_id, pending.nonce),
            "afmelden-hulp": f"{url}/afmelden",
            "afmelden": unsubscribe_url(settings, subscriber),
            "afmelden-onderwerp": unsubscribe_url(settings, subscriber, "verdiepingen"),
            "voorkeuren": preferences_url(settings, subscriber),
            "wissen": preferences_url(settings, subscriber) + "/wissen",
            "kapotte-link": f"{url}/bevestig/kapot",
        }


def test_every_subscription_page_has_no_axe_violations(site, browser, axe) -> None:
    _, pages = site
    found = {name: check(browser, axe, url) for name, url in pages.items()}
    assert {name: v for name, v in found.items() if v} == {}


def test_form_errors_take_the_focus_and_mark_the_fields(site, browser, axe) -> None:
    url, _ = site
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{url}/aanmelden")
    page.fill("#email", "geen-adres")
    page.uncheck("input[value=updates]")
    page.click("button[type=submit]")
    page.wait_for_selector("#fouten")
    assert page.evaluate("document.activeElement.id") == "fouten"
    summary = page.inner_text("#fouten")
    assert "Niet alles is goed ingevuld" in summary and "Vul een geldig e-mailadres in." in summary
    assert page.get_attribute("#email", "aria-invalid") == "true"
    assert page.get_attribute("#email", "aria-describedby") == "fout-email"
    assert page.inner_text("#fout-email") == "Vul een geldig e-mailadres in."
    assert page.get_attribute("#region", "aria-invalid") == "true"
    assert page.get_attribute("#topics", "aria-describedby") == "fout-topics"
    assert page.get_attribute("#name", "aria-invalid") is None
    page.click("#fouten a[href='#region']")
    assert page.evaluate("document.activeElement.id") == "region"
    assert axe_violations(page, axe) == []
    context.close()


def test_the_sign_up_page_links_the_privacy_statement(site, browser) -> None:
    url, _ = site
    page = browser.new_page()
    page.goto(f"{url}/aanmelden")
    page.click("text=privacyverklaring")
    page.wait_for_selector("h1")
    text = page.inner_text("main")
    for heading in ("Wie is verantwoordelijk", "Wat we bewaren", "Hoe lang", "Intrekken"):
        assert heading in text
    assert "Landelijk Netwerk Zorg-Straf" in text
    page.close()
