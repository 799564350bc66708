from __future__ import annotations

import json
import re

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from mailer.db import session_scope
from mailer.models import Subscriber, Suppression
from mailer.subscribers.subscriptions import active_topics, unsubscribe
from mailer.subscribers.tokens import make_token, preferences_url, unsubscribe_url
from mailer.web.app import create_app
from tests.conftest import add_subscriber

FORM = {"email": "anouk@example.org", "name": "Anouk Jansen", "organisation": "Veilig Thuis",
        "region": "limburg", "audience": "netwerk", "topics": ["updates", "verdiepingen"]}


@pytest.fixture
def client(settings, transport):
    with TestClient(create_app(settings, transport), follow_redirects=False) as client:
        yield client


def csrf_of(response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)


def post_form(client, path: str, data: dict):
    """Open the page (which sets the CSRF cookie), then post its form."""
    token = csrf_of(client.get(path))
    return client.post(path, data={**data, "csrf": token})


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
    confirmed = client.get(confirm_link(message))
    assert confirmed.status_code == 200 and "bevestigd" in confirmed.text
    assert person(engine).status == "active"
    assert topics(engine, person(engine).id) == ["updates", "verdiepingen"]
    replay = client.get(confirm_link(message))
    assert replay.status_code == 400 and "al gebruikt" in replay.text


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


@pytest.fixture
def subscriber_id(engine):
    with session_scope(engine) as session:
        return add_subscriber(session, "anouk@example.org",
                              topics=("updates", "verdiepingen", "verbeteractiviteiten"))


def unsubscribe_path(settings, subscriber_id, topic=None):
    return unsubscribe_url(settings, subscriber_id, topic).removeprefix("http://testserver")


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe(settings, engine, subscriber_id, encoding):
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as fresh:  # no cookies, no CSRF token
        path = unsubscribe_path(settings, subscriber_id)
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
    response = client.get(unsubscribe_path(settings, subscriber_id))
    assert response.status_code == 200 and "alle mailings" in response.text
    assert 'type="submit"' in response.text
    assert person(engine).status == "active"
    assert len(topics(engine, subscriber_id)) == 3


def test_one_topic_unsubscribe_keeps_the_others(client, settings, engine, subscriber_id):
    path = unsubscribe_path(settings, subscriber_id, "verdiepingen")
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
    page = client.get(unsubscribe_path(settings, only, "verdiepingen")).text
    assert "Je ontvangt daarna geen mailings meer van ons." in page and "Je blijft" not in page


def test_the_unsubscribe_button_needs_its_csrf_token(client, settings, engine, subscriber_id):
    path = unsubscribe_path(settings, subscriber_id)
    client.get(path)
    response = client.post(path, data={"something": "else"})
    assert response.status_code == 403 and person(engine).status == "active"


def test_an_unknown_topic_is_a_broken_link(client, settings, subscriber_id):
    response = client.get(unsubscribe_path(settings, subscriber_id) + "?onderwerp=alles")
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
                                                                         subscriber_id):
    wrong_purpose = client.get(f"/voorkeuren/{make_token(settings, subscriber_id, 'unsubscribe')}")
    missing = client.get(f"/voorkeuren/{make_token(settings, 999_999, 'preferences')}")
    assert wrong_purpose.status_code == 400 and missing.status_code == 404
    body = re.compile(r"<main>.*</main>", re.S)
    assert body.search(wrong_purpose.text).group(0) == body.search(missing.text).group(0)


def test_an_expired_confirmation_is_refused(client, settings, engine, monkeypatch):
    import time

    from itsdangerous.timed import TimestampSigner

    post_form(client, "/aanmelden", FORM)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 49 * 3600)
    old = make_token(settings, person(engine).id, "confirm")
    monkeypatch.undo()
    response = client.get(f"/bevestig/{old}")
    assert response.status_code == 400 and person(engine).status == "pending"


def preferences_path(settings, subscriber_id):
    return preferences_url(settings, subscriber_id).removeprefix("http://testserver")


def test_preferences_change_topics_and_profile(client, settings, engine, subscriber_id):
    path = preferences_path(settings, subscriber_id)
    page = client.get(path)
    assert page.status_code == 200 and "anouk@example.org" in page.text
    response = client.post(path, data={"csrf": csrf_of(page), "name": "Anouk de Vries",
                                       "organisation": "", "region": "oost-brabant",
                                       "audience": "werkveld", "topics": ["updates"]})
    assert response.status_code == 200 and "opgeslagen" in response.text
    assert topics(engine, subscriber_id) == ["updates"]
    assert (person(engine).name, person(engine).region) == ("Anouk de Vries", "oost-brabant")


def test_preferences_refuse_bad_input(client, settings, engine, subscriber_id):
    path = preferences_path(settings, subscriber_id)
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
    path = preferences_path(settings, subscriber_id)
    page = client.get(path)
    assert "Meld je opnieuw aan" in page.text and '<fieldset id="topics" disabled>' in page.text
    client.post(path, data={"csrf": csrf_of(page), "name": "A", "region": "limburg",
                            "audience": "netwerk", "topics": ["updates"]})
    assert topics(engine, subscriber_id) == []


def test_my_data_downloads_as_json(client, settings, subscriber_id):
    response = client.get(preferences_path(settings, subscriber_id) + "/gegevens")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.text)
    assert data["email"] == "anouk@example.org" and len(data["subscriptions"]) == 3


def test_erase_leaves_only_the_suppression(client, settings, engine, subscriber_id):
    path = preferences_path(settings, subscriber_id)
    response = client.post(path + "/wissen", data={"csrf": csrf_of(client.get(path))})
    assert response.status_code == 200 and "gewist" in response.text
    assert person(engine) is None
    with session_scope(engine) as session:
        assert session.exec(select(Suppression)).one().reason == "erased"
    assert client.get(path).status_code == 404


def test_pages_send_security_headers_and_never_redirect(client, settings, subscriber_id):
    for path in ["/aanmelden", preferences_path(settings, subscriber_id),
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
