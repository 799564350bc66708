"""Four eyes: with `approval_mode = "required"`, a real send or a schedule goes out only after
someone other than its creator approved it, and only with the content that was approved.

An approval records the build's source hash; editing the content afterwards makes it stale,
and the send (or the due schedule) does not start until it is approved again.

Once accounts exist the approver is a person who proved who they are (a log-in in the studio,
a password on the command line): an editor or admin holding every region the send reaches.
Without accounts, names come from `approval_staff` when that list is set; otherwise any name
given is recorded as is. Approvals and refusals are in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import getpass

from mailer.accounts.roles import Person, refusal
from mailer.audit import command_line, record, record_now
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


def person(settings: Settings, name: str | None) -> Person:
    """Without accounts: who a creator or approver is recorded as, `name`, else the login name;
    checked against the staff list when one is configured."""
    chosen = (name or "").strip()
    if not chosen:
        try:
            chosen = getpass.getuser()
        except (OSError, KeyError) as exc:
            raise ApprovalError("who are you? give your name with --by NAME") from exc
    known = staff(settings)
    if known and chosen.lower() not in (k.lower() for k in known):
        raise ApprovalError(f"{chosen!r} is not on the staff list (approval_staff: {', '.join(known)})")
    return Person(chosen, command_line().origin)


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


def approve(settings: Settings, kind: str, row_id: int, approver: Person,
            now: dt.datetime | None = None) -> Send | Schedule:
    """Approve send or schedule `row_id` for the content as it is now, as someone other than
    its creator who may approve for every region it reaches; a refusal is recorded too."""
    try:
        return _approve(settings, kind, row_id, approver, now or utcnow())
    except ApprovalError as exc:
        record_now(settings, approver, f"{kind}.refused", f"{kind} {row_id}", outcome=str(exc))
        raise


def _approve(settings: Settings, kind: str, row_id: int, approver: Person,
             now: dt.datetime) -> Send | Schedule:
    tables: dict[str, type[Send | Schedule]] = {"send": Send, "schedule": Schedule}
    with session_scope(settings, write=True) as session:
        row = session.get(tables[kind], row_id)
        if row is None:
            raise ApprovalError(f"there is no {kind} {row_id}")
        assert isinstance(row, Send | Schedule)
        if row.status not in APPROVABLE[kind] or (isinstance(row, Send) and row.snapshot_at):
            raise ApprovalError(f"{kind} {row_id} is {row.status}: only a {kind} that has not "
                                "started can be approved")
        if row.created_by and row.created_by.lower() == approver.name.lower():
            raise ApprovalError(f"{kind} {row_id} was created by {row.created_by}: someone else "
                                "must approve it (four eyes)")
        if why := refusal(approver, "approve", row.regions):
            raise ApprovalError(why)
        row.approved_by, row.approved_at = approver.name, now
        row.approved_hash = source_hash(settings, row.theme)
        if isinstance(row, Schedule):
            row.hold_reason = ""
        session.add(row)
        record(session, approver, f"{kind}.approved", f"{kind} {row_id}", theme=row.theme,
               regions=row.regions, hash=row.approved_hash)
        return row


def approval_of(row: Approval) -> dict[str, object]:
    """The approval fields of a schedule, for the send it starts."""
    return {"created_by": row.created_by, "approved_by": row.approved_by,
            "approved_at": row.approved_at, "approved_hash": row.approved_hash}
