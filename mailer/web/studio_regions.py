"""The sends page's table by region: per region the next planned send or schedule, its
approval and who may give it, and the last send that went out; rows waiting for the asker's
approval first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from mailer.accounts.roles import refusal
from mailer.accounts.users import accounts, person
from mailer.builds.sources import source_hash
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Account, Schedule, Send
from mailer.schedule.scheduler import Overview
from mailer.send import approval
from mailer.taxonomy import REGIONS
from mailer.web.studio_state import Access

STARTED_LOOKED_AT = 500  # the newest started sends read for "last send" per region


@dataclass(frozen=True)
class Planned:
    """A send or schedule that has not started: when it goes, and its approval."""

    kind: str  # "send" or "schedule"
    row: Send | Schedule
    when: dt.datetime | None  # due (a schedule, a planned send) or None: when approved
    state: str  # why it waits for an approval, or who approved it ("" without four eyes)
    waiting: bool  # it waits for an approval
    approvers: str  # who may give it, while it waits
    mine: bool  # the asker may give it

    @property
    def order(self) -> tuple[dt.datetime, int]:
        return (self.when or self.row.created_at, self.row.id or 0)


@dataclass(frozen=True)
class RegionRow:
    slug: str
    next: Planned | None
    more: int  # planned after `next`
    mine: int  # waiting for the asker's approval, `next` included
    last: Send | None  # the newest send that started


def reaches(regions: Sequence[str], slug: str) -> bool:
    return not regions or slug in regions


def may_approve(who: Access, row: Send | Schedule) -> bool:
    """Whether the asker may approve `row`: in their regions and not their own; without
    accounts anyone may try (the library checks the name against the creator)."""
    if who.person is None:
        return not who.accounts
    own = (row.created_by or "").lower() == who.person.name.lower()
    return not own and refusal(who.person, "approve", row.regions) == ""


def approvers(settings: Settings, team: list[Account], row: Send | Schedule) -> str:
    """Who may approve `row`: the editors and admins holding each region it reaches, but not
    its creator; without accounts, the staff list or anyone, but not the creator."""
    creator = (row.created_by or "").lower()
    if not team:
        names = [name for name in approval.staff(settings) if name.lower() != creator]
        return ", ".join(names) if names else "anyone but the creator"
    names = [a.name for a in team if a.disabled_at is None and a.name_key != creator
             and refusal(person(a, ""), "approve", row.regions) == ""]
    return ", ".join(names) if names else "nobody: no editor holds every region it reaches"


def _planned_sends(settings: Settings) -> tuple[list[Send], list[Send]]:
    """The sends that have not started, and the newest ones that have."""
    with session_scope(settings) as session:
        waiting = list(session.exec(select(Send).where(
            col(Send.status).in_(approval.APPROVABLE["send"]), col(Send.snapshot_at).is_(None))))
        started = list(session.exec(select(Send).where(col(Send.snapshot_at).is_not(None))
                                    .order_by(col(Send.snapshot_at).desc(), col(Send.id).desc())
                                    .limit(STARTED_LOOKED_AT)))
    return waiting, started


def _planned(settings: Settings, who: Access, team: list[Account], kind: str,
             row: Send | Schedule, when: dt.datetime | None, held: str) -> Planned:
    needed = approval.required(settings)
    state = (held or approval.describe(row)) if needed else ""
    return Planned(kind, row, when, state, bool(held),
                   approvers(settings, team, row) if held else "",
                   bool(held) and may_approve(who, row))


def planned(settings: Settings, who: Access, schedules: list[Overview], sends: list[Send],
            team: list[Account]) -> list[Planned]:
    """Every schedule and send that can still start, soonest first."""
    hashes: dict[str, str] = {}
    found = [_planned(settings, who, team, "schedule", o.schedule, o.schedule.due_at,
                      o.approval if o.held else "")
             for o in schedules if o.status in approval.APPROVABLE["schedule"]]
    for send in sends:
        held = ""
        if approval.required(settings):
            if send.theme not in hashes:
                hashes[send.theme] = source_hash(settings, send.theme)
            held = approval.problem(settings, send, hashes[send.theme])
        found.append(_planned(settings, who, team, "send", send, send.planned_for, held))
    return sorted(found, key=lambda p: p.order)


def region_rows(settings: Settings, who: Access, schedules: list[Overview]
                ) -> tuple[list[RegionRow], list[Planned]]:
    """One row per region, those with approvals waiting for the asker first; and every
    planned send and schedule."""
    waiting, started = _planned_sends(settings)
    team = accounts(settings) if who.accounts else []
    found = planned(settings, who, schedules, waiting, team)
    rows = []
    for slug in REGIONS:
        here = [p for p in found if reaches(p.row.regions, slug)]
        last = next((s for s in started if reaches(s.regions, slug)), None)
        rows.append(RegionRow(slug, here[0] if here else None, max(len(here) - 1, 0),
                              sum(p.mine for p in here), last))
    return sorted(rows, key=lambda r: r.mine == 0), found  # stable: REGIONS order otherwise

