"""Sends planned for a moment, and the long-running scheduler that starts them.

The Schedule table is the only record of what is planned: the scheduler reads it on every
pass and wakes at the next due time. Starting goes through `fire`, which re-reads the row and
claims it with a guarded UPDATE: a restart or a second scheduler process can never start a
send twice. All sending work stays in mailer.send.runner; a schedule only starts (or resumes)
a send.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

from mailer import taxonomy
from mailer.audit import SYSTEM as SCHEDULER
from mailer.audit import Actor, record
from mailer.bounces.imap import fetch, report
from mailer.builds.builder import build
from mailer.builds.manifest import Manifest
from mailer.builds.sources import source_hash
from mailer.check.gate import SendChecks
from mailer.clock import SYSTEM, Clock
from mailer.config import Settings
from mailer.content.loader import ContentError, list_themes, load_mailing
from mailer.db import session_scope
from mailer.errors import DataError, MailerError
from mailer.models import Schedule, iso_utc, stored_id, utcnow
from mailer.send import approval
from mailer.send.runner import SendError, cancel_send, create_send, run_send, summary
from mailer.subscribers.subscriptions import recipient_count
from mailer.webhooks.delivery import Deliverer

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=2)  # a started send whose scheduler was silent this long is resumed
TICK_SECONDS = 15.0  # how often a scheduler re-reads the table and renews its leases
SENDS_AT_ONCE = 10  # sends one scheduler runs side by side (APScheduler's pool had as many)
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")

Starter = Callable[[Schedule], None]


class ScheduleError(DataError):
    """A request the schedule cannot carry out; the message says why (one problem per line)."""


@dataclass(frozen=True)
class Request:
    """A send to plan: what, when (aware UTC) and for whom (empty = everyone)."""

    theme: str
    due_at: dt.datetime
    regions: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    calendar_key: str | None = None
    note: str = ""
    created_by: str = ""


@dataclass(frozen=True)
class Overview:
    """One line of `mailer schedule list`."""

    schedule: Schedule
    status: str  # as of now: a planned send past its grace period shows as missed
    recipients: int | None  # how many the send would reach now; None when it cannot tell
    approval: str = ""  # with approval required: who approved it, or why it will not start
    held: bool = False  # it would not start now for lack of a valid approval

    @property
    def hold(self) -> str:
        """Why the scheduler did not start it when it fell due (its approval, or the checks of
        `mailer send`), while it has not started since; else ""."""
        return self.schedule.hold_reason if self.status in ("planned", "missed") else ""

    def document(self) -> dict[str, Any]:
        """The line as JSON-ready data (`mailer schedule list --json`)."""
        s = self.schedule
        return {"id": stored_id(s), "theme": s.theme, "regions": list(s.regions),
                "audiences": list(s.audiences), "due_at": iso_utc(s.due_at),
                "status": self.status, "recipients": self.recipients, "send_id": s.send_id,
                "note": s.note, "calendar_key": s.calendar_key, "created_by": s.created_by,
                "approved_by": s.approved_by, "approved_at": iso_utc(s.approved_at),
                "approval": self.approval, "held": self.held, "hold": self.hold}


def parse_when(text: str, timezone: str) -> dt.datetime:
    """Read `2026-12-01 09:00` as a time in `timezone` (unless it has an offset), as aware UTC."""
    value = text.strip()
    try:
        if not TIME_RE.match(value):
            raise ValueError(value)
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(
            f"cannot read the time {text!r}: write it as YYYY-MM-DD HH:MM, e.g. 2026-12-01 09:00 "
            f"({timezone} unless an offset such as +01:00 is given)"
        ) from None
    if when.tzinfo is None:
        zone = ZoneInfo(timezone)
        local = when.replace(tzinfo=zone)
        if local.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != when:
            raise ScheduleError(f"{text!r} does not exist in {timezone}: the clocks skip that hour")
        when = local
    return when.astimezone(dt.UTC)


def local_time(when: dt.datetime, timezone: str) -> str:
    """A UTC time as people in `timezone` read it."""
    return when.astimezone(ZoneInfo(timezone)).strftime("%a %Y-%m-%d %H:%M %Z")


def build_problems(settings: Settings, theme: str) -> list[str]:
    """Why THEME cannot be sent as it stands ([] when it builds), with the build's locations."""
    if not (settings.content / theme / "mailing.yaml").is_file():
        known = ", ".join(list_themes(settings.content)) if settings.content.is_dir() else "none"
        return [f"theme {theme!r} has no content yet: there is no "
                f"{settings.content_dir / theme / 'mailing.yaml'} (themes: {known})"]
    try:
        build(settings, theme)
    except ContentError as exc:
        return [f"theme {theme!r} does not build: {problem}" for problem in exc.problems]
    except MailerError as exc:  # the render, the size checks, the partner block
        return [f"theme {theme!r} does not build: {exc}"]
    return []


