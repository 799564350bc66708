"""Four eyes: with `approval_mode = "required"`, a real send or a schedule goes out only after
someone other than its creator approved it, and only with the content that was approved.

An approval records the build's source hash; editing the content afterwards makes it stale,
and the send (or the due schedule) does not start until it is approved again. Names come from
`approval_staff` when that list is set; otherwise any name given is recorded as is.
"""

from __future__ import annotations

import datetime as dt
import getpass

from mailer.builds.sources import source_hash
from mailer.config import Settings
from mailer.db import session_scope
from mailer.errors import AccessError
from mailer.models import Approval, Schedule, Send, utcnow

APPROVABLE = {"send": ("planned", "paused"), "schedule": ("planned", "missed")}


class ApprovalError(AccessError):
    """An approval that cannot be given, or a name that is not on the staff list."""


def required(settings: Settings) -> bool:
    return settings.approval_mode == "required"


def staff(settings: Settings) -> list[str]:
    return [name.strip() for name in settings.approval_staff.split(",") if name.strip()]


def person(settings: Settings, name: str | None) -> str:
    """The name a creator or approver is recorded under: `name`, else the login name; checked
    against the staff list when one is configured."""
    chosen = (name or "").strip()
    if not chosen:
        try:
            chosen = getpass.getuser()
        except (OSError, KeyError) as exc:
            raise ApprovalError("who are you? give your name with --by NAME") from exc
    known = staff(settings)
    if known and chosen.lower() not in (k.lower() for k in known):
        raise ApprovalError(f"{chosen!r} is not on the staff list (approval_staff: {', '.join(known)})")
    return chosen


def problem(settings: Settings, row: Approval, current_hash: str) -> str:
    """Why `row` may not go out now for lack of a valid approval, or ""."""
    if not required(settings):
        return ""
    if not row.approved_by:
        return "not approved yet (approval is required)"
    if row.approved_hash != current_hash:
        return (f"the approval by {row.approved_by} ({row.approved_at:%Y-%m-%d %H:%M} UTC) is "
                "stale: the content changed since")
    return ""


def describe(row: Approval) -> str:
    """Who asked for it and who approved it, when: the line a report shows."""
    created = getattr(row, "created_at", None)
    asked = (f"created by {row.created_by or 'an unknown person'}"
             + (f" at {created:%Y-%m-%d %H:%M} UTC" if created else ""))
    if not row.approved_by:
        return f"{asked}; not approved"
    return f"{asked}; approved by {row.approved_by} at {row.approved_at:%Y-%m-%d %H:%M} UTC"


def approve(settings: Settings, kind: str, row_id: int, by: str | None,
            now: dt.datetime | None = None) -> Send | Schedule:
    """Approve send or schedule `row_id` for the content as it is now, as someone other than
    its creator."""
    tables: dict[str, type[Send | Schedule]] = {"send": Send, "schedule": Schedule}
    approver = person(settings, by)
    with session_scope(settings, write=True) as session:
        row = session.get(tables[kind], row_id)
        if row is None:
            raise ApprovalError(f"there is no {kind} {row_id}")
        assert isinstance(row, Send | Schedule)
        if row.status not in APPROVABLE[kind] or (isinstance(row, Send) and row.snapshot_at):
            raise ApprovalError(f"{kind} {row_id} is {row.status}: only a {kind} that has not "
                                "started can be approved")
        if row.created_by and row.created_by.lower() == approver.lower():
            raise ApprovalError(f"{kind} {row_id} was created by {row.created_by}: someone else "
                                "must approve it (four eyes)")
        row.approved_by, row.approved_at = approver, now or utcnow()
        row.approved_hash = source_hash(settings, row.theme)
        if isinstance(row, Schedule):
            row.hold_reason = ""
        session.add(row)
        return row


def approval_of(row: Approval) -> dict[str, object]:
    """The approval fields of a schedule, for the send it starts."""
    return {"created_by": row.created_by, "approved_by": row.approved_by,
            "approved_at": row.approved_at, "approved_hash": row.approved_hash}
