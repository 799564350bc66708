"""Scheduling with a controllable clock: `now` is passed in, nothing sleeps."""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import threading
from dataclasses import replace

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from mailer.check.gate import RECHECK, SendChecks
from mailer.db import engine_for, session_scope
from mailer.models import Schedule, Send, utcnow
from mailer.schedule.scheduler import (
    LEASE,
    TICK_SECONDS,
    Request,
    ScheduleError,
    Scheduler,
    cancel,
    check_requests,
    create_scheduled_send,
    fire,
    move,
    overview,
    parse_when,
    plan,
    send_schedule,
)
from mailer.send.runner import create_send, run_send, summary
from tests.conftest import REPO, add_subscriber
from tests.fake_clock import FakeClock

DUE = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)  # 09:00 in Amsterdam
BEFORE = DUE - dt.timedelta(days=3)


class Starts:
    """A starter that records what it was asked to start, instead of sending."""

    def __init__(self, fail: Exception | None = None, then: threading.Event | None = None):
        self.schedules: list[Schedule] = []
        self.fail, self.then = fail, then

    def __call__(self, schedule: Schedule) -> None:
        self.schedules.append(schedule)
        if self.then is not None:
            self.then.set()
        if self.fail is not None:
            raise self.fail

    @property
    def ids(self) -> list[int | None]:
        return [s.id for s in self.schedules]


@pytest.fixture
def site(settings):
    """Settings over a copy of the real content, with https links (mail needs them)."""
    shutil.copytree(REPO / "content", settings.root / "content")
    return replace(settings, public_base_url="https://nieuws.veiligheidvoorop.nl")


def planned(site, due=DUE, **fields) -> int:
    [schedule] = plan(site, [Request("stalking", due, **fields)], BEFORE)
    assert schedule.id is not None
    return schedule.id


def fire_at(site, schedule_id, now, start, worker="w1", stop=None, checks=None) -> str:
    return fire(site, schedule_id, start, now=now, worker=worker, stop=stop or threading.Event(),
                checks=checks)


def stored(site, schedule_id) -> Schedule:
    with session_scope(site) as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        return schedule


def test_times_are_read_in_amsterdam_unless_an_offset_is_given():
    assert parse_when("2026-12-01 09:00", "Europe/Amsterdam") == DUE
    assert parse_when("2026-12-01T09:00+01:00", "Europe/Amsterdam") == DUE
    assert parse_when("2026-12-01 08:00Z", "Europe/Amsterdam") == DUE
    assert parse_when("2027-06-01 09:00", "Europe/Amsterdam").hour == 7  # summer time


@pytest.mark.parametrize("text, message", [
    ("tomorrow", "cannot read the time 'tomorrow'"),
    ("2026-12-01", "write it as YYYY-MM-DD HH:MM"),
    ("2026-13-01 09:00", "cannot read the time"),
    ("2027-03-28 02:30", "does not exist in Europe/Amsterdam"),
])
def test_unreadable_times_are_refused(text, message):
    with pytest.raises(ScheduleError, match=message):
        parse_when(text, "Europe/Amsterdam")


def test_requests_in_the_past_or_for_unknown_segments_are_refused(site):
    requests = [Request("stalking", BEFORE - dt.timedelta(minutes=1)),
                Request("stalking", DUE, regions=("atlantis",), audiences=("pers",)),
                Request("onbekend", DUE)]
    past, segments, theme, fine = check_requests(site, [*requests, Request("stalking", DUE)], BEFORE)
    assert fine == []
    assert past == ["Sat 2026-11-28 08:59 CET is in the past (now: Sat 2026-11-28 09:00 CET)"]
    assert segments[0].startswith("unknown region 'atlantis' (known: noord-nederland")
    assert segments[1].startswith("unknown audience 'pers'")
    assert theme == ["theme 'onbekend' has no content yet: there is no content/onbekend/mailing.yaml "
                     "(themes: actieoverleg, stalking, update-2021)"]


def test_a_schedule_fires_at_its_time_and_once(site):
    schedule_id = planned(site, regions=("oost-nederland",))
    starts = Starts()
    assert fire_at(site, schedule_id, DUE - dt.timedelta(seconds=1), starts) == "not due"
    assert starts.ids == []
    assert fire_at(site, schedule_id, DUE, starts) == "done"
    assert fire_at(site, schedule_id, DUE, starts, worker="w2") == "not due"
    assert starts.ids == [schedule_id]
    assert starts.schedules[0].regions == ["oost-nederland"]
    assert stored(site, schedule_id).status == "done"


