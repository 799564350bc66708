"""The studio once accounts exist, over real HTTP (uvicorn on loopback, httpx), on SQLite and
PostgreSQL: log-in, sessions and CSRF, roles and regions on approvals, four eyes that cannot
be faked, the lock that holds across two server workers, one-time links, the audit page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from email.utils import parseaddr

import httpx
import pytest
from sqlalchemy import text

from mailer import audit
from mailer.accounts import users
from mailer.audit import command_line
from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.send.runner import create_send, run_send
from mailer.web.studio import create_studio
from tests.browser import serve
from tests.conftest import add_subscriber, outbox

TOKEN = "studio-test-token"
PASSWORD = "kwartel-vijzel-orgel 4812"
TEAM = {"ada": ("admin", ()), "wim": ("writer", ("limburg",)),
        "anna": ("editor", ("limburg",)), "lotte": ("editor", ("limburg", "oost-brabant")),
        "noor": ("editor", ("noord-nederland",))}


@pytest.fixture
def site(send_settings: Settings) -> Settings:
    """Four eyes required, two readers in Limburg, and the team of TEAM."""
    site = replace(send_settings, approval_mode="required")
    with session_scope(site, write=True) as session:
        add_subscriber(session, "jan@example.org", "limburg", "netwerk", ("verdiepingen",), "Jan")
        add_subscriber(session, "els@example.org", "limburg", "beleidsmakers", ("verdiepingen",))
    for name, (role, regions) in TEAM.items():
        users.add(site, command_line("test"), name, role, regions, password=PASSWORD)
    return site


@pytest.fixture
def studio(site: Settings) -> Iterator[str]:
    """The studio under uvicorn on a loopback port; yields its base URL."""
    with serve(create_studio(site, "stalking", TOKEN)) as url:
        yield url


def form_token(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(base: str, name: str, password: str = PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    """A browser of its own that logged in as NAME (or tried): the client and the answer."""
    client = httpx.Client(base_url=base, timeout=60)
    token = form_token(client.get("/login").text)
    answer = client.post("/login", data={"token": token, "name": name, "password": password,
                                         "code": "", "next": "/sends"})
    return client, answer


def approve(client: httpx.Client, send_id: int) -> httpx.Response:
    token = form_token(client.get("/sends").text)
    return client.post("/sends/approve", data={"token": token, "kind": "send", "id": str(send_id)})


def actions(settings: Settings) -> list[tuple[str, str, str, str]]:
    return [(e.actor, e.action, e.subject, e.origin) for e in audit.events(settings)]


def test_four_eyes_in_the_studio_cannot_be_faked_and_the_send_goes_out_once(
        site: Settings, studio: str) -> None:
    send_id = create_send(site, "stalking", ["limburg"], record={"created_by": "anna"})

    wim, answer = log_in(studio, "wim")
    assert answer.status_code == 303 and answer.headers["location"] == "/sends"
    page = wim.get("/sends").text
    assert "Logged in as <strong>wim</strong>, writer for Limburg" in page
    assert "Approve send" not in page and "/audit" not in page
    refused = approve(wim, send_id)
    assert refused.status_code == 403
    assert "wim is a writer: a writer may not approve" in refused.text
    refused = wim.post("/sends/approve", data={"token": form_token(page), "kind": "send",
                                               "id": str(send_id), "by": "lotte"})
    assert refused.status_code == 403  # a typed name counts for nothing once accounts exist

    noor, _ = log_in(studio, "noor")
    assert "Approve send" not in noor.get("/sends").text
    refused = approve(noor, send_id)
    assert refused.status_code == 403
    assert "noor may approve only for Noord-Nederland; this reaches Limburg" in refused.text

    anna, _ = log_in(studio, "anna")
    assert "Approve send" not in anna.get("/sends").text
    refused = approve(anna, send_id)
    assert refused.status_code == 403 and "was created by anna: someone else" in refused.text

    lotte, _ = log_in(studio, "lotte")
    page = lotte.get("/sends").text
    limburg = page.split('id="region-limburg"')[1].split("</tr>")[0]
    assert f"Approve send {send_id}</button>" in limburg
    assert "Can approve: ada, lotte" in limburg  # not anna (the creator), not noor, not wim
    assert page.index('id="region-limburg"') < page.index('id="region-noord-nederland"')
    done = approve(lotte, send_id)
    assert done.status_code == 200 and "; approved by lotte at " in done.text
    assert "Approve send" not in lotte.get("/sends").text.split('id="region-limburg"')[1]

    assert run_send(site, send_id).counts == {"sent": 2}
    assert run_send(site, send_id).status == "done"
    assert sorted(parseaddr(m["To"])[1] for m in outbox(site)) == ["els@example.org",
                                                                     "jan@example.org"]
    again = approve(lotte, send_id)
    assert again.status_code == 403 and "only a send that has not started" in again.text

    trail = actions(site)
    assert ("lotte", "send.approved", f"send {send_id}", "studio 127.0.0.1") in trail
    refusals = [(actor, action) for actor, action, subject, _ in trail
                if subject == f"send {send_id}" and action == "send.refused"]
    assert refusals[:4] == [("wim", "send.refused")] * 2 + [("noor", "send.refused"),
                                                             ("anna", "send.refused")]
    assert ("lotte", "login", "", "studio 127.0.0.1") in trail


def test_an_eleventh_log_in_is_refused_with_the_right_password_in_another_worker(
        site: Settings, studio: str) -> None:
    other = replace(site, out_dir=site.root / "out-b")  # its own live build; the same database
    with serve(create_studio(other, "stalking", TOKEN)) as second:
        first, _ = log_in(studio, "nobody-here", "wrong")  # a name that is no account: the same
        assert _.status_code == 401 and "wrong name, password or code" in _.text
        client = httpx.Client(base_url=studio, timeout=60)
        token = form_token(client.get("/login").text)
        answers = [client.post("/login", data={"token": token, "name": "wim", "password": "x" * n})
                   for n in range(1, 11)]
        assert [a.status_code for a in answers] == [401] * 10
        assert "wrong name, password or code" in answers[8].text
        assert "too many failed log-ins for this name" in answers[9].text

        locked, answer = log_in(second, "wim")
        assert answer.status_code == 401 and "too many failed log-ins" in answer.text
        assert "mailer_session" not in answer.headers.get("set-cookie", "")
        assert locked.get("/sends").status_code == 303  # still not logged in
        assert log_in(second, "lotte")[1].status_code == 303  # the lock is wim's alone

    wims = [action for actor, action, _, _ in actions(site) if actor == "wim"]
    assert wims == ["login.failed"] * 10 + ["login.locked", "login.refused"]


def test_sessions_csrf_cookie_and_logout(site: Settings, studio: str) -> None:
    stranger = httpx.Client(base_url=studio, timeout=60)
    assert stranger.get("/sends").headers["location"] == "/login?next=%2Fsends"
    assert stranger.get("/site/stalking/index.html").status_code == 303
    assert stranger.post("/test-send", data={"token": TOKEN}).status_code == 401
    no_form_cookie = stranger.post("/login", data={"token": "x", "name": "wim",
                                                   "password": PASSWORD})
    assert no_form_cookie.status_code == 403

    token = form_token(stranger.get("/login").text)
    away = stranger.post("/login", data={"token": token, "name": "ada", "password": PASSWORD,
                                         "next": "//evil.example/"})
    assert away.status_code == 303 and away.headers["location"] == "/"  # never another site

    wim, answer = log_in(studio, "wim")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("mailer_session=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
    page = wim.get("/")
    assert page.status_code == 200 and TOKEN not in page.text  # the session's token instead
    csrf = form_token(page.text)
    data = {"address": "wim@example.org", "region": "limburg", "audience": "werkveld"}
    assert wim.post("/test-send", data=data).status_code == 403
    assert wim.post("/test-send", data={**data, "token": TOKEN}).status_code == 403
    sent = wim.post("/test-send", data={**data, "token": csrf})
    assert sent.status_code == 200 and "sent to wim@example.org" in sent.text

    old = wim.cookies["mailer_session"]
    assert wim.post("/logout", data={}).status_code == 403
    out = wim.post("/logout", data={"token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    replay = httpx.Client(base_url=studio, timeout=60, cookies={"mailer_session": old})
    assert replay.get("/sends").status_code == 303
    assert replay.post("/test-send", data={**data, "token": csrf}).status_code == 401
    assert ("wim", "logout") in [(actor, action) for actor, action, _, _ in actions(site)]


def test_behind_an_https_proxy_the_cookie_is_secure_and_the_client_address_recorded(
        site: Settings) -> None:
    proxied = replace(site, trusted_proxies="127.0.0.1")
    with serve(create_studio(proxied, "stalking", TOKEN)) as url:
        client = httpx.Client(base_url=url, timeout=60, headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.7"})
        page = client.get("/login")
        assert "; Secure" in page.headers["set-cookie"]  # so httpx keeps it from http: send it
        answer = client.post("/login", headers={"Cookie": page.headers["set-cookie"].split(";")[0]},
                             data={"token": form_token(page.text), "name": "ada",
                                   "password": PASSWORD})
    assert answer.status_code == 303 and "; Secure" in answer.headers["set-cookie"]
    assert ("ada", "login", "", "studio 192.0.2.7") in actions(site)


def test_a_one_time_link_sets_a_password_once_and_looking_does_not_use_it(
        site: Settings, studio: str) -> None:
    _, link, _ = users.add(site, command_line("ada"), "pia", "writer", ["limburg"])
    path = link.removeprefix(site.studio_url)
    assert path.startswith("/password/")
    browser = httpx.Client(base_url=studio, timeout=60)
    assert browser.get(path).status_code == 200
    page = browser.get(path)
    assert page.status_code == 200 and "<strong>pia</strong>" in page.text
    token = form_token(page.text)

    weak = browser.post(path, data={"token": token, "password": "wachtwoord123",
                                    "again": "wachtwoord123"})
    assert weak.status_code == 400 and "Not set: this password is too common" in weak.text
    differ = browser.post(path, data={"token": token, "password": PASSWORD, "again": "other"})
    assert differ.status_code == 400 and "the two passwords differ" in differ.text
    assert browser.post(path, data={"password": PASSWORD, "again": PASSWORD}).status_code == 403
    done = browser.post(path, data={"token": token, "password": PASSWORD, "again": PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == "/login?password=set"

    again = browser.post(path, data={"token": token, "password": PASSWORD, "again": PASSWORD})
    assert again.status_code == 404 and "this link is not valid" in again.text
    assert browser.get(path).status_code == 404
    assert log_in(studio, "pia")[1].status_code == 303


def test_the_audit_page_is_for_admins_and_shows_a_broken_chain(site: Settings, studio: str) -> None:
    wim, _ = log_in(studio, "wim")
    refused = wim.get("/audit")
    assert refused.status_code == 403 and "a writer may not read the audit trail" in refused.text
    ada, _ = log_in(studio, "ada")
    page = ada.get("/audit")
    assert page.status_code == 200 and '<a href="/audit">Audit trail</a>' in page.text
    assert "<strong>Chain intact</strong>" in page.text
    rows = page.text.split("<tbody>")[1]
    assert rows.index("<td>ada</td><td>studio 127.0.0.1</td><td>login</td>") < \
        rows.index("<td>wim</td><td>studio 127.0.0.1</td><td>login</td>")  # newest first
    with session_scope(get_engine(site), write=True) as session:
        session.execute(text("UPDATE audit_event SET outcome = 'edited' WHERE id = 3"))
    assert "<strong>Chain broken at row 3</strong>" in ada.get("/audit").text
