"""The team on the command line: accounts, roles per region, four eyes on people who proved
who they are, and the lock after failed log-ins. Real CLI, real databases; passwords go in
through --password-stdin."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from click.testing import CliRunner, Result
from sqlmodel import select

from mailer.accounts import users
from mailer.cli.main import main
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Schedule, Send
from mailer.schedule.scheduler import Request, plan
from tests.conftest import outbox
from tests.test_send_cli import FORCE

PASSWORDS = {"anna": "kaneel tram vijver 71", "bert": "lantaarn-ooievaar-93",
             "eva": "pepermolen zwerft 58", "noor": "dakgoot kiwi sleutel 4",
             "carla": "zeilboot paprika 63 x"}
TEAM = (("bert", "editor", ("limburg",)), ("eva", "editor", ("limburg",)),
        ("noor", "editor", ("noord-nederland",)), ("carla", "writer", ()))


def mailer(*args: str, stdin: str | None = None) -> Result:
    """`mailer …` in the project the `invoke` fixture set up, with `stdin` as standard input."""
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def as_(name: str, *args: str, password: str | None = None) -> Result:
    """`mailer …` run by NAME, proving it with their password (or `password`) on stdin."""
    return mailer(*args, "--by", name, "--password-stdin",
                  stdin=(PASSWORDS[name] if password is None else password) + "\n")


def link_token(output: str) -> str:
    found = re.search(r"/password/(\S+)", output)
    assert found, output
    return found[1]


@pytest.fixture
def team(run, send_settings: Settings):  # type: ignore[no-untyped-def]
    """anna (admin), bert and eva (editors for Limburg), noor (editor for Noord-Nederland) and
    carla (writer, every region), each with the password they set on their one-time link."""
    first = mailer("users", "add", "anna", "--role", "admin", "--password-stdin",
                   stdin=PASSWORDS["anna"] + "\n")
    assert first.exit_code == 0, first.output
    for name, role, regions in TEAM:
        added = as_("anna", "users", "add", name, "--role", role,
                    *[word for region in regions for word in ("--region", region)])
        assert added.exit_code == 0 and "valid 24 hours" in added.output, added.output
        users.set_password(send_settings, link_token(added.output), PASSWORDS[name], "test")
    return run


def sends(settings: Settings) -> list[Send]:
    with session_scope(settings) as session:
        return list(session.exec(select(Send)))


def audit_lines(name: str = "anna") -> str:
    listed = as_(name, "audit")
    assert listed.exit_code == 0, listed.output
    return listed.output


def test_the_first_account_must_be_an_admin_with_a_strong_password(  # type: ignore[no-untyped-def]
        invoke, send_settings: Settings) -> None:
    writer = mailer("users", "add", "carla", "--role", "writer", "--password-stdin",
                    stdin=PASSWORDS["carla"] + "\n")
    assert writer.exit_code == 1 and "the first account must be an admin" in writer.output
    for weak, why in (("kort", "at least 12 characters (this one has 4)"),
                      ("wachtwoord1234", "too common or too easy to guess"),
                      ("welkomwelkom1", "too common or too easy to guess")):
        refused = mailer("users", "add", "anna", "--role", "admin", "--password-stdin",
                         stdin=weak + "\n")
        assert refused.exit_code == 1 and why in refused.output, refused.output
    assert not users.any_accounts(send_settings)

    added = mailer("users", "add", "anna", "--role", "admin", "--password-stdin",
                   stdin=PASSWORDS["anna"] + "\n")
    assert added.exit_code == 0 and "Added anna: admin for every region." in added.output
    assert "/password/" not in added.output  # she set her own password: no link
    listed = as_("anna", "users", "list")
    assert re.search(r"anna\s+admin\s+every region\s+set\s+no\s+-\s+-", listed.output), listed.output


def test_users_commands_need_an_admin_and_disable_keeps_the_account(team) -> None:  # type: ignore[no-untyped-def]
    no_password = mailer("users", "list", "--by", "anna")
    assert no_password.exit_code == 1
    assert "give anna's password on a terminal, or with --password-stdin" in no_password.output
    writer = as_("carla", "users", "add", "dirk", "--role", "writer")
    assert writer.exit_code == 1
    assert "carla is a writer: a writer may not manage accounts (that needs an admin)" in writer.output
    editor = as_("bert", "users", "disable", "carla")
    assert editor.exit_code == 1
    assert "bert is an editor: an editor may not manage accounts (that needs an admin)" in editor.output

    listed = as_("anna", "users", "list").output
    assert re.search(r"noor\s+editor\s+noord-nederland\s+set\s+no\s+-\s+-", listed), listed
    assert re.search(r"carla\s+writer\s+every region\s+set", listed)

    assert as_("anna", "users", "disable", "carla").exit_code == 0
    refused = as_("carla", "audit")
    assert refused.exit_code == 1 and "wrong name, password or code" in refused.output
    listed = as_("anna", "users", "list").output
    assert re.search(r"carla\s+writer\s+every region\s+set\s+no\s+20\d\d-\d\d-\d\d \d\d:\d\d UTC",
                     listed), listed

    last = as_("anna", "users", "set-role", "anna", "--role", "editor")
    assert last.exit_code == 1 and "anna is the only admin" in last.output
    moved = as_("anna", "users", "set-role", "bert", "--role", "editor", "--all-regions")
    assert moved.exit_code == 0 and "bert is now an editor for every region" in moved.output
    reset = as_("anna", "users", "reset", "carla")
    assert reset.exit_code == 0 and "/password/" in reset.output
    assert as_("carla", "audit").exit_code == 1  # enabled again, but her old password is gone


def test_four_eyes_on_the_command_line_by_people_who_proved_who_they_are(  # type: ignore[no-untyped-def]
        team, send_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_APPROVAL_MODE", "required")
    writer_force = as_("carla", "send", "stalking", "--region", "limburg", *FORCE[:-2])
    assert writer_force.exit_code == 1 and "a writer may not force a send" in writer_force.output
    created = as_("eva", "send", "stalking", "--region", "limburg", *FORCE[:-2])
    assert created.exit_code == 0, created.output
    assert "waits for approval by someone other than eva" in created.output
    [send] = sends(send_settings)
    assert (send.created_by, send.forced_by) == ("eva", "eva")

    own = as_("eva", "sends", "approve", "1")
    assert own.exit_code == 1 and "was created by eva: someone else must approve it" in own.output
    elsewhere = as_("noor", "sends", "approve", "1")
    assert elsewhere.exit_code == 1
    assert "noor may approve only for Noord-Nederland; this reaches Limburg" in elsewhere.output
    assert not sends(send_settings)[0].approved_by

    assert as_("bert", "sends", "approve", "1").exit_code == 0
    resumed = as_("bert", "sends", "resume", "1")
    assert "Send 1: done; 2 recipients (2 sent)" in resumed.output, resumed.output
    assert as_("bert", "sends", "resume", "1").exit_code == 0  # done: nobody twice
    delivered = sorted(message["To"] for message in outbox(send_settings))
    assert delivered == ["Jan <jan@example.org>", "Test Persoon <els@example.org>"]

    trail = audit_lines()
    for line in (r"eva \(command line \(os user \S+\)\)\s+login\s+-\s+ok",
                 r"eva .*send\.created\s+send 1", r"eva .*send\.forced\s+send 1\s+ok",
                 r"eva .*send\.refused\s+send 1\s+send 1 was created by eva",
                 r"noor .*refused\s+send 1\s+noor may approve only for Noord-Nederland",
                 r"bert .*send\.approved\s+send 1", r"bert .*send\.resumed\s+send 1"):
        assert re.search(line, trail), line


def test_a_wrong_password_acts_on_nothing_and_ten_failures_lock_the_name(  # type: ignore[no-untyped-def]
        team, send_settings: Settings) -> None:
    wrong = as_("bert", "send", "stalking", "--region", "limburg", *FORCE[:-2],
                password="lantaarn-ooievaar-94")
    assert wrong.exit_code == 1 and "wrong name, password or code" in wrong.output
    assert sends(send_settings) == []
    assert re.search(r"bert .*login\.failed\s+-\s+wrong name, password or code", audit_lines())

    for attempt in range(2, 11):
        failed = as_("bert", "send", "stalking", "--region", "limburg", *FORCE[:-2],
                     password=f"not the password {attempt}")
        assert failed.exit_code == 1
    assert "too many failed log-ins for this name" in failed.output
    right = as_("bert", "send", "stalking", "--region", "limburg", *FORCE[:-2])
    assert right.exit_code == 1 and "too many failed log-ins for this name" in right.output
    assert sends(send_settings) == []
    listed = as_("anna", "users", "list").output
    assert re.search(r"bert\s+editor\s+limburg\s+set\s+no\s+-\s+20\d\d-\d\d-\d\d \d\d:\d\d UTC",
                     listed), listed

    trail = audit_lines()
    assert len(re.findall(r"bert .*login\.failed", trail)) == 10
    assert re.search(r"bert .*login\.locked\s+-\s+locked until \d\d:\d\d UTC", trail)
    assert re.search(r"bert .*login\.refused\s+-\s+locked until", trail)
    assert re.search(r"anna .*login\s+-\s+ok", trail)

    assert as_("anna", "users", "reset", "bert").exit_code == 0  # lifts the lock
    assert "locked" not in as_("bert", "audit").output


def test_steering_a_schedule_needs_the_persons_password_and_regions(  # type: ignore[no-untyped-def]
        team, send_settings: Settings) -> None:
    due = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    [schedule] = plan(send_settings, [Request("stalking", due, ("limburg",), created_by="eva")],
                      dt.datetime.now(dt.UTC))

    unproven = as_("bert", "schedule", "cancel", str(schedule.id), password="geen wachtwoord 1")
    assert unproven.exit_code == 1
    outside = as_("noor", "schedule", "move", str(schedule.id), "--at", "2099-01-05 09:00")
    assert outside.exit_code == 1
    assert "noor may pause, resume or cancel only for Noord-Nederland" in outside.output
    with session_scope(send_settings) as session:
        row = session.get(Schedule, schedule.id)
        assert row is not None and row.status == "planned" and row.due_at.year != 2099

    moved = as_("carla", "schedule", "move", str(schedule.id), "--at", "2099-01-05 09:00")
    assert moved.exit_code == 0, moved.output
    cancelled = as_("bert", "schedule", "cancel", str(schedule.id))
    assert cancelled.exit_code == 0, cancelled.output

    trail = audit_lines()
    assert re.search(rf"mailer \(scheduler\)\s+schedule\.created\s+schedule {schedule.id}", trail)
    assert re.search(rf"noor .*refused\s+schedule {schedule.id}\s+noor may", trail)
    assert re.search(rf"carla .*schedule\.moved\s+schedule {schedule.id}\s+ok", trail)
    assert re.search(rf"bert .*schedule\.cancelled\s+schedule {schedule.id}\s+ok", trail)
