"""The send loop on both backends: snapshot, personalisation, skips, retries, pauses, steering."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.message.identity import install_id
from mailer.models import Delivery, Send, SendVariant, Subscriber
from mailer.send import runner as sending
from mailer.subscribers.subscriptions import erase, suppress, unsubscribe
from mailer.transport.transports import DeliveryError, MemoryTransport, OutgoingMessage
from tests.conftest import add_subscriber, bulk_subscribers, dead_worker
from tests.fake_clock import FakeClock

TOPIC = ("verdiepingen",)


def people(settings: Settings, count: int, region: str = "limburg", audience: str = "netwerk",
           prefix: str = "p") -> list[int]:
    with session_scope(settings, write=True) as session:
        return [add_subscriber(session, f"{prefix}{n}@example.org", region, audience, TOPIC,
                               name=f"Persoon {n}") for n in range(count)]


def deliveries(settings: Settings, send_id: int) -> dict[int, Delivery]:
    with session_scope(settings) as session:
        rows = session.exec(select(Delivery).where(Delivery.send_id == send_id))
        return {row.subscriber_id: row for row in rows}  # type: ignore[misc]


def test_every_subscriber_of_the_topic_gets_one_personal_message(send_settings: Settings) -> None:
    limburg = people(send_settings, 3)
    [rotterdam] = people(send_settings, 1, "rotterdam-zuid-holland-zuid", "beleidsmakers", "r")
    with session_scope(send_settings, write=True) as session:
        add_subscriber(session, "updates-only@example.org", topics=("updates",))
        suppress(session, "p2@example.org", "bounced")
        nameless = add_subscriber(session, "anoniem@example.org", topics=TOPIC, name="")
    transport = MemoryTransport()
    send_id = sending.create_send(send_settings, "stalking")
    summary = sending.run_send(send_settings, send_id, transport=transport)
    assert (summary.status, summary.counts) == ("done", {"sent": 4})
    by_id = {m.message_id: m.email() for m in transport.sent}
    install = install_id(get_engine(send_settings))
    with session_scope(send_settings) as session:
        public = {p.id: p.public_id for p in session.exec(select(Subscriber))}

    def mid(sid: int) -> str:
        return f"<{send_id}.{public[sid]}.{install}@veiligheidvoorop.nl>"

    expected = {mid(sid) for sid in (*limburg[:2], rotterdam, nameless)}
    assert set(by_id) == expected
    first = by_id[mid(limburg[0])]
    text = first.get_body(("plain",)).get_content()
    assert "Beste Persoon 0," in text and "Nieuw werkproces Rotterdam" not in text
    assert "Beste geïnteresseerde," in by_id[
        mid(nameless)].get_body(("plain",)).get_content()
    assert "Nieuw werkproces Rotterdam" in by_id[
        mid(rotterdam)].get_body(("html",)).get_content()
    # a second run snapshots nobody again and sends nothing
    again = sending.run_send(send_settings, send_id, transport=transport)
    assert again.counts == {"sent": 4} and len(transport.sent) == 4


def test_a_segment_limits_the_recipients_and_freezes_its_variants(send_settings: Settings) -> None:
    people(send_settings, 2)
    people(send_settings, 2, "noord-holland", "werkveld", "n")
    send_id = sending.create_send(send_settings, "stalking", ["noord-holland"], ["werkveld"])
    sending.snapshot_send(send_settings, send_id)
    sending.snapshot_send(send_settings, send_id)  # idempotent
    rows = deliveries(send_settings, send_id)
    assert {(d.region, d.audience, d.status) for d in rows.values()} == {
        ("noord-holland", "werkveld", "pending")}
    assert len(rows) == 2
    with session_scope(send_settings) as session:
        variants = session.exec(select(SendVariant).where(SendVariant.send_id == send_id)).all()
        assert [v.name for v in variants] == [next(iter(rows.values())).variant]
        assert ":greeting]]" in variants[0].html


def test_unknown_segments_are_refused(send_settings: Settings) -> None:
    with pytest.raises(sending.SendError, match="unknown region .atlantis."):
        sending.create_send(send_settings, "stalking", ["atlantis"])


def test_who_left_after_the_start_is_skipped_at_delivery_time(send_settings: Settings) -> None:
    ids = people(send_settings, 5)
    send_id = sending.create_send(send_settings, "stalking")
    sending.snapshot_send(send_settings, send_id)
    with session_scope(send_settings, write=True) as session:
        unsubscribe(session, ids[0], "verdiepingen")
        unsubscribe(session, ids[1])
        erase(session, ids[2])
        suppress(session, "p3@example.org", "complaint")
    transport = MemoryTransport()
    summary = sending.run_send(send_settings, send_id, transport=transport)
    assert summary.counts == {"sent": 1, "skipped": 4}
    assert [m.recipient for m in transport.sent] == ["p4@example.org"]
    reasons = {sid: d.error for sid, d in deliveries(send_settings, send_id).items()}
    assert reasons == {ids[0]: "left the topic", ids[1]: "suppressed (unsubscribed)",
                       None: "erased", ids[3]: "suppressed (complaint)", ids[4]: ""}


class ScriptedTransport(MemoryTransport):
    """Answers chosen addresses with chosen errors, a given number of times each."""

    def __init__(self, faults: dict[str, tuple[DeliveryError, int]]):
        super().__init__()
        self.faults = dict(faults)
        self.tries: dict[str, int] = {}
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> None:
        with self.lock:
            self.tries[message.recipient] = self.tries.get(message.recipient, 0) + 1
            error, times = self.faults.get(message.recipient, (None, 0))
            if error is not None and times:
                self.faults[message.recipient] = (error, times - 1)
                raise error
            self.sent.append(message)


def test_temporary_failures_are_retried_and_permanent_ones_recorded(
        send_settings: Settings) -> None:
    ids = people(send_settings, 6)
    transport = ScriptedTransport({
        "p0@example.org": (DeliveryError("451 try later", permanent=False, code=451), 2),
        "p1@example.org": (DeliveryError("connection problem: reset", permanent=False,
                                         connection=True), 1),
        "p2@example.org": (DeliveryError("550 5.1.1 User unknown", permanent=True, code=550), 9),
        "p3@example.org": (DeliveryError("452 mailbox full", permanent=False, code=452), 99),
    })
    send_settings = replace(send_settings, send_max_attempts=3)
    send_id = sending.create_send(send_settings, "stalking")
    summary = sending.run_send(send_settings, send_id, transport=transport)
    assert summary.counts == {"sent": 4, "failed": 2}
    rows = deliveries(send_settings, send_id)
    assert (rows[ids[0]].status, rows[ids[0]].attempts) == ("sent", 3)
    assert (rows[ids[1]].status, rows[ids[1]].attempts) == ("sent", 1)  # the drop was nobody's
    assert (rows[ids[2]].status, rows[ids[2]].code, rows[ids[2]].attempts) == ("failed", 550, 1)
    assert rows[ids[2]].error == "550 5.1.1 User unknown"
    assert transport.tries["p2@example.org"] == 1  # never retried
    assert rows[ids[3]].error == "gave up after 3 attempts: 452 mailbox full"
    assert sorted(m.recipient for m in transport.sent) == [f"p{n}@example.org" for n in (0, 1, 4, 5)]


def test_many_permanent_failures_pause_the_send_and_resume_carries_on(
        send_settings: Settings) -> None:
    people(send_settings, 60)
    rejected = {f"p{n}@example.org": (DeliveryError("550 no", permanent=True, code=550), 1)
                for n in range(0, 60, 3)}  # a third of the list
    transport = ScriptedTransport(rejected)
    send_id = sending.create_send(send_settings, "stalking")
    summary = sending.run_send(send_settings, send_id, transport=transport)
    assert summary.status == "paused"
    assert "of the last 50 attempts failed permanently" in summary.pause_reason
    assert summary.counts["pending"] == 10
    summary = sending.run_send(send_settings, send_id, transport=transport)
    assert summary.status == "done" and summary.counts == {"sent": 40, "failed": 20}


def test_connection_trouble_is_nobodys_attempt_backs_off_and_pauses_when_it_lasts(
        send_settings: Settings) -> None:
    people(send_settings, 12)
    busy = DeliveryError("421 4.3.2 try again later", permanent=False, code=421, connection=True)
    settings = replace(send_settings, send_connection_retry_seconds=0.001,
                       send_connection_patience=60.0, send_max_attempts=2)
    transport = ScriptedTransport({f"p{n}@example.org": (busy, 3) for n in range(12)})
    summary = sending.run_send(settings, sending.create_send(settings, "stalking"),
                               transport=transport)
    assert summary.status == "done" and summary.counts == {"sent": 12}
    assert {row.attempts for row in deliveries(settings, summary.send_id).values()} == {1}

    settings = replace(settings, send_connection_patience=0.05)
    transport = ScriptedTransport({f"p{n}@example.org": (busy, 10**6) for n in range(12)})
    send_id = sending.create_send(settings, "stalking")
    summary = sending.run_send(settings, send_id, transport=transport)
    assert summary.status == "paused" and summary.counts == {"pending": 12}
    assert "no working connection to the mail server" in summary.pause_reason
    assert "421 4.3.2 try again later" in summary.pause_reason
    assert sending.run_send(settings, send_id).counts == {"sent": 12}


def test_an_answer_that_needs_a_person_pauses_at_once_and_fails_nobody(
        send_settings: Settings) -> None:
    people(send_settings, 12)
    refused = DeliveryError("535 5.7.8 bad credentials", permanent=True, code=535, connection=True)
    transport = ScriptedTransport({f"p{n}@example.org": (refused, 1) for n in range(12)})
    send_id = sending.create_send(send_settings, "stalking")
    summary = sending.run_send(send_settings, send_id, transport=transport)
    assert summary.status == "paused" and summary.counts == {"pending": 12}
    assert "refused the session: 535 5.7.8 bad credentials" in summary.pause_reason
    assert sum(transport.tries.values()) <= send_settings.smtp_connections  # the batch halted
    summary = sending.run_send(send_settings, send_id, transport=MemoryTransport())
    assert summary.counts == {"sent": 12}


def test_pause_stop_and_cancel(send_settings: Settings) -> None:
    people(send_settings, 12)
    transport = MemoryTransport()
    send_id = sending.create_send(send_settings, "stalking")
    sending.cancel_send(send_settings, send_id)  # planned: nothing left yet
    with pytest.raises(sending.SendError, match="was cancelled"):
        sending.run_send(send_settings, send_id, transport=transport)

    send_id = sending.create_send(send_settings, "stalking")
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done:
            stop.set()  # as SIGTERM does: the running batch finishes and is recorded

    summary = sending.run_send(send_settings, send_id, transport=transport, progress=progress,
                               stop=stop)
    assert (summary.status, summary.counts) == ("running", {"sent": 5, "pending": 7})
    with pytest.raises(sending.SendError, match="5 message\\(s\\) have left"):
        sending.cancel_send(send_settings, send_id)
    sending.pause_send(send_settings, send_id)
    assert sending.work(send_settings, transport=transport) == []  # paused: no work
    assert sending.run_send(send_settings, send_id, transport=transport).counts == {"sent": 12}
    with session_scope(send_settings) as session:
        assert session.get(Send, send_id).status == "done"  # type: ignore[union-attr]


class ClockedTransport(MemoryTransport):
    """Remembers when, on the clock, each message left."""

    def __init__(self, clock: FakeClock):
        super().__init__()
        self.clock, self.times = clock, []

    def send(self, message: OutgoingMessage) -> None:
        super().send(message)
        self.times.append(self.clock.now())


def claimed_by_a_dead_worker(settings: Settings, ids: list[int], at: dt.datetime,
                             worker: str = "dead:1") -> None:
    """Rows claimed by `worker`; the default is on another machine, where only silence tells."""
    with session_scope(settings, write=True) as session:
        for row in session.exec(select(Delivery).where(Delivery.subscriber_id.in_(ids))):  # type: ignore[union-attr]
            row.status, row.worker, row.claimed_at = "sending", worker, at
            session.add(row)


def test_a_worker_takes_over_claims_only_once_they_are_stale(send_settings: Settings) -> None:
    ids = people(send_settings, 4)
    send_id = sending.create_send(send_settings, "stalking")
    sending.snapshot_send(send_settings, send_id)
    clock = FakeClock(step=60)  # every wait for other workers lets a minute pass
    start = clock.now()
    claimed_by_a_dead_worker(send_settings, ids[:2], start)
    transport = ClockedTransport(clock)
    [result] = sending.work(send_settings, send_id, transport=transport, clock=clock)
    assert result.counts == {"sent": 4}
    timeout = dt.timedelta(seconds=send_settings.send_claim_timeout)
    assert [t - start < timeout for t in transport.times] == [True, True, False, False]
    assert clock.now() - start <= timeout + dt.timedelta(minutes=2)  # taken over when stale


def test_a_resume_requeues_rows_left_sending_by_a_dead_process(send_settings: Settings) -> None:
    ids = people(send_settings, 4)
    send_id = sending.create_send(send_settings, "stalking")
    sending.snapshot_send(send_settings, send_id)
    clock = FakeClock()
    claimed_by_a_dead_worker(send_settings, ids[:2], clock.now(), dead_worker())
    transport = MemoryTransport()
    assert sending.run_send(send_settings, send_id, transport=transport, clock=clock).counts == {
        "sent": 4}
    assert len(transport.sent) == 4 and clock.waits == []  # no waiting for the dead process


def test_a_test_send_records_nothing_and_marks_the_subject(send_settings: Settings) -> None:
    people(send_settings, 2)
    transport = MemoryTransport()
    sent = sending.send_test(send_settings, "stalking", ["me@example.org", "Sanne Bos <you@example.org>",
                                                         "p1@example.org"],
                             ["limburg"], transport=transport)
    assert len(sent) == 6  # two variants in Limburg (beleidsmakers get the minister's letter)
    message = transport.sent[0].email()
    assert message["Subject"].startswith("[TEST] ")
    greetings = [re.search(r"^Beste [^\r\n]*,", m.email().get_body(("plain",)).get_content(), re.M)[0]
                 for m in transport.sent[:3]]
    assert greetings == ["Beste geïnteresseerde,", "Beste Sanne Bos,", "Beste Persoon 1,"]
    assert [m.email()["To"].addresses[0].addr_spec for m in transport.sent[:3]] == [
        "me@example.org", "you@example.org", "p1@example.org"]
    assert message["Message-ID"].startswith("<test.")
    again = sending.send_test(send_settings, "stalking", ["me@example.org"], ["limburg"],
                              transport=transport)
    ids = [m.message_id for m in transport.sent]
    assert len(again) == 2 and len(set(ids)) == len(ids) == 8  # each test send its own ids
    with session_scope(send_settings) as session:
        assert session.exec(select(Delivery)).all() == []
        assert session.exec(select(Send)).all() == []


def test_a_dry_run_lists_recipients_and_variants(send_settings: Settings) -> None:
    people(send_settings, 2)
    people(send_settings, 1, "limburg", "beleidsmakers", "b")
    rows = list(sending.dry_run(send_settings, "stalking", ["limburg"]))
    assert [r[:2] for r in rows] == [("p0@example.org", "limburg/netwerk"),
                                     ("p1@example.org", "limburg/netwerk"),
                                     ("b0@example.org", "limburg/beleidsmakers")]
    assert rows[0][2] != rows[2][2]


def test_a_stale_build_is_rebuilt_before_the_send(send_settings: Settings) -> None:
    people(send_settings, 1)
    send_id = sending.create_send(send_settings, "stalking")
    article = Path(send_settings.content / "stalking" / "30-nieuw-werkproces-rotterdam.md")
    article.write_text(article.read_text().replace("regions: [rotterdam-zuid-holland-zuid]\n", ""))
    transport = MemoryTransport()
    sending.run_send(send_settings, send_id, transport=transport)
    html = transport.sent[0].email().get_body(("html",)).get_content()
    assert "Nieuw werkproces Rotterdam" in html  # now for every region, Limburg too


def test_a_worker_claims_on_at_once_after_a_batch_of_skipped_rows(send_settings: Settings) -> None:
    bulk_subscribers(send_settings, 405)
    send_id = sending.create_send(send_settings, "stalking")
    sending.snapshot_send(send_settings, send_id)  # the snapshot
    with session_scope(send_settings, write=True) as session:  # the first 400 left meanwhile
        session.execute(update(Subscriber).where(~col(Subscriber.email).in_(
            [f"r40{n}@example.org" for n in range(5)])).values(status="unsubscribed"))
    started = time.monotonic()
    summary = sending.run_send(send_settings, send_id, transport=MemoryTransport())
    # 80 batches of skipped rows (send_batch 5); a 0.2 s nap after each would take 16 s
    assert time.monotonic() - started < 8
    assert summary.counts == {"skipped": 400, "sent": 5}
