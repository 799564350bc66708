"""`--json` on the commands that list or show: one JSON document on the standard output and
nothing else there, in the shapes docs/json.md gives, with the real values of real runs on
both databases."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from mailer.bounces import imap
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Subscriber
from tests.mailservers import PASSWORD, Dovecot
from tests.test_bounce_mailbox import (
    BOUNCES,
    MAILDIR,
    append,
    count,
    letter,
    start_dovecot,
    unsubscribe_mail,
)
from tests.test_bounces_db import Sent, bounce_of, send_twice, write
from tests.test_cli_schedule import AMSTERDAM, local
from tests.test_send_cli import FORCE
from tests.test_team_cli import PASSWORDS, as_, mailer

PUBLIC_ID = re.compile(r"[0-9a-f]{32}")


def document(result: Result) -> Any:
    """The command's standard output, which must be exactly one JSON document."""
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def utc(text: str) -> dt.datetime:
    """An ISO 8601 time with its offset, which is UTC's."""
    moment = dt.datetime.fromisoformat(text)
    assert moment.utcoffset() == dt.timedelta(0), text
    return moment


def test_sends_list_and_show(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert document(run("sends", "list", "--json")) == []
    before = dt.datetime.now(dt.UTC)
    assert run("send", "stalking", "--region", "limburg", *FORCE).exit_code == 0

    [send] = document(run("sends", "list", "--json"))
    assert {k: send[k] for k in ("id", "theme", "topic", "regions", "audiences", "status",
                                 "total", "counts", "created_by", "forced_by", "approved_at")} == {
        "id": 1, "theme": "stalking", "topic": "verdiepingen", "regions": ["limburg"],
        "audiences": [], "status": "done", "total": 2, "counts": {"sent": 2},
        "created_by": "tester", "forced_by": "tester", "approved_at": None}
    assert send["forced_reason"] == "example text accepted for this test"
    assert send["forced_checks"] and all(line.startswith("placeholders: ")
                                         for line in send["forced_checks"])
    assert before <= utc(send["created_at"]) <= utc(send["finished_at"]) <= dt.datetime.now(dt.UTC)

    report = tmp_path / "report.html"
    shown = run("sends", "show", "1", "--json", "--html", str(report))
    assert shown.stderr == f"Wrote {report}\n" and report.read_text().startswith("<!")
    found = document(shown)
    assert found["send"] == {k: v for k, v in send.items() if k not in ("total", "counts")}
    assert (found["total"], found["counts"], found["classes"], found["errors"], found["alarm"]) == (
        2, {"sent": 2}, {}, [], "")
    assert found["segments"] == {"limburg/beleidsmakers": {"sent": 1},
                                 "limburg/netwerk": {"sent": 1}}
    assert found["approval"].startswith("created by tester at ")

    missing = run("sends", "show", "7", "--json")  # an error, not a document
    assert (missing.exit_code, missing.stdout) == (1, "") and "no send with id 7" in missing.stderr


def amsterdam(written: str) -> str:
    """What `local()` wrote, as the UTC time a document gives."""
    moment = dt.datetime.strptime(written, "%Y-%m-%d %H:%M").replace(tzinfo=AMSTERDAM)
    return moment.astimezone(dt.UTC).isoformat()


def test_schedule_list_and_calendar_check(run, send_settings: Settings,  # type: ignore[no-untyped-def]
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert document(run("schedule", "list", "--json")) == []
    soon, later = local(3), local(30)
    calendar = send_settings.content / "calendar.yaml"
    calendar.write_text(f"""mailings:
  - id: limburg
    theme: stalking
    at: "{soon}"
    regions: [limburg]
    note: eerst Limburg
  - id: vorig-jaar
    theme: stalking
    at: "{local(-300)}"
""", encoding="utf-8")
    assert run("calendar", "apply").exit_code == 0
    with calendar.open("a", encoding="utf-8") as file:
        file.write(f'  - id: later\n    theme: stalking\n    at: "{later}"\n')

    checked = document(run("calendar", "check", "--json"))
    assert (checked["ok"], checked["problems"]) == (True, [])
    entries = {entry.pop("key"): entry for entry in checked["entries"]}
    assert list(entries) == ["limburg", "vorig-jaar", "later"]
    assert entries["limburg"] == {
        "line": 2, "theme": "stalking", "due_at": amsterdam(soon), "regions": ["limburg"],
        "audiences": [], "note": "eerst Limburg", "upcoming": True,
        "schedule": {"id": 1, "status": "planned", "approval": "", "hold": ""}}
    assert [(e["line"], e["upcoming"], e["schedule"]) for e in list(entries.values())[1:]] == [
        (7, False, None), (10, True, None)]

    [row] = document(run("schedule", "list", "--json"))
    assert row == {"id": 1, "theme": "stalking", "regions": ["limburg"], "audiences": [],
                   "due_at": amsterdam(soon), "status": "planned", "recipients": 2,
                   "send_id": None, "note": "eerst Limburg", "calendar_key": "limburg",
                   "created_by": "", "approved_by": "", "approved_at": None, "approval": "",
                   "held": False, "hold": ""}

    monkeypatch.setenv("MAILER_APPROVAL_MODE", "required")
    [row] = document(run("schedule", "list", "--json"))
    assert (row["approval"], row["held"]) == ("not approved yet (approval is required)", True)
    assert run("schedule", "approve", "1", "--by", "bert").exit_code == 0
    [row] = document(run("schedule", "list", "--json"))
    assert (row["approved_by"], row["held"]) == ("bert", False)
    assert row["approval"].endswith(f"approved by bert at {utc(row['approved_at']):%Y-%m-%d %H:%M} UTC")
    checked = document(run("calendar", "check", "--json"))
    assert checked["entries"][0]["schedule"]["approval"] == row["approval"]

    with calendar.open("a", encoding="utf-8") as file:
        file.write(f'  - id: atlantis\n    theme: stalking\n    at: "{later}"\n    regions: [atlantis]\n')
    broken = run("calendar", "check", "--json")
    assert broken.exit_code == 1  # as without --json, and the document says why
    found = json.loads(broken.stdout)
    assert found["ok"] is False and len(found["entries"]) == 4
    [problem] = found["problems"]
    assert (problem["file"], problem["line"]) == ("content/calendar.yaml", 13)
    assert problem["message"].startswith("atlantis: unknown region 'atlantis'")


def test_subscribers_find_and_show(run) -> None:  # type: ignore[no-untyped-def]
    found = document(run("subscribers", "find", "veilig thuis", "--json"))
    assert [p["email"] for p in found] == ["els@example.org", "jan@example.org"]
    jan = found[1]
    assert PUBLIC_ID.fullmatch(jan["public_id"])
    assert {k: v for k, v in jan.items() if k != "public_id"} == {
        "email": "jan@example.org", "name": "Jan", "organisation": "Veilig Thuis",
        "region": "limburg", "audience": "netwerk", "status": "active",
        "topics": ["verdiepingen"]}
    assert document(run("subscribers", "find", "niemand", "--json")) == []

    shown = run("subscribers", "show", "jan@example.org", "--json")
    assert shown.stdout == run("subscribers", "show", "jan@example.org").stdout
    data = document(shown)
    assert (data["public_id"], data["email"], data["status"]) == (jan["public_id"],
                                                                 "jan@example.org", "active")
    [subscription] = data["subscriptions"]
    assert (subscription["topic"], subscription["status"]) == ("verdiepingen", "active")
    assert utc(subscription["consent_at"]) <= utc(data["updated_at"]) + dt.timedelta(seconds=1)


def test_partners_suggest(run) -> None:  # type: ignore[no-untyped-def]
    assert document(run("partners", "suggest", "stalking", "--json")) == []
    for title, url, region in [("Aanpak stalking", "https://www.om.nl/stalking", "oost-nederland"),
                               ("Jaarverslag", "https://www.om.nl/jaarverslag", "limburg")]:
        assert run("partners", "add", "--organisation", "Openbaar Ministerie", "--title", title,
                   "--url", url, "--date", "2026-11-02", "--region", region).exit_code == 0
    assert run("partners", "add", "--organisation", "Politie", "--title", "Stalking melden",
               "--url", "https://www.politie.nl/stalking", "--theme", "stalking").exit_code == 0
    found = document(run("partners", "suggest", "stalking", "--json"))
    assert found == [
        {"url": "https://www.politie.nl/stalking", "organisation": "Politie",
         "title": "Stalking melden", "published": None, "regions": [], "score": 8.0,
         "reasons": ["tagged with theme 'stalking'", "'stalking' in the title"]},
        {"url": "https://www.om.nl/stalking", "organisation": "Openbaar Ministerie",
         "title": "Aanpak stalking", "published": "2026-11-02", "regions": ["oost-nederland"],
         "score": 3.92, "reasons": ["'stalking' in the title",
                                    "published 2026-11-02 (29 days ago)",
                                    "regional: oost-nederland"]}]
    assert len(document(run("partners", "suggest", "stalking", "--limit", "1", "--json"))) == 1


def test_users_list(invoke) -> None:  # type: ignore[no-untyped-def]
    assert document(invoke("users", "list", "--json")) == []
    assert mailer("users", "add", "anna", "--role", "admin", "--password-stdin",
                  stdin=PASSWORDS["anna"] + "\n").exit_code == 0
    before = dt.datetime.now(dt.UTC)
    assert as_("anna", "users", "add", "bert", "--role", "editor", "--region", "limburg",
               "--totp").exit_code == 0
    assert as_("anna", "users", "disable", "bert").exit_code == 0
    anna, bert = document(as_("anna", "users", "list", "--json"))
    assert (anna["id"], anna["name"], anna["role"], anna["regions"], anna["password_set"],
            anna["totp"], anna["disabled_at"], anna["locked_until"]) == (
        1, "anna", "admin", [], True, False, None, None)
    assert (bert["id"], bert["role"], bert["regions"], bert["password_set"], bert["totp"]) == (
        2, "editor", ["limburg"], False, True)
    assert before <= utc(bert["created_at"]) <= utc(bert["disabled_at"])
    assert set(bert) == {"id", "name", "role", "regions", "password_set", "totp", "disabled_at",
                         "locked_until", "created_at"}  # never a hash or a secret
    refused = invoke("users", "list", "--json")  # an admin must prove who they are
    assert refused.exit_code == 1 and refused.stdout == ""


def bounces_and_a_letter(send_settings: Settings) -> tuple[Sent, list[bytes], str]:
    """Two sends to three people; a hard bounce of one, an unsubscribe mail of another and a
    letter; and the public id of the one who unsubscribes."""
    sent = send_twice(send_settings)
    first, _ = sent.sends
    with session_scope(send_settings) as session:
        public_id = session.get(Subscriber, sent.ids["vol@example.org"]).public_id
    return sent, [bounce_of(sent, first, "weg@example.org", "5.1.1", answer="550 5.1.1 weg"),
                  unsubscribe_mail(sent, first, "vol@example.org"), letter()], public_id


def test_bounces_process(send_settings: Settings, invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sent, messages, public_id = bounces_and_a_letter(send_settings)
    box = tmp_path / "bounces"
    for number, message in enumerate(messages, 1):
        write(box, f"{number}.eml", message)
    dry = document(invoke("bounces", "process", str(box), "--dry-run", "--json"))
    counted = {"messages": 3, "hard": 1, "soft": 0, "blocked": 0, "unmatched": 0,
               "unsubscribe_mails": 1, "ignored": 1, "already_handled": 0}
    assert (dry["dry_run"], dry["summary"]) == (True, counted)

    done = document(invoke("bounces", "process", str(box), "--json"))
    assert (done["dry_run"], done["summary"]) == (False, counted)
    bounce, unsubscribe, ignored = sorted(done["messages"], key=lambda m: m["source"])
    [finding] = bounce["findings"]
    action = finding.pop("action")
    assert (bounce["source"], bounce["outcome"], finding) == ("1.eml", "bounce", {
        "address": "weg@example.org", "kind": "hard", "status": "5.1.1", "reason": "550 5.1.1 weg",
        "message_id": sent.messages[sent.sends[0], "weg@example.org"].message_id})
    assert action.startswith("suppressed") and action.endswith(f"of send {sent.sends[0]} bounced")
    assert unsubscribe == {"source": "2.eml", "outcome": "unsubscribe", "findings": [],
                           "action": f"subscriber {public_id} unsubscribed from verdiepingen",
                           "reason": ""}
    assert ignored == {"source": "3.eml", "outcome": "ignored", "findings": [], "action": "",
                       "reason": "not a bounce"}
    again = document(invoke("bounces", "process", str(box), "--json"))
    assert again["summary"] | {"already_handled": 0} == counted | {"hard": 0, "unsubscribe_mails": 0}
    assert again["summary"]["already_handled"] == 2


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from start_dovecot(tls=True)


def test_bounces_fetch(send_settings: Settings, dovecot: Dovecot, invoke,  # type: ignore[no-untyped-def]
                       monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.rmtree(dovecot.mail / MAILDIR, ignore_errors=True)  # the other database's run
    _, messages, _ = bounces_and_a_letter(send_settings)
    append(dovecot, letter().replace(b"Vraag", b"Kapot"), *messages)
    parse = imap.parse_message

    def breaks_on_kapot(data: bytes) -> EmailMessage:
        if b"Kapot" in data:
            raise ValueError("onleesbare MIME-structuur")
        return parse(data)

    monkeypatch.setattr(imap, "parse_message", breaks_on_kapot)
    env = {"bounce_imap_url": dovecot.url(BOUNCES), "bounce_imap_password": PASSWORD}
    dry = document(invoke("bounces", "fetch", "--dry-run", "--json", **env))
    assert (dry["dry_run"], dry["moved"], dry["left"]) == (True, 0, 1)

    fetched = invoke("bounces", "fetch", "--json", **env)
    done = document(fetched)
    assert (done["dry_run"], done["moved"], done["left"], done["done_folder"]) == (
        False, 3, 1, "Verwerkt")
    assert done["summary"] == {"messages": 3, "hard": 1, "soft": 0, "blocked": 0, "unmatched": 0,
                               "unsubscribe_mails": 1, "ignored": 1, "already_handled": 0}
    assert [(m["source"], m["outcome"]) for m in done["messages"]] == [
        ("INBOX/1", "unreadable"), ("INBOX/2", "bounce"), ("INBOX/3", "unsubscribe"),
        ("INBOX/4", "ignored")]
    assert done["messages"][0]["reason"] == "ValueError: onleesbare MIME-structuur"
    assert "INBOX/2: weg@example.org hard 5.1.1 (550 5.1.1 weg) -> suppressed" in fetched.stderr
    assert (count(dovecot, "INBOX"), count(dovecot, "Verwerkt")) == (1, 3)