def check_requests(settings: Settings, requests: Sequence[Request], now: dt.datetime) -> list[list[str]]:
    """The problems of each request: a past time, unknown slugs, a theme that does not build.

    Each theme is built once, however many requests name it.
    """
    built: dict[str, list[str]] = {}
    found = []
    for request in requests:
        problems = (taxonomy.problems("region", request.regions)
                    + taxonomy.problems("audience", request.audiences))
        if request.due_at <= now:
            problems.append(f"{local_time(request.due_at, settings.timezone)} is in the past "
                            f"(now: {local_time(now, settings.timezone)})")
        if request.theme not in built:
            built[request.theme] = build_problems(settings, request.theme)
        problems += built[request.theme]
        found.append(problems)
    return found


def plan(settings: Settings, requests: Sequence[Request], now: dt.datetime,
         actor: Actor = SCHEDULER) -> list[Schedule]:
    """Store checked requests as planned schedules, all or none; each is `schedule.created`
    by `actor` in the audit trail."""
    with session_scope(settings, write=True) as session:
        schedules = [
            Schedule(theme=r.theme, due_at=r.due_at, regions=list(dict.fromkeys(r.regions)),
                     audiences=list(dict.fromkeys(r.audiences)), calendar_key=r.calendar_key,
                     note=r.note, created_by=r.created_by, created_at=now, updated_at=now)
            for r in requests
        ]
        session.add_all(schedules)
        session.flush()
        for schedule in schedules:
            record(session, actor, "schedule.created", f"schedule {schedule.id}",
                   theme=schedule.theme, due_at=schedule.due_at, regions=schedule.regions,
                   audiences=schedule.audiences, calendar_key=schedule.calendar_key)
    return schedules


def status_at(schedule: Schedule, now: dt.datetime, grace: dt.timedelta) -> str:
    """The status as of `now`: a planned send later than the grace period can only be missed."""
    if schedule.status == "planned" and now - schedule.due_at > grace:
        return "missed"
    return schedule.status


def _lease_expired(schedule: Schedule, now: dt.datetime) -> bool:
    return schedule.heartbeat_at is None or now - schedule.heartbeat_at > LEASE


def count_recipients(session: Session, settings: Settings, schedule: Schedule) -> int | None:
    """How many people the schedule's send would reach if it started now."""
    try:
        topic = load_mailing(settings.content, schedule.theme, settings.root).topic
    except ContentError:
        return None
    return recipient_count(session, topic, schedule.regions, schedule.audiences)


def overview(settings: Settings, now: dt.datetime, reach: bool = True) -> list[Overview]:
    """Every schedule by due time, with its status now and, while it can still start (and
    `reach`), how many it would reach: a build and a count each."""
    grace = dt.timedelta(hours=settings.grace_period_hours)
    hashes: dict[str, str] = {}
    with session_scope(settings) as session:
        rows = []
        for schedule in session.exec(select(Schedule).order_by(col(Schedule.due_at), col(Schedule.id))):
            status = status_at(schedule, now, grace)
            reached = (count_recipients(session, settings, schedule)
                       if reach and status == "planned" else None)
            held, said = "", ""
            if approval.required(settings) and status in ("planned", "missed"):
                if schedule.theme not in hashes:
                    hashes[schedule.theme] = source_hash(settings, schedule.theme)
                held = approval.problem(settings, schedule, hashes[schedule.theme])
                said = held or approval.describe(schedule)
            rows.append(Overview(schedule, status, reached, said, bool(held)))
        return rows


