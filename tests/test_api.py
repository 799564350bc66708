"""The REST API over real HTTP (uvicorn on loopback, httpx), on SQLite and PostgreSQL: token
scopes, problem details, the create rules, cursor pagination, CORS and the partners' sign-up
with its double opt-in, and the audit trail of every write."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from sqlmodel import col, select

from mailer.accounts import api_tokens
from mailer.audit import command_line, events
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Subscriber, Subscription
from mailer.subscribers.subscriptions import erase, find_by_email, unsubscribe
from mailer.web.app import create_app
from tests.browser import serve
from tests.conftest import add_subscriber, bulk_subscribers, outbox

PARTNER = "https://partner.example"
NEW = {"email": "anouk@example.org", "name": "Anouk", "region": "limburg", "audience": "netwerk",
       "topics": ["updates", "verdiepingen"]}
PROBLEM = "application/problem+json"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return replace(settings, api_signup_origins=f"{PARTNER}, http://localhost:3000")


@pytest.fixture
def api(api_settings: Settings) -> Iterator[str]:
    """The API's base URL on a served `mailer serve` app."""
    with serve(create_app(api_settings)) as base:
        yield base + "/api/v1"


def token(settings: Settings, *scopes: str, name: str = "crm") -> str:
    return api_tokens.add(settings, command_line("tester"), name, scopes)[1]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def problem(response: httpx.Response, status: int) -> dict:
    """The response's problem detail, after checking it is one, of `status`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert re.search(r"/api/v1/docs#problem-[a-z-]+$", body["type"]), body["type"]
    return body


def fields(body: dict) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


def test_tokens_open_only_what_their_scopes_allow(api_settings: Settings, api: str) -> None:
    reader = token(api_settings, "sends:read", name="reader")
    full = token(api_settings, "subscribers:read", "subscribers:write", name="full")

    missing = httpx.get(f"{api}/subscribers")
    assert problem(missing, 401) and missing.headers["www-authenticate"].startswith("Bearer")
    problem(httpx.get(f"{api}/subscribers", headers=bearer("mlr_made-up")), 401)
    denied = problem(httpx.get(f"{api}/subscribers", headers=bearer(reader)), 403)
    assert "subscribers:read" in denied["detail"]
    assert httpx.get(f"{api}/sends", headers=bearer(reader)).status_code == 200
    assert httpx.get(f"{api}/subscribers", headers=bearer(full)).json() == {
        "data": [], "next_cursor": None}

    api_tokens.revoke(api_settings, command_line("tester"), "full")
    problem(httpx.get(f"{api}/subscribers", headers=bearer(full)), 401)
    assert {t.name: t.last_used_at is not None for t in api_tokens.tokens(api_settings)} == {
        "full": True, "reader": True}


def test_every_error_answer_is_a_problem_detail(settings: Settings) -> None:
    limited = replace(settings, api_requests_per_minute=6)
    secret = token(limited, "subscribers:read", "subscribers:write")
    with serve(create_app(limited)) as base, httpx.Client(base_url=base + "/api/v1",
                                                          headers=bearer(secret)) as client:
        problem(client.get("/subscribers/" + "0" * 32), 404)
        problem(client.get("/subscribers/not-an-id"), 404)
        assert "cursor" in fields(problem(client.get("/subscribers?cursor=Zm9yZ2Vk"), 404))
        problem(client.get("/no/such/path"), 404)
        wrong = problem(client.put("/subscribers"), 405)
        assert wrong and client.put("/subscribers").headers["allow"] == "GET, HEAD, POST"
        assert fields(problem(client.get("/subscribers?limit=501&status=gone"), 422)) == {
            "limit", "status"}
        body = problem(client.post("/subscribers", json={**NEW, "region": "atlantis",
                                                         "extra": 1}), 422)
        assert fields(body) == {"region", "extra"}
        problem(client.post("/subscribers", content=b"{not json",
                            headers={"content-type": "application/json"}), 400)
        over = problem(client.get("/subscribers"), 429)
        assert over and client.get("/subscribers").headers["retry-after"] == "60"


def test_a_create_without_consent_source_mails_the_double_opt_in(api_settings: Settings,
                                                                 api: str) -> None:
    secret = token(api_settings, "subscribers:read", "subscribers:write")
    created = httpx.post(f"{api}/subscribers", json=NEW, headers=bearer(secret))
    assert created.status_code == 202 and created.json()["status"] == "pending"
    assert created.headers["location"] == f"/api/v1/subscribers/{created.json()['id']}"
    [mail] = outbox(api_settings)
    assert mail["To"].endswith("<anouk@example.org>") and "/bevestig/" in mail.get_payload(
        decode=True).decode()
    again = httpx.get(api + created.headers["location"].removeprefix("/api/v1"),
                      headers=bearer(secret))
    assert again.json()["status"] == "pending" and again.json()["topics"] == []


def test_a_create_with_consent_source_is_active_at_once(api_settings: Settings, api: str) -> None:
    secret = token(api_settings, "subscribers:write")
    body = {**NEW, "consent_source": "CRM record 4711", "consent_at": "2026-11-02T10:00:00+01:00"}
    created = httpx.post(f"{api}/subscribers", json=body, headers=bearer(secret))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "active"
    assert created.json()["topics"] == ["updates", "verdiepingen"]
    assert outbox(api_settings) == []
    with session_scope(api_settings) as session:
        person = find_by_email(session, "anouk@example.org")
        consent = session.exec(select(Subscription).where(
            Subscription.subscriber_id == person.id)).all()
    assert {(c.status, c.consent_source, c.consent_at.isoformat()) for c in consent} == {
        ("active", "token crm: CRM record 4711", "2026-11-02T09:00:00+00:00")}
    problem(httpx.post(f"{api}/subscribers", json=body, headers=bearer(secret)), 409)


@pytest.mark.parametrize("leave", ["unsubscribe", "erase"])
def test_a_create_never_brings_back_who_left(api_settings: Settings, api: str, leave: str) -> None:
    with session_scope(api_settings, write=True) as session:
        person = add_subscriber(session, "anouk@example.org")
        (unsubscribe if leave == "unsubscribe" else erase)(session, person)
    secret = token(api_settings, "subscribers:write")
    for body in (NEW, {**NEW, "consent_source": "CRM"}):
        refused = problem(httpx.post(f"{api}/subscribers", json=body, headers=bearer(secret)), 409)
        assert fields(refused) == {"email"} and "suppressed" in refused["detail"]
    assert outbox(api_settings) == []


def test_changes_follow_the_rules_and_every_write_is_audited(api_settings: Settings,
                                                             api: str) -> None:
    secret = token(api_settings, "subscribers:read", "subscribers:write", "suppressions:read",
                   "suppressions:write")
    with httpx.Client(base_url=api, headers=bearer(secret)) as client:
        made = client.post("/subscribers", json={**NEW, "consent_source": "CRM"}).json()
        path = f"/subscribers/{made['id']}"
        changed = client.patch(path, json={"name": "Anouk J.", "region": "zeeland-west-brabant",
                                           "topics": ["updates"]})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["name"], changed.json()["region"], changed.json()["topics"]) == (
            "Anouk J.", "zeeland-west-brabant", ["updates"])
        back = problem(client.patch(path, json={"topics": ["updates", "verdiepingen"]}), 409)
        assert fields(back) == {"topics"}
        left = client.post(f"{path}/unsubscribe")
        assert left.status_code == 200 and left.json()["status"] == "unsubscribed"
        problem(client.patch(path, json={"name": "X"}), 409)
        hashes = [s["address_hash"] for s in client.get("/suppressions").json()["data"]]
        assert len(hashes) == 1
        assert client.delete(path).status_code == 204
        problem(client.get(path), 404)
        added = client.post("/suppressions", json={"email": "Bram@Example.org",
                                                   "reason": "complaint"})
        again = client.post("/suppressions", json={"email": "bram@example.org",
                                                   "reason": "bounced"})
        assert (added.status_code, again.status_code) == (201, 200)
        assert again.json()["reason"] == "complaint"
    trail = [(e.actor, e.origin, e.action, e.subject) for e in events(api_settings)
             if e.action.startswith(("subscriber.", "suppression."))]
    assert [action for _, _, action, _ in trail] == [
        "subscriber.added", "subscriber.changed", "subscriber.unsubscribed", "subscriber.erased",
        "suppression.added"]
    assert {(actor, origin) for actor, origin, _, _ in trail} == {("token crm", "api 127.0.0.1")}
    assert all("example.org" not in json.dumps(e.detail) + e.subject
               for e in events(api_settings))


def test_the_cursor_walks_every_subscriber_exactly_once(api_settings: Settings, api: str) -> None:
    bulk_subscribers(api_settings, 1234, segments=[("limburg", "netwerk"),
                                                   ("oost-brabant", "werkveld"),
                                                   ("limburg", "beleidsmakers")])
    secret = token(api_settings, "subscribers:read", "suppressions:read")
    seen: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=api, headers=bearer(secret)) as client:
        while True:
            page = client.get("/subscribers", params={"limit": 100, **(
                {"cursor": cursor} if cursor else {})}).json()
            seen += [p["id"] for p in page["data"]]
            if (cursor := page["next_cursor"]) is None:
                break
        limburg = client.get("/subscribers", params={"region": "limburg", "limit": 500,
                                                     "audience": "beleidsmakers",
                                                     "topic": "verdiepingen"}).json()
        other_list = client.get("/suppressions", params={"cursor": page_cursor(client)})
    assert len(seen) == len(set(seen)) == 1234
    with session_scope(api_settings) as session:
        assert set(seen) == set(session.exec(select(Subscriber.public_id)).all())
        expected = session.exec(select(col(Subscriber.public_id)).where(
            Subscriber.region == "limburg", Subscriber.audience == "beleidsmakers")).all()
    assert sorted(p["id"] for p in limburg["data"]) == sorted(expected)
    assert len(expected) == 411 and limburg["next_cursor"] is None
    problem(other_list, 404)  # a cursor of one list opens no page of another


def page_cursor(client: httpx.Client) -> str:
    cursor = client.get("/subscribers", params={"limit": 1}).json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


def confirm_path(settings: Settings) -> str:
    [mail] = outbox(settings)
    found = re.search(r"http://testserver(/bevestig/\S+)", mail.get_payload(decode=True).decode())
    assert found
    return found.group(1)


def test_the_partner_sign_up_is_a_double_opt_in(api_settings: Settings, api: str) -> None:
    site = api.removesuffix("/api/v1")
    sent = httpx.post(f"{api}/signup", json=NEW, headers={"Origin": PARTNER})
    assert sent.status_code == 202 and sent.json()["status"] == "check-your-mail"
    assert sent.headers["access-control-allow-origin"] == PARTNER
    reader = bearer(token(api_settings, "subscribers:read"))
    [person] = httpx.get(f"{api}/subscribers", headers=reader).json()["data"]
    assert person["status"] == "pending"

    link = confirm_path(api_settings)
    with httpx.Client(base_url=site) as browser:
        page = browser.get(link)  # what a link scanner does: nothing changes
        assert httpx.get(f"{api}/subscribers/{person['id']}", headers=reader
                         ).json()["status"] == "pending"
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        assert browser.post(link, data={"csrf": csrf.group(1)}).status_code == 200
    confirmed = httpx.get(f"{api}/subscribers/{person['id']}", headers=reader).json()
    assert confirmed["status"] == "active" and confirmed["topics"] == ["updates", "verdiepingen"]
    assert confirmed["source"] == f"api signup {PARTNER}"

    known = httpx.post(f"{api}/signup", json=NEW, headers={"Origin": PARTNER})
    assert (known.status_code, known.json()) == (sent.status_code, sent.json())


def test_a_form_post_without_javascript_gets_the_dutch_page(api_settings: Settings,
                                                            api: str) -> None:
    form = {**NEW, "topics": ["updates", "verbeteractiviteiten"], "website": ""}
    posted = httpx.post(f"{api}/signup", data=form, headers={
        "Origin": "http://localhost:3000", "Accept": "text/html,application/xhtml+xml"})
    assert posted.status_code == 202 and posted.headers["content-type"].startswith("text/html")
    assert "Kijk in je mail" in posted.text
    assert len(outbox(api_settings)) == 1


def test_the_honeypot_answers_alike_and_does_nothing(api_settings: Settings, api: str) -> None:
    bot = httpx.post(f"{api}/signup", json={**NEW, "website": "http://spam"},
                     headers={"Origin": PARTNER})
    assert bot.status_code == 202 and bot.json()["status"] == "check-your-mail"
    assert outbox(api_settings) == []
    with session_scope(api_settings) as session:
        assert session.exec(select(Subscriber)).all() == []


def test_sign_ups_share_the_per_address_limit_of_the_sign_up_page(api_settings: Settings,
                                                                  api: str) -> None:
    answers = [httpx.post(f"{api}/signup", json={**NEW, "email": f"p{n}@example.org"},
                          headers={"Origin": PARTNER}) for n in range(11)]
    assert [a.status_code for a in answers] == [202] * 10 + [429]
    assert answers[-1].headers["retry-after"] == "600"
    assert answers[-1].headers["access-control-allow-origin"] == PARTNER  # readable by the page
    problem(answers[-1], 429)


def test_cors_answers_only_the_listed_origins(api: str) -> None:
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = httpx.options(f"{api}/signup", headers={"Origin": PARTNER, **ask})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == PARTNER
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert "content-type" in allowed.headers["access-control-allow-headers"].lower()
    for origin in ("https://evil.example", "http://partner.example", None):
        headers = {"Origin": origin} if origin else {}
        for answer in (httpx.options(f"{api}/signup", headers={**headers, **ask}),
                       httpx.post(f"{api}/signup", json=NEW, headers=headers)):
            problem(answer, 403)
            assert not [h for h in answer.headers if h.startswith("access-control-")]
    bad = httpx.post(f"{api}/signup", json={**NEW, "email": "nope"}, headers={"Origin": PARTNER})
    assert fields(problem(bad, 422)) == {"email"}
    assert bad.headers["access-control-allow-origin"] == PARTNER
