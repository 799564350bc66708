"""The content calendar: `content/calendar.yaml` lists the planned mailings per region.

Communications staff keep the year's plan in one file; `check` says which entries still lack
content or do not build, and `apply` turns the entries into schedules. Each entry has an id
that becomes the schedule's calendar key, so applying the calendar again plans nothing twice.
(Not named calendar.py: that would shadow the standard library's module for relative imports.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import col, select

from mailer.audit import SYSTEM, Actor
from mailer.config import Settings
from mailer.content.loader import ContentError, Problem, shown_path, yaml_problem
from mailer.db import session_scope
from mailer.models import Schedule, iso_utc, stored_id
from mailer.schedule.scheduler import (
    Overview,
    Request,
    ScheduleError,
    check_requests,
    overview,
    parse_when,
    plan,
)
from mailer.send import approval

ENTRY_FIELDS = {"id", "theme", "at", "regions", "audiences", "note"}


@dataclass(frozen=True)
class Entry:
    """One planned mailing of the calendar, with the line it starts on."""

    key: str
    request: Request
    line: int


@dataclass(frozen=True)
class Applied:
    """What `apply` did: new schedules, entries planned before (with their schedule), past ones."""

    planned: list[tuple[Entry, Schedule]]
    known: list[tuple[Entry, Schedule]]
    past: list[Entry]


def calendar_path(settings: Settings) -> Path:
    return settings.content / "calendar.yaml"


def _slugs(value: object) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _entry(item: object, line: int, settings: Settings, fail: list[str]) -> Entry | None:
    if not isinstance(item, dict):
        fail.append("an entry must be a mapping with id, theme and at")
        return None
    fail += [f"unknown field {key!r} (known: {', '.join(sorted(ENTRY_FIELDS))})"
             for key in sorted(set(item) - ENTRY_FIELDS, key=str)]
    fail += [f"missing field {key!r}" for key in ("id", "theme", "at") if not item.get(key)]
    regions, audiences = _slugs(item.get("regions")), _slugs(item.get("audiences"))
    fail += [f"field {key!r} must be a list of slugs" for key, value in
             (("regions", regions), ("audiences", audiences)) if value is None]
    if fail:
        return None
    try:
        due_at = parse_when(str(item["at"]), settings.timezone)
    except ScheduleError as exc:
        fail.append(str(exc))
        return None
    request = Request(str(item["theme"]), due_at, regions or (), audiences or (),
                      calendar_key=str(item["id"]), note=str(item.get("note") or ""))
    return Entry(str(item["id"]), request, line)


def load_calendar(settings: Settings, path: Path | None = None) -> list[Entry]:
    """Read the calendar; raise ContentError naming file and line for every problem."""
    path = path or calendar_path(settings)
    shown = shown_path(path, settings.root)
    if not path.is_file():
        raise ContentError([Problem(shown, None, "no content calendar here")])
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContentError([yaml_problem(exc, shown)]) from exc
    if node is None or not isinstance(data, dict) or not isinstance(data.get("mailings"), list):
        raise ContentError([Problem(shown, 1, "the calendar must have a list 'mailings'")])
    items = next(value for key, value in node.value if key.value == "mailings").value
    problems: list[Problem] = []
    entries: list[Entry] = []
    first: dict[str, int] = {}
    for item, item_node in zip(data["mailings"], items, strict=True):
        line = item_node.start_mark.line + 1
        fail: list[str] = []
        entry = _entry(item, line, settings, fail)
        problems += [Problem(shown, line, message) for message in fail]
        if entry is None:
            continue
        if entry.key in first:
            problems.append(Problem(shown, line, f"id {entry.key!r} is already used on line "
                                                 f"{first[entry.key]}"))
        first.setdefault(entry.key, line)
        entries.append(entry)
    if problems:
        raise ContentError(problems)
    return entries


def _located(settings: Settings, entries: Sequence[Entry], now: dt.datetime) -> list[Problem]:
    shown = shown_path(calendar_path(settings), settings.root)
    found = check_requests(settings, [e.request for e in entries], now)
    return [Problem(shown, entry.line, f"{entry.key}: {problem}")
            for entry, problems in zip(entries, found, strict=True) for problem in problems]


def check(settings: Settings, entries: Sequence[Entry], now: dt.datetime) -> list[Problem]:
    """The problems of the entries still to come: no content yet, content that does not build."""
    return _located(settings, [e for e in entries if e.request.due_at > now], now)


def apply(settings: Settings, entries: Sequence[Entry], now: dt.datetime,
          actor: Actor = SYSTEM) -> Applied:
    """Plan every upcoming entry not planned before; all of them, or none when one has a problem.
    `actor` (who applies the calendar) is recorded with each new schedule."""
    with session_scope(settings) as session:
        keys = [e.key for e in entries]
        known = {s.calendar_key: s for s in session.exec(
            select(Schedule).where(col(Schedule.calendar_key).in_(keys)))}
    todo = [e for e in entries if e.key not in known and e.request.due_at > now]
    problems = _located(settings, todo, now)
    if problems:
        raise ContentError(problems)
    schedules = plan(settings, [e.request for e in todo], now, actor)
    return Applied(planned=list(zip(todo, schedules, strict=True)),
                   known=[(e, known[e.key]) for e in entries if e.key in known],
                   past=[e for e in entries if e.key not in known and e.request.due_at <= now])


def scheduled(settings: Settings, entries: Sequence[Entry], now: dt.datetime
              ) -> list[tuple[Entry, Overview | None]]:
    """Each entry with the schedule it was planned as, as that stands now (None: not planned)."""
    rows = {row.schedule.calendar_key: row for row in overview(settings, now, reach=False)}
    return [(entry, rows.get(entry.key)) for entry in entries]


@dataclass(frozen=True)
class EntryState:
    """An entry and the schedule it was planned as, as that stands now (`row` None: not planned)."""

    entry: Entry
    row: Overview | None
    upcoming: bool
    approval: str  # with approval required: who created and approved the schedule, or why it
    # may not start; "" while not planned or when approval is not required

    def document(self) -> dict[str, Any]:
        request, row = self.entry.request, self.row
        return {"key": self.entry.key, "line": self.entry.line, "theme": request.theme,
                "due_at": iso_utc(request.due_at), "regions": list(request.regions),
                "audiences": list(request.audiences), "note": request.note,
                "upcoming": self.upcoming,
                "schedule": None if row is None else {
                    "id": stored_id(row.schedule), "status": row.status,
                    "approval": self.approval, "hold": row.hold}}


def states(settings: Settings, entries: Sequence[Entry], now: dt.datetime) -> list[EntryState]:
    """Each entry with its schedule now: its status, its approval, why it was held."""
    required = approval.required(settings)
    return [EntryState(entry, row, entry.request.due_at > now,
                       row.approval or approval.describe(row.schedule)
                       if required and row is not None else "")
            for entry, row in scheduled(settings, entries, now)]


def check_document(problems: Sequence[Problem], found: Sequence[EntryState]) -> dict[str, Any]:
    """What `mailer calendar check --json` prints: the problems and every entry's state."""
    return {"ok": not problems,
            "problems": [{"file": None if p.file is None else str(p.file), "line": p.line,
                          "message": p.message} for p in problems],
            "entries": [state.document() for state in found]}