def get_schedule(settings: Settings, schedule_id: int) -> Schedule:
    """Schedule `schedule_id` as it is now (to see whom it reaches before someone acts on it)."""
    with session_scope(settings) as session:
        schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise ScheduleError(f"there is no schedule {schedule_id}; `mailer schedule list` shows them")
    return schedule


def _transition(session: Session, seen: Schedule, now: dt.datetime, strict: bool = True,
                **values: object) -> bool:
    """Change a schedule only if nobody changed it since `seen` was read; the atomic claim.

    Not `strict`: only its send must be the same.
    """
    statement = update(Schedule).where(col(Schedule.id) == seen.id,
                                       col(Schedule.send_id).is_not_distinct_from(seen.send_id))
    if strict:
        statement = statement.where(
            col(Schedule.status) == seen.status, col(Schedule.due_at) == seen.due_at,
            col(Schedule.worker) == seen.worker,
            col(Schedule.heartbeat_at).is_not_distinct_from(seen.heartbeat_at))
    result = session.exec(statement.values(updated_at=now, **values))
    return result.rowcount == 1


def _cancel_send(settings: Settings, schedule_id: int, send_id: int, actor: Actor) -> None:
    """Call off a schedule's send through mailer.send.runner, which refuses once a message left."""
    if summary(settings, send_id).status == "cancelled":
        return
    try:
        cancel_send(settings, send_id, actor)
    except SendError as exc:
        raise ScheduleError(f"schedule {schedule_id} cannot be changed: {exc}") from exc


def _withdraw(settings: Settings, schedule_id: int, now: dt.datetime, actor: Actor, action: str,
              **values: object) -> Schedule:
    """Take a schedule back (to cancel or move it) while no message has left; the audit trail
    gets `action` by `actor` in the same transaction.

    A send that already started is cancelled through mailer.send.runner, which refuses once a
    message left; only then does the schedule change.
    """
    schedule = get_schedule(settings, schedule_id)
    if schedule.status in ("cancelled", "done"):
        raise ScheduleError(f"schedule {schedule_id} is {schedule.status}: nothing to change")
    if schedule.status == "started" and schedule.send_id is None:
        raise ScheduleError(f"schedule {schedule_id} is being started right now (building its "
                            "send); try again in a minute")
    if schedule.send_id is not None:
        _cancel_send(settings, schedule_id, schedule.send_id, actor)
    with session_scope(settings, write=True) as session:
        # Once its send is cancelled, the schedule changes even if its worker recorded the end.
        if not _transition(session, schedule, now, strict=schedule.send_id is None, **values):
            raise ScheduleError(f"schedule {schedule_id} changed meanwhile; look at "
                                "`mailer schedule list` and try again")
        record(session, actor, action, f"schedule {schedule_id}", theme=schedule.theme,
               was=schedule.status, was_due_at=schedule.due_at,
               due_at=values.get("due_at", schedule.due_at), send=schedule.send_id)
    return get_schedule(settings, schedule_id)


def cancel(settings: Settings, schedule_id: int, now: dt.datetime,
           actor: Actor = SCHEDULER) -> Schedule:
    """Cancel a schedule until its first message leaves (`schedule.cancelled` by `actor`)."""
    return _withdraw(settings, schedule_id, now, actor, "schedule.cancelled", status="cancelled",
                     worker="", heartbeat_at=None)


def move(settings: Settings, schedule_id: int, due_at: dt.datetime, now: dt.datetime,
         actor: Actor = SCHEDULER) -> Schedule:
    """Plan a schedule for another time, until its first message leaves (a missed one too);
    `schedule.moved` by `actor`."""
    if due_at <= now:
        raise ScheduleError(f"{local_time(due_at, settings.timezone)} is in the past "
                            f"(now: {local_time(now, settings.timezone)})")
    return _withdraw(settings, schedule_id, now, actor, "schedule.moved", status="planned",
                     due_at=due_at, send_id=None, worker="", heartbeat_at=None, hold_reason="")


