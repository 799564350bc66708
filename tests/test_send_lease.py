"""One worker per send on SQLite: a second resume is refused and told who holds the send; a
dead or long-silent holder's lease passes on. PostgreSQL keeps its several workers."""

from __future__ import annotations

import datetime as dt
import os
import socket

import pytest
from sqlalchemy import update
from sqlmodel import col

from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.models import Send, utcnow
from mailer.send import lease
from mailer.send import runner as sending
from mailer.transport.transports import MemoryTransport
from tests.conftest import bulk_subscribers, dead_worker

HOST = socket.gethostname()


@pytest.fixture
def send_id(send_settings: Settings) -> int:
    bulk_subscribers(send_settings, 8)
    return sending.create_send(send_settings, "stalking")


def silent_since(settings: Settings, send_id: int, holder: str, ago: float) -> None:
    """Give the lease to `holder`, whose last sign of life was `ago` seconds ago."""
    when = utcnow() - dt.timedelta(seconds=ago)
    with session_scope(settings, write=True) as session:
        session.execute(update(Send).where(col(Send.id) == send_id).values(
            lease_holder=holder, lease_since=when, lease_renewed_at=when))


def test_a_second_worker_is_refused_and_told_who_holds_the_send(
        send_settings: Settings, send_id: int, invoke) -> None:  # type: ignore[no-untyped-def]
    if not send_settings.database_url.startswith("sqlite"):
        pytest.skip("the lease is SQLite's; PostgreSQL: see the next test")
    sending.snapshot_send(send_settings, send_id)
    other = f"{HOST}:{os.getpid()}:other"  # alive: this very process
    with lease.holding(get_engine(send_settings), send_id, other, 900):
        with pytest.raises(sending.SendError, match=(
                rf"send {send_id} is being delivered by process {os.getpid()} on {HOST} since "
                r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(last batch 0 s ago\); only one worker")):
            sending.run_send(send_settings, send_id, transport=MemoryTransport())
        for command in (["sends", "resume", str(send_id)], ["sends", "work", str(send_id)]):
            result = invoke(*command)
            assert result.exit_code == 1 and f"process {os.getpid()} on {HOST}" in result.output
        assert sending.summary(send_settings, send_id).counts == {"pending": 8}
    summary = sending.run_send(send_settings, send_id, transport=MemoryTransport())
    assert summary.counts == {"sent": 8}


@pytest.mark.parametrize(("holder", "silent", "taken"), [
    ("{dead}", 0, True),  # its process on this machine is gone: at once
    ("elsewhere:4242:busy", 10, False),  # another machine, recently active: refused
    ("elsewhere:4242:lost", 901, True),  # silent longer than send_claim_timeout
])
def test_a_dead_or_silent_holders_lease_passes_on(send_settings: Settings, send_id: int,
                                                  holder: str, silent: float, taken: bool) -> None:
    if not send_settings.database_url.startswith("sqlite"):
        pytest.skip("the lease is SQLite's")
    silent_since(send_settings, send_id, holder.format(dead=dead_worker()), silent)
    if taken:
        assert sending.run_send(send_settings, send_id, transport=MemoryTransport()).counts == {
            "sent": 8}
    else:
        with pytest.raises(sending.SendError, match="process 4242 on elsewhere"):
            sending.run_send(send_settings, send_id, transport=MemoryTransport())


def test_postgresql_takes_no_lease(send_settings: Settings, send_id: int) -> None:
    if not send_settings.database_url.startswith("postgresql"):
        pytest.skip("several workers per send are PostgreSQL's")
    silent_since(send_settings, send_id, "elsewhere:4242:busy", 0)
    assert sending.run_send(send_settings, send_id, transport=MemoryTransport()).counts == {
        "sent": 8}
