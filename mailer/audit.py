"""The audit trail: who did what, when, from where, and how it ended, in one append-only table.

Each row carries the SHA-256 of its own fields and of the row before it, so a row edited behind
mailer's back, or one taken out of the middle, breaks the chain and `verify` names it. What the
chain cannot show: the newest rows deleted, or the whole table dropped or rewritten by someone
who recomputes every hash. It proves order and integrity against casual edits, not against a
database administrator (docs/team.md).

Rows are appended in the transaction of the act they record, so an act that rolls back leaves
no row; a refusal is recorded in a transaction of its own (`record_now`). Appends are serialized
(SQLite's write lock; a transaction-level advisory lock on PostgreSQL) so that two workers never
chain to the same predecessor.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.errors import DataError
from mailer.models import AuditEvent, utcnow

ADVISORY_LOCK = 0x6D61696C  # "mail": the PostgreSQL advisory lock that orders appends


@dataclass(frozen=True)
class Actor:
    """Who acts and from where: an account (or, without accounts, a typed name) and the studio's
    client address or the command line with the OS user."""

    name: str
    origin: str


def os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def command_line(name: str = "") -> Actor:
    return Actor(name, f"command line (os user {os_user()})")


SYSTEM = Actor("mailer", "scheduler")


def _digest(row: AuditEvent) -> str:
    fields = [row.id, row.at.astimezone(dt.UTC).isoformat(), row.actor, row.origin, row.action,
              row.subject, row.outcome, row.detail, row.prev_hash]
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


def record(session: Session, actor: Actor, action: str, subject: str = "", outcome: str = "ok",
           **detail: Any) -> AuditEvent:
    """Append one row in `session`'s transaction (which must be a writing one). Call it last
    in the transaction: on PostgreSQL it holds the trail's lock until the commit, and a writer
    holding it must not then wait for a row that another writer, waiting for it, holds."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    row = AuditEvent(id=(last.id or 0) + 1 if last else 1, at=utcnow().replace(microsecond=0),
                     actor=actor.name, origin=actor.origin, action=action, subject=subject,
                     outcome=outcome, detail=json.dumps(detail, ensure_ascii=False, sort_keys=True,
                                                        default=str),
                     prev_hash=last.hash if last else "", hash="")
    row.hash = _digest(row)
    session.add(row)
    session.flush()
    return row


def record_now(settings: Settings, actor: Actor, action: str, subject: str = "",
               outcome: str = "ok", **detail: Any) -> None:
    """Append one row in a transaction of its own: for refusals and failures, whose own
    transaction rolls back."""
    with session_scope(settings, write=True) as session:
        record(session, actor, action, subject, outcome, **detail)


def events(settings: Settings, since: dt.datetime | None = None) -> list[AuditEvent]:
    """The trail, oldest first, from `since` on."""
    query = select(AuditEvent).order_by(col(AuditEvent.id))
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    with session_scope(settings) as session:
        return list(session.exec(query))


def _rows(settings: Settings, batch: int = 5000) -> Iterator[AuditEvent]:
    after = 0
    while True:
        with session_scope(settings) as session:
            rows = list(session.exec(select(AuditEvent).where(col(AuditEvent.id) > after)
                                     .order_by(col(AuditEvent.id)).limit(batch)))
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].id or after


def _missing(previous: AuditEvent | None, row: AuditEvent) -> str:
    """The rows taken out before `row`, named by id (mailer numbers rows without gaps)."""
    first, last = (previous.id or 0) + 1 if previous else 1, (row.id or 0) - 1
    if first > last:
        return ""
    ids = f"row {first} is" if first == last else f"rows {first} to {last} are"
    return f"{ids} missing before row {row.id}: removed outside mailer"


def verify(settings: Settings) -> tuple[int, list[str]]:
    """How many rows were read, and what is wrong with the chain: each row whose hash does not
    match its fields, each gap in the ids, and each break where a row's predecessor is not the
    row before it."""
    problems: list[str] = []
    previous: AuditEvent | None = None
    count = 0
    for row in _rows(settings):
        count += 1
        if row.hash != _digest(row):
            problems.append(f"row {row.id} ({row.action}, {row.at:%Y-%m-%d %H:%M:%S} UTC) does "
                            "not match its hash: it was changed outside mailer")
        if missing := _missing(previous, row):
            problems.append(missing)
        expected = previous.hash if previous else ""
        if row.prev_hash != expected:
            gap = f"after row {previous.id}" if previous else "at the start"
            problems.append(f"row {row.id} does not follow the row before it ({gap}): a row "
                            "was removed or changed there")
        previous = row
    return count, problems


class ChainBroken(DataError):
    """The audit trail was changed behind mailer's back; the message names each row."""


def verified(settings: Settings) -> int:
    """How many rows the trail has, all chained as mailer wrote them; else ChainBroken naming
    every row that was changed and every place a row was taken out."""
    count, problems = verify(settings)
    if problems:
        raise ChainBroken(f"the audit trail was changed outside mailer ({len(problems)} "
                          f"problem(s) in {count} rows):\n  " + "\n  ".join(problems))
    return count


def as_dict(row: AuditEvent) -> dict[str, Any]:
    """One row for `mailer audit --json` and the studio's audit page."""
    return {"id": row.id, "at": row.at.astimezone(dt.UTC).isoformat(), "actor": row.actor,
            "origin": row.origin, "action": row.action, "subject": row.subject,
            "outcome": row.outcome, "detail": json.loads(row.detail or "{}"), "hash": row.hash}