def _due_action(schedule: Schedule, now: dt.datetime, grace: dt.timedelta) -> str | None:
    if schedule.status == "planned" and schedule.due_at <= now:
        return "miss" if status_at(schedule, now, grace) == "missed" else "start"
    if schedule.status == "started" and _lease_expired(schedule, now):
        return "resume"
    return None


def _hold(settings: Settings, schedule: Schedule, now: dt.datetime, checks: SendChecks | None) -> str:
    """Why a due schedule may not start: its approval, then the checks of `mailer send`."""
    required = approval.required(settings)
    if not (required or checks):
        return ""
    current = source_hash(settings, schedule.theme)  # the theme's files, read once for both
    held = approval.problem(settings, schedule, current) if required else ""
    return held or (checks.problem(schedule.theme, current, now) if checks else "")


def _claim(settings: Settings, schedule: Schedule, action: str, held: str, now: dt.datetime,
           worker: str) -> str:
    """Mark a due schedule missed, held or started in one transaction, with its audit row (by
    the scheduler); returns what happened: "started" when this worker now runs it."""
    subject = f"schedule {schedule.id}"
    with session_scope(settings, write=True) as session:
        if action == "miss":
            hours = (now - schedule.due_at).total_seconds() / 3600
            note = (f"missed: due {local_time(schedule.due_at, settings.timezone)}, the scheduler "
                    f"came {hours:.1f} h late (grace {settings.grace_period_hours:g} h)")
            if not _transition(session, schedule, now, status="missed", note=note):
                return "taken"
            record(session, SCHEDULER, "schedule.missed", subject, outcome=note)
            return "missed"
        if held:
            if schedule.hold_reason != held:  # said once, not every tick
                log.warning("schedule %s (%s) does not start: %s", schedule.id, schedule.theme, held,
                            extra={"schedule": schedule.id, "theme": schedule.theme})
                if _transition(session, schedule, now, hold_reason=held):
                    record(session, SCHEDULER, "schedule.held", subject, outcome=held)
            return "held"
        started: dict[str, object] = {"status": "started", "worker": worker, "heartbeat_at": now,
                                      "hold_reason": ""}
        if not _transition(session, schedule, now, True, **started):
            return "taken"
        record(session, SCHEDULER, "schedule.started", subject, theme=schedule.theme,
               send=schedule.send_id, resumed=action == "resume", worker=worker)
        schedule.sqlmodel_update(started)
    return "started"


def fire(settings: Settings, schedule_id: int, start: Starter, *, now: dt.datetime, worker: str,
         stop: threading.Event, checks: SendChecks | None = None) -> str:
    """Start, resume or mark missed one schedule if it is due; return what happened.

    A schedule due to start is held (it stays planned, with the reason recorded) while it lacks
    a valid approval or, with `checks`, fails the checks of `mailer send`. Of two schedulers
    firing one schedule, one claims the row and starts; the other finds it changed and does
    nothing. A send stopped by `stop` keeps status started, without a worker, so the next
    scheduler resumes it at once. What the scheduler does is in the audit trail, by "mailer".
    """
    if stop.is_set():
        return "stopping"
    grace = dt.timedelta(hours=settings.grace_period_hours)
    with session_scope(settings) as session:
        schedule = session.get(Schedule, schedule_id)
    action = _due_action(schedule, now, grace) if schedule is not None else None
    if schedule is None or action is None:
        return "not due"
    ids = {"schedule": schedule_id, "send": schedule.send_id, "theme": schedule.theme}
    # Outside any transaction: the checks take seconds. The claim fails if the row changed
    # meanwhile.
    held = _hold(settings, schedule, now, checks) if action == "start" else ""
    claimed = _claim(settings, schedule, action, held, now, worker)
    if claimed != "started":
        return claimed
    log.info("schedule %s (%s): %s", schedule_id, schedule.theme,
             "starting" if action == "start" else f"resuming send {schedule.send_id}", extra=ids)
    try:
        start(schedule)
    except Exception as exc:
        log.exception("schedule %s (%s) failed", schedule_id, schedule.theme, extra=ids)
        _finish(settings, schedule_id, worker, status="failed", note=f"{type(exc).__name__}: {exc}")
        return "failed"
    if stop.is_set():
        _finish(settings, schedule_id, worker)
        log.info("schedule %s (%s): stopped between batches; resumes on the next start", schedule_id,
                 schedule.theme, extra=ids)
        return "interrupted"
    _finish(settings, schedule_id, worker, status="done")
    log.info("schedule %s (%s): done", schedule_id, schedule.theme, extra=ids)
    return "done"


