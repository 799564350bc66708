"""`mailer schedule` and `mailer calendar` as a person uses them, on the project's SQLite file."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlmodel import select

from mailer.cli.main import main
from mailer.db import session_scope
from mailer.models import Schedule

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def local(days: float) -> str:
    """A time `days` from now as written on the command line, in Amsterdam."""
    when = dt.datetime.now(AMSTERDAM) + dt.timedelta(days=days)
    return when.strftime("%Y-%m-%d %H:%M")


def mailer(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def schedules(project) -> list[Schedule]:
    with session_scope(project) as session:
        return list(session.exec(select(Schedule).order_by(Schedule.id)))


@pytest.fixture
def calendar(project):
    """Write content/calendar.yaml from text."""

    def write(text: str) -> None:
        (project.content / "calendar.yaml").write_text(text, encoding="utf-8")

    return write


def test_plan_list_move_and_cancel(project):
    planned = mailer("schedule", "stalking", "--at", local(3), "--region", "oost-nederland")
    assert planned.exit_code == 0, planned.output
    assert planned.output.startswith("Planned schedule 1: stalking for oost-nederland; every audience")
    assert "0 recipients now" in planned.output
    assert mailer("schedule", "add", "actieoverleg", "--at", "2030-01-15 09:30+01:00",
                  "--audience", "beleidsmakers").exit_code == 0
    listed = mailer("schedule", "list").output
    assert "oost-nederland; every audience" in listed and "every region; beleidsmakers" in listed
    assert "Tue 2030-01-15 09:30 CET" in listed and listed.count("planned") == 2

    moved = mailer("schedule", "move", "1", "--at", "2030-02-05 09:00")
    assert moved.output == "Moved schedule 1 (stalking) to Tue 2030-02-05 09:00 CET.\n"
    assert mailer("schedule", "cancel", "2").exit_code == 0
    again = mailer("schedule", "cancel", "2")
    assert again.exit_code == 1 and "schedule 2 is cancelled: nothing to change" in again.output
    assert [(s.status, s.due_at) for s in schedules(project)] == [
        ("planned", dt.datetime(2030, 2, 5, 8, 0, tzinfo=dt.UTC)),
        ("cancelled", dt.datetime(2030, 1, 15, 8, 30, tzinfo=dt.UTC))]


@pytest.mark.parametrize("args, message", [
    (["stalking", "--at", "volgende week"], "cannot read the time 'volgende week'"),
    (["stalking", "--at", local(-1)], "is in the past"),
    (["onbekend", "--at", local(3)], "theme 'onbekend' has no content yet"),
    (["stalking", "--at", local(3), "--region", "atlantis"], "unknown region 'atlantis'"),
    (["stalking", "--at", local(3), "--audience", "pers"], "unknown audience 'pers'"),
])
def test_bad_requests_are_refused_and_plan_nothing(project, args, message):
    result = mailer("schedule", *args)
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output
    assert schedules(project) == []


def test_moving_to_the_past_or_an_unknown_schedule_is_refused(project):
    mailer("schedule", "stalking", "--at", local(3))
    assert "is in the past" in mailer("schedule", "move", "1", "--at", local(-0.5)).output
    result = mailer("schedule", "move", "7", "--at", local(3))
    assert result.exit_code == 1 and "there is no schedule 7" in result.output


def test_the_real_calendar_is_valid(project):
    result = mailer("calendar", "check")
    assert result.exit_code == 0, result.output
    assert "every theme builds" in result.output


def test_calendar_apply_plans_each_entry_once(project, calendar):
    soon, later = local(3), local(4)  # once: read again after a minute turns, they would differ
    calendar(f"""mailings:
  - id: stalking-oost
    theme: stalking
    at: "{soon}"
    regions: [oost-nederland]
  - id: stalking-rest
    theme: stalking
    at: "{local(10)}"
    audiences: [netwerk, werkveld]
    note: een week later
  - id: vorig-jaar
    theme: actieoverleg
    at: "{local(-300)}"
""")
    first = mailer("calendar", "apply")
    assert first.exit_code == 0, first.output
    assert "Planned schedule 1: stalking-oost (stalking" in first.output
    assert "In the past, not planned: vorig-jaar" in first.output
    assert first.output.endswith("2 planned, 0 already planned, 1 in the past.\n")
    second = mailer("calendar", "apply")
    assert second.output.endswith("0 planned, 2 already planned, 1 in the past.\n")
    assert [(s.calendar_key, s.audiences, s.note) for s in schedules(project)] == [
        ("stalking-oost", [], ""), ("stalking-rest", ["netwerk", "werkveld"], "een week later")]

    calendar((project.content / "calendar.yaml").read_text().replace(soon, later))
    changed = mailer("calendar", "apply").output
    assert "the calendar now says" in changed and "mailer schedule move 1 --at" in changed


def test_calendar_check_and_schedule_list_show_the_approval_and_why_a_schedule_was_held(
        project, calendar, monkeypatch):
    calendar(f"""mailings:
  - id: oost
    theme: stalking
    at: "{local(3)}"
    regions: [oost-nederland]
  - id: limburg
    theme: stalking
    at: "{local(3)}"
    regions: [limburg]
