"""The studio's pages and actions over HTTP: access rules, test send, approval, partner blocks."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from mailer.config import Settings
from mailer.db import session_scope
from mailer.partners.publications import add_publication
from mailer.render.templates import PACKAGE_TEMPLATES
from mailer.schedule.scheduler import Request, plan
from mailer.web.studio import create_studio
from tests.conftest import add_subscriber, outbox

TOKEN = "studio-test-token"


@pytest.fixture
def site(send_settings: Settings) -> Settings:
    return replace(send_settings, approval_mode="required")


@pytest.fixture
def client(site: Settings):  # type: ignore[no-untyped-def]
    with TestClient(create_studio(site, "stalking", TOKEN), base_url="http://127.0.0.1") as client:
        yield client


def test_loopback_pages_need_no_token_but_actions_do_and_foreign_hosts_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/?region=limburg&audience=werkveld")
    assert page.status_code == 200 and '<label for="region">Region</label>' in page.text
    assert TOKEN in page.text  # for the page's own forms
    assert "Beste Jan Jansen," in client.get("/mail.txt?region=limburg&audience=werkveld").text
    assert client.get("/", headers={"Host": "studio.evil.example"}).status_code == 400
    refused = client.post("/test-send", data={"address": "me@example.org", "region": "limburg",
                                              "audience": "werkveld"})
    assert refused.status_code == 403
    assert client.get("/mail.html?region=atlantis").status_code == 404


def test_off_loopback_every_request_needs_the_token(site: Settings) -> None:
    app = create_studio(site, "stalking", TOKEN, loopback=False)
    with TestClient(app, base_url="http://192.0.2.10") as client:
        assert client.get("/").status_code == 403
        assert client.get("/site/stalking/img/dotinga.png").status_code == 403
        assert client.get(f"/?token={TOKEN}").status_code == 200
        assert client.get("/site/stalking/img/dotinga.png").status_code == 200  # cookie kept
    with TestClient(app, base_url="http://192.0.2.10") as stranger:
        assert stranger.get("/?token=wrong").status_code == 403


def test_test_send_goes_to_the_given_address(client, site: Settings) -> None:  # type: ignore[no-untyped-def]
    sent = client.post("/test-send", data={"token": TOKEN, "address": "me@example.org",
                                           "region": "limburg", "audience": "werkveld"})
    assert sent.status_code == 200 and sent.text.endswith("sent to me@example.org")
    [message] = outbox(site)
    assert message["To"] == "me@example.org" and message["Subject"].startswith("[TEST]")
    bad = client.post("/test-send", data={"token": TOKEN, "address": "geen adres",
                                          "region": "limburg", "audience": "werkveld"})
    assert bad.status_code == 400 and bad.text.startswith("Not sent:")


def test_the_overview_shows_schedules_per_region_and_approves_them(client, site: Settings) -> None:  # type: ignore[no-untyped-def]
    with session_scope(site, write=True) as session:
        add_subscriber(session, "jan@example.org", "limburg", "netwerk", ("verdiepingen",), "Jan")
    due = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    [planned] = plan(site, [Request("stalking", due, ("limburg",), created_by="anna")],
                     dt.datetime.now(dt.UTC))
    page = client.get("/sends").text
    limburg = page.split('id="region-limburg"')[1].split("</tr>")[0]
    assert f"Schedule {planned.id}: stalking" in limburg and "not approved yet" in limburg
    assert "Can approve: anyone but the creator" in limburg
    assert "Nothing planned" in page.split('id="region-oost-nederland"')[1].split("</tr>")[0]
    assert page.index('id="region-limburg"') < page.index('id="region-noord-nederland"')
    schedule = page.split(f'id="schedule-{planned.id}"')[1].split("</tr>")[0]
    assert "not approved yet" in schedule and ">1</td>" in schedule  # one recipient now

    own = client.post("/sends/approve", data={"token": TOKEN, "kind": "schedule",
                                              "id": str(planned.id), "by": "anna"})
    assert "Not approved:" in own.text and "someone else must approve it" in own.text
    done = client.post("/sends/approve", data={"token": TOKEN, "kind": "schedule",
                                               "id": str(planned.id), "by": "bert"})
    assert f"Schedule {planned.id}: created by anna at " in done.text
    assert "; approved by bert at " in done.text


def test_readiness_panel_lists_the_example_blocks(client) -> None:  # type: ignore[no-untyped-def]
    panel = client.get("/readiness").text
    assert "Not ready" in panel and panel.count("is example text") == 5
    assert "content/stalking/30-nieuw-werkproces-rotterdam.md:10" in panel


def test_a_partner_suggestion_becomes_a_block_file(client, site: Settings) -> None:  # type: ignore[no-untyped-def]
    url = "https://www.om.nl/actueel/stalking-aanpak"
    add_publication(site, "Openbaar Ministerie", "Nieuwe aanpak van stalking door ex-partners", url,
                    dt.date(2026, 11, 2), themes=["stalking"])
    page = client.get("/partners").text
    assert "Nieuwe aanpak van stalking door ex-partners" in page
    made = client.post("/partners/block", data={"token": TOKEN, "url": url}).text
    path = site.content / "stalking" / "95-nieuwe-aanpak-van-stalking-door-ex-partners.md"
    assert "Wrote content/stalking/95-nieuwe-aanpak-van-stalking-door-ex-partners.md" in made
    text = path.read_text("utf-8")
    assert "type: partner" in text and f"url: {url}" in text and "example: true" in text
    again = client.post("/partners/block", data={"token": TOKEN, "url": url}).text
    assert "Not written:" in again and "already points to" in again


def test_a_broken_save_keeps_the_last_good_build_and_names_file_and_line(
        send_settings: Settings) -> None:
    from mailer.builds.live import LiveBuild

    live = LiveBuild(send_settings, "stalking")
    assert live.rebuild().problems == ()
    html, _ = live.mail("limburg", "werkveld", "Els Bos")
    assert "Beste Els Bos," in html and 'src="/site/stalking/img/dotinga.png"' in html
    block = send_settings.content / "stalking" / "60-webinar-stalking.md"
    good = block.read_text("utf-8")
    block.write_text(good.replace("---\n", "---\nregions: [atlantis]\n", 1), "utf-8")
    [problem] = live.rebuild().problems
    assert str(problem).startswith("content/stalking/60-webinar-stalking.md:2: ")
    assert "atlantis" in problem.message
    assert "Beste Els Bos," in live.mail("limburg", "werkveld", "Els Bos")[0]  # the last good one
    block.write_text(good, "utf-8")
    state = live.rebuild()
    assert state.problems == () and state.version == 3


def test_a_failed_build_without_a_place_in_a_file_is_shown_on_the_theme(
        send_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.builds.live import LiveBuild

    monkeypatch.setattr("mailer.builds.result.MAX_BYTES", 1024)  # every variant is too big
    [problem] = LiveBuild(send_settings, "stalking").rebuild().problems
    assert problem.file is not None and problem.file.name == "stalking" and problem.line is None
    assert "Gmail clips" in problem.message


def test_a_saved_template_is_used_by_the_next_rebuild(send_settings: Settings) -> None:
    from mailer.builds.live import LiveBuild

    live = LiveBuild(send_settings, "stalking")
    live.rebuild()
    template = send_settings.templates / "mjml" / "parts.mjml.j2"  # a new override of the package's
    template.parent.mkdir(parents=True)
    package = (PACKAGE_TEMPLATES / "mjml" / "parts.mjml.j2").read_text("utf-8")
    template.write_text(package.replace("Lees verder", "Lees meer"), "utf-8")
    assert live.rebuild().problems == ()
    assert "Lees meer" in live.mail("limburg", "werkveld")[0]
    template.write_text(package.replace("Lees verder", "Lees ook"), "utf-8")
    assert live.rebuild().problems == ()
    assert "Lees ook" in live.mail("limburg", "werkveld")[0]


def test_the_studio_command_refuses_an_unknown_theme(project: Settings) -> None:
    from click.testing import CliRunner

    from mailer.cli.main import main

    out = CliRunner().invoke(main, ["studio", "stalkin"])
    assert out.exit_code == 1 and "no such theme 'stalkin'" in out.output


def test_a_subscriber_without_a_name_gets_the_neutral_greeting(client, site: Settings) -> None:  # type: ignore[no-untyped-def]
    with session_scope(site, write=True) as session:
        named = add_subscriber(session, "els@example.org", "limburg", "werkveld", ("verdiepingen",),
                               "Els Bos")
        nameless = add_subscriber(session, "nn@example.org", "limburg", "werkveld",
                                  ("verdiepingen",), "")
    readers = client.get("/readers?region=limburg&audience=werkveld").json()
    assert [r[0] for r in readers] == [named, nameless]
    segment = "region=limburg&audience=werkveld"
    assert "Beste Els Bos," in client.get(f"/mail.txt?{segment}&reader={named}").text
    text = client.get(f"/mail.txt?{segment}&reader={nameless}").text
    assert "Beste geïnteresseerde," in text and "Jan Jansen" not in text
