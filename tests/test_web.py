from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from mailer.db import session_scope
from mailer.models import RateLimit, Subscriber, Suppression, utcnow
from mailer.subscribers import subscriptions
from mailer.subscribers.subscriptions import active_topics, erase, unsubscribe
from mailer.subscribers.tokens import make_token, preferences_url, unsubscribe_url
from mailer.transport.transports import MemoryTransport
from mailer.web import ratelimit
from mailer.web.app import create_app, housekeeping
from tests.conftest import add_subscriber
from tests.fake_clock import FakeClock

FORM = {"email": "anouk@example.org", "name": "Anouk Jansen", "organisation": "Veilig Thuis",
        "region": "limburg", "audience": "netwerk", "topics": ["updates", "verdiepingen"]}


@pytest.fixture
def client(settings, transport):
    with TestClient(create_app(settings, transport), follow_redirects=False) as client:
        yield client


def csrf_of(response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)


def post_form(client, path: str, data: dict, headers: dict | None = None):
    """Open the page (which sets the CSRF cookie), then post its form."""
    token = csrf_of(client.get(path, headers=headers))
    return client.post(path, data={**data, "csrf": token}, headers=headers)


def person(engine, email="anouk@example.org"):
    with session_scope(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def topics(engine, subscriber_id):
    with session_scope(engine) as session:
        return active_topics(session, subscriber_id)


def confirm_link(message) -> str:
    return re.search(r"http://testserver(/bevestig/\S+)", message.get_content()).group(1)


def test_sign_up_mails_a_link_that_activates(client, engine, transport):
    response = post_form(client, "/aanmelden", FORM)
    assert response.status_code == 200 and "Kijk in je mail" in response.text
    [message] = [outgoing.email() for outgoing in transport.sent]
    assert message["To"] == "Anouk Jansen <anouk@example.org>"
    assert "Bevestig je aanmelding" in message["Subject"]
    assert "Thematische verdiepingen" in message.get_content()
    assert person(engine).status == "pending"
    link = confirm_link(message)
    page = client.get(link)
    assert page.status_code == 200 and "Ja, bevestig mijn aanmelding" in page.text
    assert person(engine).status == "pending"
    confirmed = client.post(link, data={"csrf": csrf_of(page)})
    assert confirmed.status_code == 200 and "Je aanmelding is bevestigd" in confirmed.text
    assert person(engine).status == "active"
    assert topics(engine, person(engine).id) == ["updates", "verdiepingen"]
    for again in (client.get(link), client.post(link, data={"csrf": csrf_of(page)})):
        assert again.status_code == 200 and "al bevestigd" in again.text
        assert "Mijn voorkeuren" in again.text


def test_opening_or_scanning_the_confirm_link_changes_nothing(client, engine, transport):
    post_form(client, "/aanmelden", FORM)
    link = confirm_link(transport.sent[0].email())
    assert client.head(link).status_code == 200
    assert client.get(link).status_code == 200
    assert client.post(link, data={"csrf": "forged"}).status_code == 403
    assert person(engine).status == "pending" and topics(engine, person(engine).id) == []


def test_an_older_confirmation_link_does_not_apply_a_newer_sign_up(client, engine, transport,
                                                                   monkeypatch):
    from mailer.subscribers import subscriptions

    post_form(client, "/aanmelden", FORM)
    monkeypatch.setattr(subscriptions, "CONFIRM_RESEND_AFTER", dt.timedelta(0))
    post_form(client, "/aanmelden", {**FORM, "name": "Iemand Anders", "topics": ["updates"]})
    first, second = (confirm_link(m.email()) for m in transport.sent)
    stale = client.post(first, data={"csrf": csrf_of(client.get("/aanmelden"))})
    assert stale.status_code == 400 and "niet meer geldig" in stale.text
    assert person(engine).status == "pending"
    page = client.get(second)
    assert "Iemand Anders" not in page.text and "Updates" in page.text
    assert client.post(second, data={"csrf": csrf_of(page)}).status_code == 200
    assert (person(engine).name, person(engine).status) == ("Iemand Anders", "active")


def test_repeated_sign_ups_send_one_mail(client, transport):
    for _ in range(3):
        assert post_form(client, "/aanmelden", FORM).status_code == 200
    assert len(transport.sent) == 1


def test_the_answer_does_not_reveal_whether_an_address_is_known(client, engine, transport):
    with session_scope(engine) as session:
        add_subscriber(session, "known@example.org")
    known = post_form(client, "/aanmelden", {**FORM, "email": "known@example.org"})
    new = post_form(client, "/aanmelden", {**FORM, "email": "new@example.org"})
    assert known.status_code == new.status_code == 200
    assert known.text.replace("known@", "X@") == new.text.replace("new@", "X@")


@pytest.mark.parametrize("field, value, message", [
    ("email", "not-an-address", "geldig e-mailadres"),
    ("email", "a@example.org\r\nBcc: victim@example.org", "geldig e-mailadres"),
    ("email", "a" * 300 + "@example.org", "geldig e-mailadres"),
    ("name", "Anouk\r\nBcc: victim@example.org", "regeleinden"),
    ("name", "A" * 201, "niet meer dan 200"),
    ("organisation", "X\nY", "regeleinden"),
    ("region", "atlantis", "Kies je regio"),
    ("audience", "", "Kies je doelgroep"),
    ("topics", [], "minstens één onderwerp"),
    ("topics", ["spam"], "minstens één onderwerp"),
])
def test_bad_sign_ups_are_refused_in_dutch(client, engine, transport, field, value, message):
    response = post_form(client, "/aanmelden", {**FORM, field: value})
    assert response.status_code == 400 and message in response.text
    assert transport.sent == [] and person(engine) is None


def test_markup_in_a_name_is_escaped(client):
    response = post_form(client, "/aanmelden", {**FORM, "name": "<script>x</script>",
                                                "region": ""})
    assert "<script>x" not in response.text and "&lt;script&gt;x" in response.text


def test_the_honeypot_pretends_and_does_nothing(client, engine, transport):
    response = post_form(client, "/aanmelden", {**FORM, "website": "http://spam.example"})
    assert response.status_code == 200 and "Kijk in je mail" in response.text
    assert transport.sent == [] and person(engine) is None


def test_sign_ups_per_ip_are_limited(client, transport):
    statuses = [post_form(client, "/aanmelden", {**FORM, "email": f"p{i}@example.org"}).status_code
                for i in range(12)]
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
    assert len(transport.sent) == 10


def test_a_post_without_the_csrf_cookie_is_refused(client, engine, transport):
    token = csrf_of(client.get("/aanmelden"))
    client.cookies.clear()
    response = client.post("/aanmelden", data={**FORM, "csrf": token})
    assert response.status_code == 403 and person(engine) is None


def test_a_post_from_another_site_is_refused(client, engine):
    token = csrf_of(client.get("/aanmelden"))
    response = client.post("/aanmelden", data={**FORM, "csrf": token},
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and person(engine) is None


def test_an_oversized_body_is_refused(client):
    response = client.post("/aanmelden", data={"name": "x" * 70_000})
    assert response.status_code == 413


def test_an_oversized_body_without_a_length_is_refused(client, engine):
    """Chunked, so the Content-Length check cannot catch it: reading stops at the limit."""
    page = client.get("/aanmelden")
    body = f"csrf={csrf_of(page)}&email=anouk%40example.org&name={'x' * 70_000}".encode()
    response = client.post("/aanmelden", content=iter([body[:1000], body[1000:]]),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and "te veel tekst" in response.text
    assert person(engine) is None


def test_a_form_with_too_many_fields_is_refused(client):
    response = client.post("/aanmelden", content="&".join(f"f{i}=x" for i in range(40)),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400


@pytest.fixture
def subscriber_id(engine):
    with session_scope(engine) as session:
        return add_subscriber(session, "anouk@example.org",
                              topics=("updates", "verdiepingen", "verbeteractiviteiten"))


def public_id(engine, subscriber_id) -> str:
    with session_scope(engine) as session:
        return session.get(Subscriber, subscriber_id).public_id


def unsubscribe_path(settings, engine, subscriber_id, topic=None):
    url = unsubscribe_url(settings, public_id(engine, subscriber_id), topic)
    return url.removeprefix("http://testserver")


@pytest.mark.lowest
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe(settings, engine, subscriber_id, encoding):
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as fresh:  # no cookies, no CSRF token
        path = unsubscribe_path(settings, engine, subscriber_id)
        if encoding == "urlencoded":
            response = fresh.post(path, content=b"List-Unsubscribe=One-Click",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            response = fresh.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200 and "location" not in response.headers
    assert person(engine).status == "unsubscribed"
    assert topics(engine, subscriber_id) == []
    with session_scope(engine) as session:
        assert session.exec(select(Suppression)).one().reason == "unsubscribed"


def test_a_get_of_the_unsubscribe_url_changes_nothing(client, settings, engine, subscriber_id):
    response = client.get(unsubscribe_path(settings, engine, subscriber_id))
    assert response.status_code == 200 and "alle mailings" in response.text
    assert 'type="submit"' in response.text
    assert person(engine).status == "active"
    assert len(topics(engine, subscriber_id)) == 3


def test_one_topic_unsubscribe_keeps_the_others(client, settings, engine, subscriber_id):
    path = unsubscribe_path(settings, engine, subscriber_id, "verdiepingen")
    page = client.get(path)
    assert "Je meldt je af voor <strong>Thematische verdiepingen</strong>. Dat gaat meteen in." in page.text
    assert "Je blijft Updates en Verbeteractiviteiten in de praktijk ontvangen." in page.text
    response = client.post(path, data={"csrf": csrf_of(page)})
    assert response.status_code == 200 and "afgemeld" in response.text
    assert topics(engine, subscriber_id) == ["updates", "verbeteractiviteiten"]
    assert person(engine).status == "active"


def test_leaving_the_last_topic_promises_no_other_mailings(client, settings, engine):
    with session_scope(engine) as session:
        only = add_subscriber(session, "enkel@example.org", topics=("verdiepingen",))
    page = client.get(unsubscribe_path(settings, engine, only, "verdiepingen")).text
    assert "Je ontvangt daarna geen mailings meer van ons." in page and "Je blijft" not in page


def test_the_unsubscribe_button_needs_its_csrf_token(client, settings, engine, subscriber_id):
    path = unsubscribe_path(settings, engine, subscriber_id)
    client.get(path)
    response = client.post(path, data={"something": "else"})
    assert response.status_code == 403 and person(engine).status == "active"


def test_an_unknown_topic_is_a_broken_link(client, settings, engine, subscriber_id):
    response = client.get(unsubscribe_path(settings, engine, subscriber_id) + "?onderwerp=alles")
    assert response.status_code == 404 and "werkt niet" in response.text


@pytest.mark.parametrize("path", [
    "/afmelden/nonsense", "/voorkeuren/nonsense", "/bevestig/nonsense",
    "/voorkeuren/nonsense/gegevens",
])
def test_a_broken_token_gets_a_friendly_page(client, path):
    response = client.get(path)
    assert response.status_code == 400 and "Deze link werkt niet" in response.text
    assert "Traceback" not in response.text


def test_a_token_for_another_purpose_or_a_missing_person_reveals_nothing(client, settings,
                                                                         engine, subscriber_id):
    token = make_token(settings, public_id(engine, subscriber_id), "unsubscribe")
    wrong_purpose = client.get(f"/voorkeuren/{token}")
    missing = client.get(f"/voorkeuren/{make_token(settings, 'f' * 32, 'preferences')}")
    assert wrong_purpose.status_code == missing.status_code == 400
    body = re.compile(r"<main>.*</main>", re.S)
    assert body.search(wrong_purpose.text).group(0) == body.search(missing.text).group(0)


def test_an_expired_confirmation_is_refused(client, settings, engine):
    post_form(client, "/aanmelden", FORM)
    nonce = json.loads(person(engine).pending_request)["nonce"]
    two_days_ago = FakeClock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=49))
    old = make_token(settings, person(engine).public_id, "confirm", nonce, two_days_ago)
    response = client.get(f"/bevestig/{old}")
    assert response.status_code == 400 and person(engine).status == "pending"


def preferences_path(settings, engine, subscriber_id):
    return preferences_url(settings, public_id(engine, subscriber_id)).removeprefix(
        "http://testserver")


def test_preferences_change_topics_and_profile(client, settings, engine, subscriber_id):
    path = preferences_path(settings, engine, subscriber_id)
    page = client.get(path)
    assert page.status_code == 200 and "anouk@example.org" in page.text
    response = client.post(path, data={"csrf": csrf_of(page), "name": "Anouk de Vries",
                                       "organisation": "", "region": "oost-brabant",
                                       "audience": "werkveld", "topics": ["updates"]})
    assert response.status_code == 200 and "opgeslagen" in response.text
    assert topics(engine, subscriber_id) == ["updates"]
    assert (person(engine).name, person(engine).region) == ("Anouk de Vries", "oost-brabant")


def test_preferences_refuse_bad_input(client, settings, engine, subscriber_id):
    path = preferences_path(settings, engine, subscriber_id)
    page = client.get(path)
    response = client.post(path, data={"csrf": csrf_of(page), "name": "A\r\nB",
                                       "region": "limburg", "audience": "netwerk",
                                       "topics": ["updates"]})
    assert response.status_code == 400 and "regeleinden" in response.text
    assert person(engine).name == "Test Persoon"


def test_preferences_of_someone_who_left_offer_a_new_sign_up(client, settings, engine,
                                                             subscriber_id):
    with session_scope(engine) as session:
        unsubscribe(session, subscriber_id)
    path = preferences_path(settings, engine, subscriber_id)
    page = client.get(path)
    assert "Meld je opnieuw aan" in page.text and '<fieldset id="topics" disabled>' in page.text
    client.post(path, data={"csrf": csrf_of(page), "name": "A", "region": "limburg",
                            "audience": "netwerk", "topics": ["updates"]})
    assert topics(engine, subscriber_id) == []


def test_my_data_downloads_as_json(client, settings, engine, subscriber_id):
    response = client.get(preferences_path(settings, engine, subscriber_id) + "/gegevens")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.text)
    assert data["email"] == "anouk@example.org" and len(data["subscriptions"]) == 3


def test_erase_asks_first_on_a_page_of_its_own(client, settings, engine, subscriber_id):
    path = preferences_path(settings, engine, subscriber_id)
    preferences = client.get(path)
    assert f'href="{path}/wissen"' in preferences.text
    assert f'action="{path}/wissen"' not in preferences.text  # no erase button next to Download
    ask = client.get(path + "/wissen")
    assert ask.status_code == 200 and "kan niet ongedaan worden gemaakt" in ask.text
    assert 'class="button danger" type="submit">Ja, wis al mijn gegevens' in ask.text
    assert client.head(path + "/wissen").status_code == 200
    assert person(engine) is not None


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_erase_needs_its_csrf_token(client, settings, engine, subscriber_id, csrf):
    path = preferences_path(settings, engine, subscriber_id) + "/wissen"
    client.get(path)
    response = client.post(path, data={} if csrf is None else {"csrf": csrf})
    assert response.status_code == 403 and person(engine) is not None


def test_erase_leaves_only_the_suppression(client, settings, engine, subscriber_id):
    path = preferences_path(settings, engine, subscriber_id)
    response = client.post(path + "/wissen", data={"csrf": csrf_of(client.get(path + "/wissen"))})
    assert response.status_code == 200 and "gewist" in response.text
    assert person(engine) is None
    with session_scope(engine) as session:
        assert session.exec(select(Suppression)).one().reason == "erased"
    assert client.get(path).status_code == 400


def test_an_erased_persons_links_never_reach_the_next_person(client, settings, engine,
                                                            subscriber_id):
    """The reproduction: on SQLite the next sign-up gets the erased person's row id."""
    old_links = {purpose: make_token(settings, public_id(engine, subscriber_id), purpose)
                 for purpose in ("preferences", "unsubscribe")}
    with session_scope(engine) as session:
        erase(session, subscriber_id)
    with session_scope(engine) as session:
        newcomer = add_subscriber(session, "bram@example.org", name="Bram Bakker")
    if settings.database_url.startswith("sqlite"):
        assert newcomer == subscriber_id  # the row id was reused
    preferences, unsubscribe_token = old_links["preferences"], old_links["unsubscribe"]
    for response in (
        client.get(f"/voorkeuren/{preferences}/gegevens"),
        client.get(f"/voorkeuren/{preferences}"),
        client.get(f"/voorkeuren/{preferences}/wissen"),
        client.post(f"/voorkeuren/{preferences}", data={"csrf": csrf_of(client.get("/aanmelden")),
                    "name": "X", "region": "limburg", "audience": "netwerk", "topics": ["updates"]}),
        client.post(f"/voorkeuren/{preferences}/wissen",
                    data={"csrf": csrf_of(client.get("/aanmelden"))}),
        client.get(f"/afmelden/{unsubscribe_token}"),
        client.post(f"/afmelden/{unsubscribe_token}", data={"List-Unsubscribe": "One-Click"}),
    ):
        assert response.status_code == 400 and "werkt niet" in response.text
        assert "bram" not in response.text.lower()
    bram = person(engine, "bram@example.org")
    assert (bram.name, bram.status) == ("Bram Bakker", "active")


def test_pages_send_security_headers_and_never_redirect(client, settings, engine, subscriber_id):
    for path in ["/aanmelden", preferences_path(settings, engine, subscriber_id),
                 "/aanmelden?next=https://evil.example", "//evil.example", "/nope"]:
        response = client.get(path)
        assert "location" not in response.headers
        assert response.headers["referrer-policy"] == "same-origin"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["content-type"].startswith("text/html")


def test_the_web_versions_unsubscribe_link_explains_what_to_do(client):
    response = client.get("/afmelden")
    assert response.status_code == 200
    assert "persoonlijke link onderaan elke mail" in response.text


def test_hsts_only_over_https(settings, transport):
    app = create_app(settings, transport)
    with TestClient(app, base_url="https://testserver") as secure:
        assert secure.get("/aanmelden").headers["strict-transport-security"] == "max-age=31536000"
    with TestClient(app) as plain:
        response = plain.get("/aanmelden", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in response.headers  # nobody is trusted


def test_a_trusted_proxy_tells_the_scheme_and_the_client(settings, transport):
    app = create_app(replace(settings, trusted_proxies="*"), transport)
    with TestClient(app) as client:
        response = client.get("/aanmelden", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" in response.headers
        assert "secure" in response.headers["set-cookie"].lower()
        statuses = [post_form(client, "/aanmelden", {**FORM, "email": f"p{i}@example.org"},
                              headers={"X-Forwarded-For": f"192.0.2.{i % 2}"}).status_code
                    for i in range(22)]
    assert statuses.count(429) == 2  # two clients behind one proxy: each has its own ten


def test_the_sign_up_limit_holds_across_workers(settings):
    """Two app instances on one database, as `mailer serve --workers 2` runs them."""
    clients = [TestClient(create_app(settings, MemoryTransport())) for _ in range(2)]
    with clients[0] as first, clients[1] as second:
        statuses = [post_form((first, second)[i % 2], "/aanmelden",
                              {**FORM, "email": f"p{i}@example.org"}).status_code
                    for i in range(12)]
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]


def test_housekeeping_purges_old_sign_ups_and_counters(settings, engine, client, monkeypatch):
    post_form(client, "/aanmelden", FORM)
    later = utcnow() + dt.timedelta(days=8)
    monkeypatch.setattr(subscriptions, "utcnow", lambda: later)
    monkeypatch.setattr(ratelimit, "utcnow", lambda: later)
    with session_scope(engine, write=True) as session:
        housekeeping(session, settings)
    assert person(engine) is None
    with session_scope(engine) as session:
        assert session.exec(select(RateLimit)).all() == []


def test_the_privacy_statement_is_the_sites_own_when_it_wrote_one(client, settings):
    built_in = client.get("/privacy")
    assert built_in.status_code == 200 and "<h2>Wie is verantwoordelijk</h2>" in built_in.text
    assert 'href="/privacy">privacyverklaring</a>' in client.get("/aanmelden").text
    settings.content.mkdir()
    (settings.content / "privacy.md").write_text(
        "## Verantwoordelijke\n\nVeilig Thuis Limburg, tot 2 jaar na afmelden.\n", encoding="utf-8")
    own = client.get("/privacy").text
    assert "<h2>Verantwoordelijke</h2>" in own and "tot 2 jaar na afmelden" in own
    assert "Wie is verantwoordelijk" not in own
