"""The audit trail: what the library records (imports, erasures, the scheduler, settings that
fail at a start), `mailer audit` and its --verify against rows changed or removed in the
database behind mailer's back."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select
from starlette.testclient import TestClient

from mailer import audit
from mailer.accounts import users
from mailer.accounts.roles import Person
from mailer.audit import Actor
from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.models import Subscriber
from mailer.schedule.scheduler import Request, fire, plan, send_schedule
from mailer.send import approval
from mailer.subscribers.tokens import preferences_url
from mailer.transport.transports import MemoryTransport
from tests.conftest import add_subscriber
from tests.test_team_cli import as_

LIST = ("email,name,organisation,region,audience\n"
        "anouk@example.org,Anouk,Veilig Thuis,limburg,netwerk\n"
        "bram@example.org,Bram,Reclassering,limburg,werkveld\n")
ADMIN, WRITER = "kaneel tram vijver 71", "zeilboot paprika 63 x"


def trail(settings: Settings) -> list[dict]:
    return [audit.as_dict(row) for row in audit.events(settings)]


def public_id(settings: Settings, email: str) -> str:
    with session_scope(settings) as session:
        person = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        return person.public_id


def sql(settings: Settings, statement: str) -> None:
    with get_engine(settings).begin() as conn:
        conn.execute(text(statement))


def test_imports_and_erasures_are_recorded_without_the_address(  # type: ignore[no-untyped-def]
        invoke, send_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "limburg.csv"
    path.write_text(LIST, encoding="utf-8")
    assert invoke("lists", "import", str(path), "--topic", "verdiepingen", "--dry-run").exit_code == 0
    assert trail(send_settings) == []  # a dry run changes nothing, and records nothing
    assert invoke("lists", "import", str(path), "--topic", "verdiepingen").exit_code == 0
    [imported] = trail(send_settings)
    assert (imported["action"], imported["subject"]) == ("list.imported", "list limburg.csv")
    assert imported["origin"].startswith("command line (os user ")
    assert {k: imported["detail"][k] for k in ("file", "rows", "added", "rejected", "topic")} == {
        "file": "limburg.csv", "rows": 2, "added": 2, "rejected": 0, "topic": "verdiepingen"}

    anouk, bram = public_id(send_settings, "anouk@example.org"), public_id(send_settings, "bram@example.org")
    assert invoke("subscribers", "remove", "anouk@example.org", "--erase").exit_code == 0
    page = preferences_url(send_settings, bram).removeprefix(send_settings.public_base_url)
    from mailer.web.app import create_app

    with TestClient(create_app(send_settings, MemoryTransport()), base_url="https://testserver",
                    follow_redirects=False) as client:
        ask = client.get(page + "/wissen")
        csrf = re.search(r'name="csrf" value="([^"]+)"', ask.text)
        assert csrf, ask.text
        assert client.post(page + "/wissen", data={"csrf": csrf[1]}).status_code == 200

    events = trail(send_settings)
    erased = [(e["actor"], e["origin"].split(" (")[0], e["subject"]) for e in events
              if e["action"] == "subscriber.erased"]
    assert erased[0][1:] == ("command line", f"subscriber {anouk}")
    assert erased[1] == ("recipient", "subscription page", f"subscriber {bram}")
    listed = invoke("audit", "--json").output
    assert json.loads(listed) == json.loads(json.dumps(events))
    assert "anouk@example.org" not in listed and "bram@example.org" not in listed


def test_verify_names_a_row_edited_or_removed_in_the_database(  # type: ignore[no-untyped-def]
        invoke, send_settings: Settings) -> None:
    for n in range(5):
        audit.record_now(send_settings, Actor("anna", "test"), "send.approved", f"send {n + 1}")
    intact = invoke("audit", "--verify")
    assert intact.exit_code == 0 and intact.output == "5 rows, chain intact\n"

    sql(send_settings, "UPDATE audit_event SET outcome = 'refused' WHERE id = 3")
    edited = invoke("audit", "--verify")
    assert edited.exit_code == 1
    assert "row 3 (send.approved, 20" in edited.output and "changed outside mailer" in edited.output
    assert not re.search(r"row [1245]\b", edited.output), edited.output
    sql(send_settings, "UPDATE audit_event SET outcome = 'ok' WHERE id = 3")
    assert invoke("audit", "--verify").exit_code == 0  # the check reads the row, not a flag

    sql(send_settings, "DELETE FROM audit_event WHERE id = 3")
    removed = invoke("audit", "--verify")
    assert removed.exit_code == 1
    assert "row 3 is missing before row 4: removed outside mailer" in removed.output
    assert "row 4 does not follow the row before it (after row 2)" in removed.output
    assert "4 rows" in removed.output


def test_reading_the_trail_needs_an_admin_once_accounts_exist(  # type: ignore[no-untyped-def]
        invoke, send_settings: Settings) -> None:
    first = Actor("setup", "test")
    users.add(send_settings, first, "anna", "admin", password=ADMIN)
    users.add(send_settings, Person("anna", "test", "admin"), "carla", "writer",
              ["limburg"], password=WRITER)
    writer = as_("carla", "audit", password=WRITER)
    assert writer.exit_code == 1
    assert "carla is a writer: a writer may not read the audit trail (that needs an admin)" in writer.output
    nobody = invoke("audit", "--verify")  # no terminal to ask on, no --password-stdin
    assert nobody.exit_code == 1 and "password on a terminal, or with --password-stdin" in nobody.output

    listed = as_("anna", "audit", "--json", password=ADMIN)
    events = json.loads(listed.output)
    assert [e["action"] for e in events] == ["user.added", "user.added", "login", "refused",
                                              "login"]
    assert events[3]["outcome"].startswith("carla is a writer") and events[3]["subject"] == "audit trail"
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%d")
    later = as_("anna", "audit", "--since", tomorrow, password=ADMIN)
    assert later.exit_code == 0 and later.output == f"No events since {tomorrow}.\n"
    today = as_("anna", "audit", "--since", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
                password=ADMIN)
    assert today.output.count(" login ") >= 3 and "user.added  account carla" in today.output
    assert as_("anna", "audit", "--since", "gisteren", password=ADMIN).exit_code == 2
    assert as_("anna", "audit", "--verify", password=ADMIN).output.endswith("rows, chain intact\n")


def test_settings_that_fail_at_a_start_are_recorded_where_the_database_is(  # type: ignore[no-untyped-def]
        invoke, send_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert invoke("audit").output == "No events yet.\n"  # the database exists from here on
    refused = invoke("scheduler", auth_mfa="sometimes")
    assert refused.exit_code == 1 and "MAILER_AUTH_MFA: must be one of none, admins" in refused.output
    monkeypatch.delenv("MAILER_AUTH_MFA")
    key = tmp_path / "missing.pem"
    no_key = invoke("serve", "--port", "1", dkim_selector="s1", dkim_domain="example.org",
                    dkim_key_file=str(key))
    assert no_key.exit_code == 1 and "cannot read it" in no_key.output
    for name in ("DKIM_SELECTOR", "DKIM_DOMAIN", "DKIM_KEY_FILE"):
        monkeypatch.delenv(f"MAILER_{name}")

    elsewhere = tmp_path / "elsewhere.db"
    assert invoke("studio", "stalking", auth_mfa="sometimes",
                  database_url=f"sqlite:///{elsewhere}").exit_code == 1
    assert not elsewhere.exists()  # nothing was created to record it in

    failed = [(e["actor"], e["action"], e["subject"], e["outcome"]) for e in trail(send_settings)]
    assert [row[1:3] for row in failed] == [("settings.failed", "mailer scheduler"),
                                            ("settings.failed", "mailer serve")]
    assert failed[0][3] == "MAILER_AUTH_MFA: must be one of none, admins"
    assert f"dkim_key_file {key}: cannot read it" in failed[1][3]


@pytest.fixture
def site(send_settings: Settings) -> Settings:
    with session_scope(send_settings, write=True) as session:
        add_subscriber(session, "jan@example.org", "limburg", "netwerk", ("verdiepingen",), "Jan")
    return replace(send_settings, approval_mode="required")


def test_the_scheduler_and_the_people_around_it_are_on_the_trail(site: Settings) -> None:
    due = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    anna = Person("anna", "test")
    [schedule] = plan(site, [Request("stalking", due, ("limburg",), created_by="anna")],
                      due - dt.timedelta(days=1), anna)
    stop = threading.Event()

    def fire_now() -> str:
        return fire(site, schedule.id, functools.partial(send_schedule, site, stop),  # type: ignore[arg-type]
                    now=due + dt.timedelta(minutes=1), worker="w1", stop=stop)

    assert fire_now() == "held"
    assert fire_now() == "held"  # said once
    approval.approve(site, "schedule", schedule.id, Person("bert", "test"))  # type: ignore[arg-type]
    assert fire_now() == "done"

    events = [(e["actor"], e["action"], e["subject"]) for e in trail(site)]
    subject = f"schedule {schedule.id}"
    assert events == [("anna", "schedule.created", subject),
                      ("mailer", "schedule.held", subject),
                      ("bert", "schedule.approved", subject),
                      ("mailer", "schedule.started", subject),
                      ("mailer", "send.created", "send 1"),
                      ("mailer", "schedule.done", subject)]
    created = trail(site)[4]
    assert created["origin"] == "scheduler" and created["detail"]["created_by"] == "anna"
    assert audit.verified(site) == 6