def test_a_planned_send_survives_a_restart_of_the_scheduler(site):
    schedule_id = planned(site)
    early = Starts()
    first = Scheduler(site, early, clock=FakeClock(BEFORE))
    assert first.tick() == TICK_SECONDS  # due in three days: the next pass comes first
    first.pool.shutdown(wait=True)
    assert early.ids == []
    engine_for(site.resolved_database_url).dispose()  # as after a restart of the machine

    starts = Starts()
    second = Scheduler(site, starts, clock=FakeClock(DUE))
    second.tick()
    second.pool.shutdown(wait=True)
    assert starts.ids == [schedule_id] and stored(site, schedule_id).status == "done"


class Stands(FakeClock):
    """After its first wait, time stands still: the next wait lasts until `stop` is set."""

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        if self.waits:
            return stop.wait(10)
        return super().wait(seconds, stop)


def test_a_send_due_between_two_passes_starts_on_its_second(site):
    """The loop sleeps until the due time, not for the whole tick, and then starts the send."""
    schedule_id = planned(site)
    clock = Stands(DUE - dt.timedelta(seconds=5))
    scheduler = Scheduler(site, Starts(), clock=clock)
    seen: list[tuple[int | None, dt.datetime]] = []

    def start(schedule: Schedule) -> None:
        seen.append((schedule.id, clock.now()))
        scheduler.stop.set()

    scheduler.starter = start
    runner = threading.Thread(target=scheduler.run)
    runner.start()
    runner.join(10)
    assert not runner.is_alive()
    assert clock.waits == [5.0]  # not TICK_SECONDS: it would have started 10 s late
    assert seen == [(schedule_id, DUE)]


def test_a_send_due_while_the_scheduler_was_down_starts_when_it_comes_back(site):
    """The real loop with the real clock: a send 5 h overdue starts on the first pass."""
    now = utcnow()
    [schedule] = plan(site, [Request("stalking", now - dt.timedelta(hours=5))], now)
    schedule_id = schedule.id
    started = threading.Event()
    scheduler = Scheduler(site, Starts(then=started))
    runner = threading.Thread(target=scheduler.run)
    runner.start()
    try:
        assert started.wait(10)
    finally:
        scheduler.stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert stored(site, schedule_id).status == "done"


def test_a_send_later_than_the_grace_period_is_missed_not_sent(site):
    schedule_id = planned(site)
    starts = Starts()
    late = DUE + dt.timedelta(hours=6, minutes=1)
    assert [row.status for row in overview(site, late)] == ["missed"]
    assert fire_at(site, schedule_id, late, starts) == "missed"
    assert starts.ids == []
    schedule = stored(site, schedule_id)
    assert schedule.status == "missed"
    assert schedule.note == ("missed: due Tue 2026-12-01 09:00 CET, the scheduler came 6.0 h late "
                             "(grace 6 h)")


def test_cancel_and_move_before_firing(site):
    cancelled, moved = planned(site), planned(site)
    starts = Starts()
    assert cancel(site, cancelled, BEFORE).status == "cancelled"
    later = DUE + dt.timedelta(days=7)
    assert move(site, moved, later, BEFORE).due_at == later
    assert fire_at(site, cancelled, DUE, starts) == "not due"
    assert fire_at(site, moved, DUE, starts) == "not due"
    assert fire_at(site, moved, later, starts) == "done"
    assert starts.ids == [moved]
    with pytest.raises(ScheduleError, match=f"schedule {cancelled} is cancelled: nothing to change"):
        cancel(site, cancelled, later)
    with pytest.raises(ScheduleError, match=f"schedule {moved} is done"):
        move(site, moved, later + dt.timedelta(days=1), later)
    with pytest.raises(ScheduleError, match="is in the past"):
        move(site, cancelled, BEFORE, DUE)
    with pytest.raises(ScheduleError, match="there is no schedule 99"):
        cancel(site, 99, BEFORE)


def test_a_missed_send_can_be_moved_to_a_new_time(site):
    schedule_id = planned(site)
    late = DUE + dt.timedelta(days=1)
    assert fire_at(site, schedule_id, late, Starts()) == "missed"
    assert move(site, schedule_id, late + dt.timedelta(hours=1), late).status == "planned"


def test_an_interrupted_send_is_resumed_once_its_worker_is_gone(site):
    schedule_id = planned(site)
    send_id = create_send(site, "stalking")
    with session_scope(site, write=True) as session:
        session.exec(update(Schedule).where(Schedule.id == schedule_id).values(  # type: ignore[call-overload]
            status="started", send_id=send_id, worker="dead", heartbeat_at=DUE))
    starts = Starts()
    assert fire_at(site, schedule_id, DUE + LEASE, starts) == "not due"  # its worker may live
    assert fire_at(site, schedule_id, DUE + LEASE * 2, starts) == "done"
    assert [s.send_id for s in starts.schedules] == [send_id]