""")
    assert mailer("calendar", "apply").exit_code == 0
    calendar((project.content / "calendar.yaml").read_text()
             + f'  - id: later\n    theme: stalking\n    at: "{local(30)}"\n')
    checked = mailer("calendar", "check").output
    assert "\noost: schedule 1, planned; approval not required\n" in checked
    assert "\nlater: not planned yet (`mailer calendar apply`)\n" in checked

    monkeypatch.setenv("MAILER_APPROVAL_MODE", "required")
    assert mailer("schedule", "approve", "1", "--by", "bert").exit_code == 0
    with session_scope(project, write=True) as session:  # what the scheduler records when it holds
        held = session.get(Schedule, 2)
        held.hold_reason = "placeholders fail"
    checked = mailer("calendar", "check")
    assert checked.exit_code == 0, checked.output
    assert re.search(r"\noost: schedule 1, planned; created by an unknown person at [0-9-]+ [0-9:]+ "
                     r"UTC; approved by bert at [0-9-]+ [0-9:]+ UTC\n", checked.output), checked.output
    assert ("\nlimburg: schedule 2, planned; not approved yet (approval is required); "
            "held: placeholders fail\n") in checked.output
    listed = mailer("schedule", "list").output
    assert "planned, held" in listed and "held: placeholders fail" in listed


def test_a_calendar_with_a_yaml_error_names_file_and_line(project, calendar):
    calendar("mailings:\n  - id: a\n    theme: stalking\n    at: [2026\n")
    for command in ("check", "apply"):
        result = mailer("calendar", command)
        assert result.exit_code == 1
        assert result.output.startswith("error: content/calendar.yaml:5: YAML error:")
    assert schedules(project) == []


def test_calendar_entries_with_problems_are_located_and_plan_nothing(project, calendar):
    broken = project.content / "kapot"
    shutil.copytree(project.content / "stalking", broken)
    block = broken / "20-puzzel-leggen-in-de-regio.md"
    block.write_text(block.read_text().replace("type: interview", "type: podcast"))
    duplicate_at = local(5)  # once: read again after a minute turns, it would differ
    calendar(f"""mailings:
  - id: goed
    theme: stalking
    at: "{local(3)}"
  - id: kapot
    theme: kapot
    at: "{local(3)}"
  - id: later
    theme: kindermishandeling
    at: "{local(60)}"
    regions: [atlantis]
  - id: goed
    theme: stalking
    at: "{duplicate_at}"
""")
    duplicate = mailer("calendar", "check")
    assert duplicate.exit_code == 1
    assert "content/calendar.yaml:12: id 'goed' is already used on line 2" in duplicate.output

    calendar((project.content / "calendar.yaml").read_text().replace("- id: goed\n    theme: stalking\n"
                                                                     f'    at: "{duplicate_at}"', ""))
    for command in ("check", "apply"):
        result = mailer("calendar", command)
        assert result.exit_code == 1, result.output
        assert ("content/calendar.yaml:5: kapot: theme 'kapot' does not build: "
                "content/kapot/20-puzzel-leggen-in-de-regio.md:2: unknown block type 'podcast'"
                in result.output)
        assert ("content/calendar.yaml:8: later: theme 'kindermishandeling' has no content yet"
                in result.output)
        assert "content/calendar.yaml:8: later: unknown region 'atlantis'" in result.output
        assert "goed" not in result.output
    assert result.output.endswith("nothing planned\n")
    assert schedules(project) == []


@pytest.mark.parametrize("entry, message", [
    ("  - id: x\n    theme: stalking\n", "content/calendar.yaml:2: missing field 'at'"),
    ("  - id: x\n    theme: stalking\n    at: morgen\n", "content/calendar.yaml:2: cannot read the time"),
    ("  - id: x\n    theme: stalking\n    at: 2030-01-01 09:00\n    regio: [limburg]\n",
     "content/calendar.yaml:2: unknown field 'regio'"),
    ("  - id: x\n    theme: stalking\n    at: 2030-01-01 09:00\n    regions: limburg\n",
     "content/calendar.yaml:2: field 'regions' must be a list of slugs"),
    ("  - stalking\n", "content/calendar.yaml:2: an entry must be a mapping"),
])
def test_malformed_entries_are_located(project, calendar, entry, message):
    calendar("mailings:\n" + entry)
    result = mailer("calendar", "apply")
    assert result.exit_code == 1 and message in result.output
    assert schedules(project) == []
