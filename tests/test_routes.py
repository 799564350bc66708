"""After a real send, every route of the studio and of `mailer serve` answers without a server
error: a page that no other test opens is still opened here, with real path values."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from mailer import urls
from mailer.config import Settings
from mailer.db import session_scope
from mailer.subscribers.subscriptions import Profile, find_by_email, request_subscription
from mailer.subscribers.tokens import make_token
from mailer.web.app import create_app
from mailer.web.studio import create_studio
from tests.browser import serve

TOKEN = "studio-test-token"


def routes(app: Any) -> list[BaseRoute]:
    """The routes of an app, below the middleware that wraps it."""
    while not hasattr(app, "routes"):
        app = app.app
    return list(app.routes)


def tokens(settings: Settings) -> dict[str, str]:
    """A real token per token route: a pending sign-up's for /bevestig, a subscriber's else."""
    with session_scope(settings, write=True) as session:
        jan = find_by_email(session, "jan@example.org").public_id
        pending = request_subscription(session, "nieuw@example.org", Profile(
            "Nieuw", "", "limburg", "netwerk", ("updates",)), "test")
        assert pending is not None
        confirm = make_token(settings, pending.subscriber.public_id, "confirm", pending.nonce)
    return {urls.CONFIRM: confirm, urls.UNSUBSCRIBE: make_token(settings, jan, "unsubscribe"),
            urls.PREFERENCES: make_token(settings, jan, "preferences"),
            urls.MY_DATA: make_token(settings, jan, "preferences"),
            urls.ERASE: make_token(settings, jan, "preferences")}


def crawl(app: Any, values: dict[str, dict[str, str]], extra: list[str]) -> dict[str, int]:
    """Open every route of `app` under uvicorn: GET what answers GET, POST (with no form token)
    what answers only POST; a response is read no further than its status line, so the
    never-ending live-reload stream counts too. Returns the status per method and path."""
    opened: dict[str, int] = {}
    with serve(app) as base:
        for route in routes(app):
            if isinstance(route, Mount):
                targets = [("GET", path) for path in extra if path.startswith(route.path)]
            else:
                assert isinstance(route, Route) and route.methods
                method = "GET" if "GET" in route.methods else "POST"
                targets = [(method, urls.path(route.path_format, **values.get(route.path, {})))]
            for method, path in targets:
                with httpx.stream(method, base + path, timeout=30) as response:
                    opened[f"{method} {path}"] = response.status_code
    return opened


def test_no_route_of_the_studio_or_the_subscription_pages_fails(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    sent = run("send", "stalking", "--region", "limburg", "--offline", "--force", "--reason",
               "test", "--by", "tester")
    found = re.search(r"Send (\d+): done", sent.output)
    assert sent.exit_code == 0 and found, sent.output
    send_id = found.group(1)

    studio = crawl(create_studio(send_settings, "stalking", TOKEN),
                   {"/sends/{send_id:int}": {"send_id": send_id},
                    urls.SET_PASSWORD: {"token": "no-such-link"}},
                   ["/site/stalking/index.html"])
    serve_app = create_app(send_settings)
    # The API at /api/v1 is one mount here: its docs page, made from its whole document (every
    # operation of it is fuzzed by tests/test_api_fuzz.py).
    pages = crawl(serve_app, {path: {"token": token}
                              for path, token in tokens(send_settings).items()}, [urls.API_DOCS])

    failed = {page: status for page, status in {**studio, **pages}.items() if status >= 500}
    assert failed == {}
    assert len(studio) == len(routes(create_studio(send_settings, "stalking", TOKEN)))
    assert len(pages) == len(routes(serve_app))
    assert studio[f"GET /sends/{send_id}"] == 200 and studio["GET /site/stalking/index.html"] == 200
    assert set(pages.values()) == {200}, pages  # real tokens open real pages


def test_the_sends_table_names_regions_and_audiences(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    run("send", "stalking", "--region", "limburg", "--audience", "netwerk", "--audience",
        "werkveld", "--offline", "--force", "--reason", "test", "--by", "tester")
    with TestClient(create_studio(send_settings, "stalking", TOKEN),
                    base_url="http://127.0.0.1") as client:
        table = client.get("/sends").text.split("<h2>Sends</h2>")[1]
    assert "<td>Limburg / Netwerk Straf/Zorg, Werkveld buiten Straf/Zorg</td>" in table