def test_a_stopped_send_keeps_its_place_and_resumes_at_once(site):
    schedule_id = planned(site)
    stop = threading.Event()
    assert fire_at(site, schedule_id, DUE, Starts(then=stop), stop=stop) == "interrupted"
    schedule = stored(site, schedule_id)
    assert (schedule.status, schedule.worker, schedule.heartbeat_at) == ("started", "", None)
    assert fire_at(site, schedule_id, DUE, Starts(), stop=stop) == "stopping"
    assert fire_at(site, schedule_id, DUE, Starts(), worker="next") == "done"


def test_a_failing_start_is_recorded(site):
    schedule_id = planned(site)
    assert fire_at(site, schedule_id, DUE, Starts(fail=RuntimeError("no route to host"))) == "failed"
    schedule = stored(site, schedule_id)
    assert (schedule.status, schedule.note) == ("failed", "RuntimeError: no route to host")


def test_the_overview_counts_who_would_receive_it_now(site, session):
    add_subscriber(session, "oost@example.org", region="oost-nederland", topics=("verdiepingen",))
    add_subscriber(session, "limburg@example.org", region="limburg", topics=("verdiepingen",))
    add_subscriber(session, "updates@example.org", region="oost-nederland", topics=("updates",))
    session.commit()
    planned(site, regions=("oost-nederland",))
    planned(site, due=DUE + dt.timedelta(days=7))
    assert [(row.status, row.recipients) for row in overview(site, BEFORE)] == [
        ("planned", 1), ("planned", 2)]


def test_cancel_and_move_work_until_the_first_message_left(site, session):
    for name in ("anna", "bram"):
        add_subscriber(session, f"{name}@example.org", topics=("verdiepingen",))
    session.commit()
    waiting, crashed = planned(site), planned(site)
    stop = threading.Event()

    def create_only(schedule: Schedule) -> None:
        create_scheduled_send(site, schedule)
        stop.set()

    assert fire_at(site, waiting, DUE, create_only, stop=stop) == "interrupted"
    send_id = stored(site, waiting).send_id
    moved = move(site, waiting, DUE + dt.timedelta(days=1), DUE)
    assert (moved.status, moved.send_id) == ("planned", None)
    assert summary(site, send_id).status == "cancelled"

    def crash_after_one_message(schedule: Schedule) -> None:
        send_id = create_scheduled_send(site, schedule)
        halt = threading.Event()

        def after_the_first(done: int, total: int) -> None:
            if done:
                halt.set()

        run_send(replace(site, send_batch=1), send_id, stop=halt, progress=after_the_first)
        assert summary(site, send_id).counts == {"sent": 1, "pending": 1}
        raise RuntimeError("power cut")

    assert fire_at(site, crashed, DUE, crash_after_one_message) == "failed"
    with pytest.raises(ScheduleError, match=f"schedule {crashed} cannot be changed: .* have left"):
        cancel(site, crashed, DUE)
    with pytest.raises(ScheduleError, match="have left"):
        move(site, crashed, DUE + dt.timedelta(days=1), DUE)


def test_a_send_that_fails_its_preflight_fails_the_schedule_and_creates_nothing(site, session):
    add_subscriber(session, "anna@example.org", topics=("verdiepingen",))
    session.commit()
    broken = replace(site, dkim_selector="mail2026", dkim_domain="veiligheidvoorop.nl",
                     dkim_key_file="missing.pem")
    schedule_id = planned(broken)
    starter = functools.partial(send_schedule, broken, threading.Event())
    assert fire_at(broken, schedule_id, DUE, starter) == "failed"
    schedule = stored(broken, schedule_id)
    assert (schedule.status, schedule.send_id) == ("failed", None)
    assert "missing.pem: cannot read it" in schedule.note
    with session_scope(broken) as check:
        assert check.exec(select(func.count()).select_from(Send)).one() == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SpamAssassin's seconds once
def test_a_schedule_that_fails_the_checks_of_mailer_send_is_held_until_they_pass(site):
    schedule_id = planned(site, regions=("limburg",))
    checks, starts = SendChecks(site, offline=True), Starts()
    assert fire_at(site, schedule_id, DUE, starts, checks=checks) == "held"
    held = stored(site, schedule_id)
    assert (held.status, held.send_id, starts.ids) == ("planned", None, [])
    assert held.hold_reason.startswith("the checks of `mailer send` fail: placeholders: "
                                       "content/stalking/30-nieuw-werkproces-rotterdam.md:10: ")
    assert held.hold_reason.endswith("(`mailer check stalking` lists them)")
    [row] = overview(site, DUE)
    assert (row.status, row.hold) == ("planned", held.hold_reason)

    for block in (site.content / "stalking").glob("*.md"):  # the editor replaces the examples
        block.write_text(block.read_text("utf-8").replace("example: true\n", ""), "utf-8")
    assert fire_at(site, schedule_id, DUE + RECHECK / 10, starts, checks=checks) == "done"
    assert starts.ids == [schedule_id] and stored(site, schedule_id).hold_reason == ""
