"""Who may deliver a send: one worker at a time on SQLite, held by a lease in the database.

SQLite has one writer, so a second worker on a send can only get in the way; worse, a second
`resume` would put the first one's batch in flight back to pending and send it twice. The lease
names its holder (host:pid:tag) and is renewed with every batch. It passes to another worker
when its holder released it, fell silent for `send_claim_timeout`, or ran on this machine and
its process is gone. PostgreSQL keeps any number of workers (SKIP LOCKED), so there the lease is
not taken; a worker's claims carry its name, and only those of a worker that is `gone` (or
silent) are taken over.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from mailer.models import utcnow
from mailer.send.store import SendStore

_working: set[str] = set()  # this process's workers that are delivering now


class LeaseHeld(Exception):
    """Another live worker holds the send."""


def worker_name() -> str:
    """This process's name on the rows and leases it holds: host:pid:tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def gone(name: str) -> bool:
    """Whether the worker `name` ran on this machine and ended: its process no longer exists,
    or it was one of this process's workers and is not delivering any more.

    A worker on another machine cannot be looked at: only its silence tells."""
    host, _, rest = name.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return name not in _working
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def _held(send_id: int, holder: str, since: dt.datetime, renewed: dt.datetime,
                    now: dt.datetime, timeout: dt.timedelta) -> str:
    host, _, rest = holder.partition(":")
    return (f"send {send_id} is being delivered by process {rest.partition(':')[0]} on {host} "
            f"since {since:%Y-%m-%d %H:%M:%S} UTC (last batch {(now - renewed).total_seconds():.0f}"
            f" s ago); only one worker per send on SQLite. If that process is gone, its lease "
            f"expires {timeout.total_seconds():.0f} s after the last batch")


@contextmanager
def holding(engine: Engine, send_id: int, name: str, timeout: float) -> Iterator[None]:
    """Deliver as `name` for the block: on SQLite holding the send's lease (LeaseHeld when a
    live worker has it); anywhere, known to `gone` as working.

    The lease is free when its holder released it, fell silent for `timeout` seconds, or ran on
    this machine and is gone."""
    store = SendStore(engine)
    if store.leased:
        now, span = utcnow(), dt.timedelta(seconds=timeout)
        held = store.take_lease(send_id, name, now, lambda holder, renewed: (
            not holder or holder == name or renewed is None or now - renewed > span
            or gone(holder)))
        if held is not None:
            raise LeaseHeld(_held(send_id, *held, now, span))
    _working.add(name)
    try:
        yield
    finally:
        _working.discard(name)
        if store.leased:
            store.release_lease(send_id, name)
