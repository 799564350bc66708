"""Who may deliver a send: one worker at a time on SQLite, held by a lease in the database.

SQLite has one writer, so a second worker on a send can only get in the way; worse, a second
`resume` would put the first one's batch in flight back to pending and send it twice. The lease
names its holder (host:pid:tag) and is renewed with every batch. It passes to another worker
when its holder released it, fell silent for `send_claim_timeout`, or ran on this machine and
its process is gone. PostgreSQL keeps any number of workers (SKIP LOCKED), so there the lease is
not taken.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, update
from sqlmodel import Session, col, select

from mailer.db import session_scope
from mailer.models import Send, utcnow


class LeaseHeld(Exception):
    """Another live worker holds the send."""


def worker_name() -> str:
    """This process's name on the rows and leases it holds: host:pid:tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def gone(name: str) -> bool:
    """Whether the worker `name` ran on this machine and its process no longer exists.

    A worker on another machine cannot be looked at: only its silence tells."""
    host, _, rest = name.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def _exclusive(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


def _take(session: Session, send_id: int, name: str, now: dt.datetime,
          timeout: dt.timedelta) -> None:
    row = session.exec(select(Send.lease_holder, Send.lease_since, Send.lease_renewed_at)
                       .where(Send.id == send_id)).first()
    if row is None:
        return  # no such send: the caller says so when it reads it
    holder, since, renewed = row
    free = (not holder or holder == name or renewed is None or now - renewed > timeout
            or gone(holder))
    if not free:
        host, _, rest = holder.partition(":")
        raise LeaseHeld(
            f"send {send_id} is being delivered by process {rest.partition(':')[0]} on {host} "
            f"since {since:%Y-%m-%d %H:%M:%S} UTC (last batch {(now - renewed).total_seconds():.0f}"
            f" s ago); only one worker per send on SQLite. If that process is gone, its lease "
            f"expires {timeout.total_seconds():.0f} s after the last batch")
    session.execute(update(Send).where(col(Send.id) == send_id)
                    .values(lease_holder=name, lease_since=now, lease_renewed_at=now))


@contextmanager
def holding(engine: Engine, send_id: int, name: str, timeout: float) -> Iterator[None]:
    """Hold the send's lease for the block (SQLite); raises LeaseHeld when a live worker has it."""
    if not _exclusive(engine):
        yield
        return
    with session_scope(engine, write=True) as session:
        _take(session, send_id, name, utcnow(), dt.timedelta(seconds=timeout))
    try:
        yield
    finally:
        with session_scope(engine, write=True) as session:
            session.execute(update(Send).where(col(Send.id) == send_id, Send.lease_holder == name)
                            .values(lease_holder="", lease_renewed_at=None))


def renew(session: Session, send_id: int, name: str) -> bool:
    """Record a sign of life in the claim's transaction; False when the lease was lost (another
    worker took it over after this one was silent too long): then stop."""
    if not _exclusive(session.get_bind()):
        return True
    result = session.execute(update(Send).where(col(Send.id) == send_id, Send.lease_holder == name)
                             .values(lease_renewed_at=utcnow()))
    return result.rowcount == 1  # type: ignore[attr-defined]
