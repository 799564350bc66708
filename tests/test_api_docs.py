"""The API's document, its page and the partners' form; the token commands; the read-only
endpoints after a real send; and the settings of the API."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from mailer import addresses
from mailer.accounts import api_tokens, users
from mailer.api.app import API
from mailer.api.signup import snippet
from mailer.api.validation import EMAIL_PATTERN
from mailer.audit import command_line, events
from mailer.cli.main import main
from mailer.config import Settings, load_settings
from mailer.errors import ConfigError
from mailer.web.app import create_app
from tests.browser import serve
from tests.test_api import PARTNER, bearer, token
from tests.test_routes import routes

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def filled(path: str) -> str:
    return path.replace("{public_id}", "0" * 32).replace("{send_id}", "1").replace("{theme}", "x")


def test_every_route_is_in_the_document_and_every_documented_route_answers(
        settings: Settings) -> None:
    """Every method of every path is tried on the live app: the documented ones are taken,
    every other is answered 405, and the app has no API route the document lacks."""
    documented = {(path, method.upper()) for path, methods in API.document["paths"].items()
                  for method in methods}
    app = create_app(replace(settings, api_signup_origins=PARTNER))
    mount = next(r for r in routes(app) if getattr(r, "path", "") == "/api/v1")
    routed = {r.path for r in mount.routes} - {"/{rest:path}"}
    assert routed == {path for path, _ in documented}
    taken = set()
    with serve(app) as base:
        for path in routed:
            for method in METHODS:
                answer = httpx.request(method, f"{base}/api/v1{filled(path)}",
                                       headers={"Origin": PARTNER})
                if answer.status_code != 405:
                    taken.add((path, method))
                else:
                    assert set(answer.headers["allow"].split(", ")) - {"HEAD"} == {
                        m for p, m in documented if p == path}
    assert taken == documented


def test_the_document_is_openapi_3_1_and_names_each_operations_scope() -> None:
    doc = API.document
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/api/v1"}]
    operations = [op for methods in doc["paths"].values() for op in methods.values()]
    assert len({op["operationId"] for op in operations}) == len(operations) == 18
    for op in operations:
        if op["security"]:
            assert op["x-scope"] in api_tokens.SCOPES and op["x-scope"] in op["description"]
            assert {"401", "403", "429"} <= set(op["responses"])
        for status, answer in op["responses"].items():
            if int(status) >= 400:
                assert list(answer["content"]) == ["application/problem+json"]
    assert {op["x-scope"] for op in operations if "x-scope" in op} == set(api_tokens.SCOPES)


def test_the_docs_page_lists_every_endpoint_without_scripts(settings: Settings) -> None:
    with serve(create_app(settings)) as base:
        page = httpx.get(f"{base}/api/v1/docs")
        served = httpx.get(f"{base}/api/v1/openapi.json").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert served == json.loads(json.dumps(API.document))
    tree = lxml_html.fromstring(page.text)
    assert tree.xpath("//script") == []
    anchors = set(tree.xpath("//h2/@id"))
    assert {op["operationId"] for methods in served["paths"].values()
            for op in methods.values()} <= anchors
    assert {f"problem-{slug}" for slug in ("unauthorized", "forbidden", "not-found", "conflict",
                                           "invalid", "too-many-requests")} <= set(
        tree.xpath("//dt/@id"))
    assert "&lt;form method=&#34;post&#34; action=&#34;http://testserver/api/v1/signup" in page.text


def snippet_form(settings: Settings) -> lxml_html.HtmlElement:
    [form] = lxml_html.fragments_fromstring(snippet(settings))
    return form


def test_the_partner_form_is_accessible_and_works_without_javascript(settings: Settings) -> None:
    form = snippet_form(replace(settings, public_base_url="https://nieuws.example.nl"))
    assert (form.get("method"), form.get("action")) == (
        "post", "https://nieuws.example.nl/api/v1/signup")
    assert form.xpath("//script") == [] and form.get("onsubmit") is None
    labelled = set(form.xpath("//label/@for"))
    for field in form.xpath("//input[@type!='checkbox'] | //select"):
        assert field.get("id") in labelled, field.get("name")
    [fieldset] = form.xpath("//fieldset")
    assert fieldset.xpath("legend/text()") and len(fieldset.xpath(".//input[@type='checkbox']")) == 3
    assert all(box.getparent().tag == "label" for box in fieldset.xpath(".//input"))
    [trap] = form.xpath("//input[@name='website']")
    hidden = trap.getparent()
    assert trap.get("tabindex") == "-1" and trap.get("autocomplete") == "off"
    assert hidden.get("aria-hidden") == "true" and "left:-10000px" in hidden.get("style")


def test_the_form_in_the_docs_is_the_one_the_docs_page_shows() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    shown = text.split("```html\n", 1)[1].split("```", 1)[0]
    assert shown == snippet(Settings())


def test_the_partner_form_as_a_browser_posts_it_signs_up(settings: Settings) -> None:
    configured = replace(settings, api_signup_origins=PARTNER)
    form = snippet_form(configured)
    values = {"email": "anouk@example.org", "region": "limburg", "audience": "werkveld"}
    data: dict[str, str | list[str]] = {name: values.get(name, "") for name in form.xpath(
        "//input[@type!='checkbox']/@name | //select/@name")}
    data["topics"] = [box.get("value") for box in form.xpath("//input[@checked]")]
    with serve(create_app(configured)) as base:
        posted = httpx.post(base + "/api/v1/signup", data=data,
                            headers={"Origin": PARTNER, "Accept": "text/html"})
    assert posted.status_code == 202 and "Kijk in je mail" in posted.text


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.from_regex(EMAIL_PATTERN, fullmatch=True).filter(lambda a: len(a) <= 254))
def test_every_address_the_schema_allows_is_one_mailer_takes(address: str) -> None:
    assert addresses.problem(addresses.normalise(address)) is None


def test_the_address_pattern_refuses_what_mailer_refuses() -> None:
    for address in ("a@b", "a@b.test", "A@B.LOCAL", "a@x--y.nl", ".a@b.nl", "a b@c.nl",
                    "a@b.nl\n"):
        assert not re.search(EMAIL_PATTERN[:-1] + r"\Z", address), address


def run_cli(*args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


def test_token_commands_print_once_list_and_revoke(invoke, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    added = invoke("tokens", "add", "crm-noord", "--scope", "subscribers:read",
                   "--scope", "sends:read", "--by", "anna")
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    assert secret.startswith("mlr_") and len(secret) > 40
    assert secret not in invoke("tokens", "list").output
    [listed] = json.loads(invoke("tokens", "list", "--json").output)
    assert listed["name"] == "crm-noord" and listed["scopes"] == ["subscribers:read", "sends:read"]
    assert listed["revoked_at"] is None and listed["created_by"] == "anna"
    assert invoke("tokens", "add", "crm-noord", "--scope", "sends:read").exit_code == 1
    assert invoke("tokens", "revoke", "crm-noord", "--by", "anna").exit_code == 0
    assert json.loads(invoke("tokens", "list", "--json").output)[0]["revoked_at"]
    assert [(e.actor, e.action, e.subject) for e in events(send_settings)] == [
        ("anna", "token.added", "token crm-noord"), ("anna", "token.revoked", "token crm-noord")]


def test_once_accounts_exist_only_an_admin_manages_tokens(invoke, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    invoke("tokens", "list")  # sets the environment for the commands below
    password = "paars-fietsbel-korenmolen-42"
    users.add(send_settings, command_line("setup"), "anna", "admin", password=password)
    users.add(send_settings, command_line("setup"), "wim", "editor", password=password)
    code, output = run_cli("tokens", "add", "crm", "--scope", "sends:read", "--by", "wim",
                           "--password-stdin", stdin=password + "\n")
    assert code == 1 and "wim is an editor" in output and "manage accounts" in output
    code, output = run_cli("tokens", "add", "crm", "--scope", "sends:read", "--by", "anna",
                           "--password-stdin", stdin="wrong\n")
    assert code == 1 and api_tokens.tokens(send_settings) == []
    code, output = run_cli("tokens", "add", "crm", "--scope", "sends:read", "--by", "anna",
                           "--password-stdin", stdin=password + "\n")
    assert code == 0 and output.strip().splitlines()[-1].startswith("mlr_")


def test_sends_schedules_and_mailings_after_a_real_send(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    sent = run("send", "stalking", "--region", "limburg", "--offline", "--force", "--reason",
               "test", "--by", "tester")
    send_id = int(re.search(r"Send (\d+): done", sent.output).group(1))  # type: ignore[union-attr]
    assert run("schedule", "add", "stalking", "--at", "2030-01-15 09:30+01:00", "--region",
               "limburg", "--by", "tester").exit_code == 0
    secret = token(send_settings, "sends:read", "schedules:read", "mailings:read")
    with serve(create_app(send_settings)) as base, httpx.Client(
            base_url=base + "/api/v1", headers=bearer(secret)) as client:
        [listed] = client.get("/sends").json()["data"]
        one = client.get(f"/sends/{send_id}").json()
        report = client.get(f"/sends/{send_id}/report").json()
        [planned] = client.get("/schedules").json()["data"]
        [mailing] = client.get("/mailings").json()["data"]
        stalking = client.get("/mailings/stalking").json()
        missing = client.get("/mailings/nothing-built")
    assert listed == one and one["theme"] == "stalking" and one["status"] == "done"
    assert report["total"] == 2 and report["counts"] == {"sent": 2}
    assert set(report["segments"]) == {"limburg/netwerk", "limburg/beleidsmakers"}
    assert (planned["theme"], planned["status"], planned["regions"]) == (
        "stalking", "planned", ["limburg"])
    assert planned["due_at"] == "2030-01-15T08:30:00+00:00"
    assert mailing == stalking and mailing["theme"] == "stalking"
    assert sum(len(v["segments"]) for v in mailing["variants"]) == 30
    assert missing.status_code == 404


def test_signup_origins_must_be_https_origins(tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").write_text(
        '[api]\nsignup_origins = ["https://www.veiligthuis.nl", "http://localhost:8080"]\n'
        "requests_per_minute = 120\n", encoding="utf-8")
    loaded = load_settings(tmp_path, environ={})
    assert loaded.api_signup_origins == "https://www.veiligthuis.nl,http://localhost:8080"
    assert loaded.api_requests_per_minute == 120
    for bad in ("http://www.veiligthuis.nl", "https://www.veiligthuis.nl/aanmelden", "veiligthuis.nl"):
        with pytest.raises(ConfigError, match="MAILER_API_SIGNUP_ORIGINS: .*(origin|https)"):
            load_settings(tmp_path, environ={"MAILER_API_SIGNUP_ORIGINS": bad})
    with pytest.raises(ConfigError, match="MAILER_API_REQUESTS_PER_MINUTE: must be at least 1"):
        load_settings(tmp_path, environ={"MAILER_API_REQUESTS_PER_MINUTE": "0"})