def _finish(settings: Settings, schedule_id: int, owner: str, **values: object) -> None:
    """Record how a run ended and give up its lease, unless the schedule was taken meanwhile;
    an end (done, failed) is in the audit trail."""
    with session_scope(settings, write=True) as session:
        result = session.exec(update(Schedule)
                              .where(col(Schedule.id) == schedule_id,
                                     col(Schedule.status) == "started",
                                     col(Schedule.worker) == owner)
                              .values(updated_at=utcnow(), worker="", heartbeat_at=None, **values))
        if result.rowcount == 1 and "status" in values:
            record(session, SCHEDULER, f"schedule.{values['status']}", f"schedule {schedule_id}",
                   outcome=str(values.get("note") or "ok"))


def create_scheduled_send(settings: Settings, schedule: Schedule,
                          manifest: Manifest | None = None) -> int:
    """Create the schedule's send from the build that passed the gate (`manifest`; without it,
    after the preflight) and link it in the same transaction, so a resume continues it
    instead of making another, and no send is ever orphaned."""

    def link(session: Session, send_id: int) -> None:
        session.exec(update(Schedule).where(col(Schedule.id) == schedule.id)
                     .values(send_id=send_id, updated_at=utcnow()))

    return create_send(settings, manifest or schedule.theme, schedule.regions or None,
                       schedule.audiences or None, planned_for=schedule.due_at, then=link,
                       record=approval.approval_of(schedule), actor=SCHEDULER)


def send_schedule(settings: Settings, stop: threading.Event, schedule: Schedule, *,
                  checks: SendChecks | None = None) -> None:
    """The default starter: create the schedule's send once, from the build that passed
    `checks` when they let it through, then run (or resume) it."""
    passed = checks.passed(schedule.theme) if checks and schedule.send_id is None else None
    manifest = passed.manifest if passed else None
    send_id = schedule.send_id
    if send_id is None:
        send_id = create_scheduled_send(settings, schedule, manifest)
    result = run_send(settings, send_id, stop=stop, manifest=manifest)
    if result.status == "paused":  # too many errors: a person looks first, the scheduler does not retry
        raise SendError(f"send {send_id} paused: {result.pause_reason}; carry on with "
                        f"`mailer sends resume {send_id}`")


def renew_leases(settings: Settings, worker: str, now: dt.datetime) -> None:
    """Tell other schedulers that this one is still running its sends."""
    with session_scope(settings, write=True) as session:
        session.exec(update(Schedule)
                     .where(col(Schedule.worker) == worker, col(Schedule.status) == "started")
                     .values(heartbeat_at=now))


def wanted_jobs(settings: Settings, now: dt.datetime) -> dict[int, dt.datetime]:
    """When each schedule needs firing: planned ones at their time, orphaned started ones now."""
    with session_scope(settings) as session:
        active = session.exec(select(Schedule).where(col(Schedule.status).in_(["planned", "started"])))
        return {s.id: s.due_at if s.status == "planned" else now for s in active
                if s.id is not None and (s.status == "planned" or _lease_expired(s, now))}


class Scheduler:
    """The scheduler of this process: reads the table on every pass and fires due schedules.

    Each due schedule runs `fire` in a thread of the pool, so two sends due together run side
    by side; one already running here is not handed over again. Between passes it sleeps until
    the next planned send or `tick_seconds`, whichever comes first, so a send starts on its
    second. `checks` guard what the default starter sends: the checks of `mailer send` unless
    given. A starter of one's own (a test's, say) sends nothing of ours and gets none unless given.

    With a bounce mailbox configured ([bounce] imap_url), it also fetches that every
    bounce_poll_seconds, from the first pass on, in a thread of the pool: one fetch at a time,
    and a failing one is logged in one line and tried again at the next turn.
    """

    def __init__(self, settings: Settings, start: Starter | None = None, *,
                 checks: SendChecks | None = None, tick_seconds: float = TICK_SECONDS,
                 clock: Clock = SYSTEM):
        self.settings = settings
        self.stop = threading.Event()
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.checks = checks or (SendChecks(settings) if start is None else None)
        self.starter = start or functools.partial(send_schedule, settings, self.stop,
                                                  checks=self.checks)
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.pool = ThreadPoolExecutor(SENDS_AT_ONCE, thread_name_prefix="schedule")
        self.running: set[int] = set()  # handed to the pool and not finished yet
        self._lock = threading.Lock()
        self.next_fetch = clock.now()  # of the bounce mailbox, when one is configured
        self.fetching = False

    def run(self) -> None:
        """Fire due schedules, and post webhook events in a thread, until `stop` is set; then
        let running sends stop between batches."""
        webhooks = Deliverer(self.settings, self.stop)
        webhooks.start()
        try:
            while not self.stop.is_set():
                try:
                    pause = self.tick()
                except Exception:  # the database away a moment, say: log it, try next time
                    log.exception("scheduler tick failed; trying again")
                    pause = self.tick_seconds
                self.clock.wait(pause, self.stop)
        finally:
            self.pool.shutdown(wait=True)
            webhooks.close()

    def fire(self, schedule_id: int) -> str:
        return fire(self.settings, schedule_id, self.starter, now=self.clock.now(), worker=self.worker,
                    stop=self.stop, checks=self.checks)

    def tick(self) -> float:
        """Renew this worker's leases, hand each due schedule to the pool, and return how many
        seconds to wait: until the next planned one, at most `tick_seconds`."""
        now = self.clock.now()
        renew_leases(self.settings, self.worker, now)
        pause = self.tick_seconds
        for schedule_id, when in wanted_jobs(self.settings, now).items():
            if when > now:
                pause = min(pause, (when - now).total_seconds())
                continue
            with self._lock:
                if schedule_id in self.running:
                    continue
                self.running.add(schedule_id)
            self.pool.submit(self._fire_once, schedule_id)
        if self.settings.bounce_imap_url:
            pause = min(pause, self._bounces(now))
        return pause

    def _bounces(self, now: dt.datetime) -> float:
        """Hand a fetch of the bounce mailbox to the pool when one is due (and none runs);
        return the seconds until the next."""
        if now >= self.next_fetch:
            with self._lock:
                if self.fetching:
                    return self.tick_seconds
                self.fetching = True
            self.next_fetch = now + dt.timedelta(seconds=self.settings.bounce_poll_seconds)
            self.pool.submit(self.fetch_bounces)
        return (self.next_fetch - now).total_seconds()

    def fetch_bounces(self) -> None:
        """One pass over the bounce mailbox; trouble is one line in the log, never the end."""
        try:
            results = fetch(self.settings)
        except MailerError as exc:
            log.warning("bounce mailbox not fetched: %s; trying again in %g s", exc,
                        self.settings.bounce_poll_seconds)
        except Exception:  # a bug, or the database away: the scheduler carries on
            log.exception("bounce mailbox: fetching failed; trying again in %g s",
                          self.settings.bounce_poll_seconds)
        else:
            if results:
                log.info("bounce mailbox: %s", report(results, self.settings.bounce_imap_done_folder))
        finally:
            with self._lock:
                self.fetching = False

    def _fire_once(self, schedule_id: int) -> None:
        """Fire in a pool thread; the schedule may be handed over again once this returns."""
        try:
            self.fire(schedule_id)
        except Exception:  # a lost connection, say: `fire` records what it can; retried next pass
            log.exception("schedule %s: firing failed; trying again", schedule_id,
                          extra={"schedule": schedule_id})
        finally:
            with self._lock:
                self.running.discard(schedule_id)
