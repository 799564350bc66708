"""A send: snapshot the recipients, fill each one's slots, deliver, record, resume, throttle.

This is the one place where mailings go out; the scheduler only calls `create_send` and
`run_send`. All state lives in the database, so a crash at any point loses nobody:

- the snapshot freezes the variants and writes one Delivery row per recipient in a single
  transaction, and is done at most once;
- a worker claims a batch (pending → sending, with its id and the time), sends it over the
  transport's connections, and records the whole batch in one transaction. Only a claimed and
  unrecorded batch can go out twice after a crash: at most `send_batch` messages per worker.
  A resume re-queues exactly those rows;
- whether someone may still be mailed (unsubscribed, suppressed, erased) is checked when their
  row is claimed, not when the send was planned.

A recipient's temporary failures (4xx) come back later with a doubling back-off; permanent ones
(5xx) are recorded with the server's answer. Trouble with the connection (greeting, TLS, login,
421, drops) is nobody's attempt: the send backs off as a whole and pauses when it lasts
(mailer.send.outcomes). Too many permanent failures pause the send too. The queries behind all
this are named in mailer.send.store.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from sqlmodel import Session

from mailer import audit, taxonomy
from mailer.bounces import classify as answers
from mailer.builds.archive import publish
from mailer.builds.manifest import Manifest, variant_digest
from mailer.builds.writer import anonymous_links
from mailer.clock import SYSTEM, Clock
from mailer.config import Settings
from mailer.content.segments import all_segments, segment_key
from mailer.db import get_engine
from mailer.errors import ConfigError, DataError
from mailer.message.assembly import MessageCommon, MessageError, MessageTemplate
from mailer.message.identity import install_id
from mailer.models import Send, stored_id
from mailer.send import approval, lease
from mailer.send.outcomes import ConnectionWatch, Verdict, classify
from mailer.send.preflight import current_manifest, preflight
from mailer.send.store import FINISHED, Claim, Refusal, RowUpdate, SendStore, Snapshot
from mailer.send.testers import tester_names
from mailer.subscribers.tokens import make_token, preferences_url, unsubscribe_url
from mailer.transport.transports import DeliveryError, Transport, transport_from_settings

FINAL = ("sent", "failed", "skipped", "bounced")
# The send pauses itself when, of the last PERMANENT_WINDOW attempts, more than PERMANENT_SHARE
# failed permanently (a list or a server gone bad).
PERMANENT_WINDOW = 50
PERMANENT_SHARE = 0.2
# Blocks (5.7.x: policy, reputation, authentication) are our problem, not the recipients': when
# BLOCK_SHARE of the first BLOCK_WINDOW answers are blocks, going on only hurts our reputation.
BLOCK_WINDOW = 200
BLOCK_SHARE = 0.05
PAUSABLE = ("planned", "running", "paused")
LEASE_WAIT = 30.0  # seconds: a waiting worker renews its lease at least this often
WORKER = audit.Actor("mailer", "send worker")  # who pauses a send that goes wrong, in the audit trail

_T = TypeVar("_T")
Progress = Callable[[int, int], None]  # (finished recipients, all recipients)
ToSend = str | Manifest  # a theme, or the manifest the gate checked (mailer.check.gate)


log = logging.getLogger(__name__)  # ids only, never an address (mailer.logs)


class SendError(DataError):
    """A send that cannot be created, run or changed as asked."""


@dataclass
class SendSummary:
    """Where a send stands: its status and how many recipients are in each delivery status."""

    send_id: int
    status: str
    counts: dict[str, int]
    pause_reason: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# --- the build a send is made from ---------------------------------------------------------


def _checked(settings: Settings, mailing: ToSend) -> Manifest:
    """The manifest the gate checked, or, given only a theme, the preflight's."""
    return mailing if isinstance(mailing, Manifest) else preflight(settings, mailing)


def _segment(regions: Iterable[str] | None, audiences: Iterable[str] | None
             ) -> tuple[list[str], list[str]]:
    regions, audiences = list(regions or []), list(audiences or [])
    problems = taxonomy.problems("region", regions) + taxonomy.problems("audience", audiences)
    if problems:
        raise SendError("; ".join(problems))
    return regions, audiences


def _variants_of(manifest: Manifest, regions: list[str], audiences: list[str]
                 ) -> dict[tuple[str, str], str]:
    """(region, audience) → variant name for the chosen segments."""
    return {(r, a): manifest.segments[segment_key(r, a)].variant
            for r, a in all_segments(regions, audiences)}


def _read_variant(settings: Settings, theme: str, manifest: Manifest, name: str
                  ) -> tuple[str, str, str]:
    """HTML, text and web-version URL of one built variant, as the manifest recorded them: a
    variant rebuilt since (the gate checked another) stops the send rather than go unchecked."""
    entry = manifest.variant(name)
    folder = settings.out / theme
    html, text = (folder / entry.html).read_bytes(), (folder / entry.text).read_bytes()
    if variant_digest(html, text) != entry.hash:
        raise SendError(f"{theme} was rebuilt after its checks (variant {name} changed); "
                        "send again to check and send the new build")
    return html.decode("utf-8"), text.decode("utf-8"), entry.online_url


# --- planning and starting -----------------------------------------------------------------


def create_send(settings: Settings, mailing: ToSend, regions: Iterable[str] | None = None,
                audiences: Iterable[str] | None = None, *,
                planned_for: dt.datetime | None = None,
                then: Callable[[Session, int], object] | None = None,
                record: Mapping[str, object] | None = None,
                actor: audit.Actor = audit.SYSTEM) -> int:
    """Plan a send of the manifest the gate checked (or of a theme, after its preflight; built
    first if stale) to the segment (default: everyone). `then` runs in the same transaction
    (the scheduler links its schedule there, so no send is ever left without it).

    Nobody is chosen yet: the recipients are snapshotted when the send starts. `record` sets
    the columns that say who asked for it (created_by, approval, forced_*). The audit trail
    gets `send.created` by `actor`, and `send.forced` with the reason when it was forced, in
    the send's own transaction.
    """
    chosen_regions, chosen_audiences = _segment(regions, audiences)
    manifest = _checked(settings, mailing)
    values = dict(theme=manifest.theme, topic=manifest.topic, subject=manifest.subject,
                  regions=chosen_regions, audiences=chosen_audiences, planned_for=planned_for,
                  source_hash=manifest.source_hash, greeting=manifest.greeting,
                  greeting_named=manifest.greeting_named, **(record or {}))

    def created(session: Session, send_id: int) -> None:
        if then is not None:
            then(session, send_id)
        # Last in the transaction, as every audit row: its lock is then never held while
        # waiting for a row another writer holds.
        subject = f"send {send_id}"
        audit.record(session, actor, "send.created", subject, theme=manifest.theme,
                     regions=chosen_regions, audiences=chosen_audiences,
                     created_by=values.get("created_by", ""), planned_for=planned_for)
        if values.get("forced_by"):
            audit.record(session, actor, "send.forced", subject, reason=values["forced_reason"],
                         checks=values.get("forced_checks", ""))

    return _store(settings).create(values, created)


def _store(settings: Settings) -> SendStore:
    return SendStore(get_engine(settings))


def _found(found: _T | None, send_id: int) -> _T:
    """What the store found about send `send_id`; None means there is no such send."""
    if found is None:
        raise SendError(f"no send with id {send_id}; `mailer sends list` shows the sends")
    return found


def get_send(settings: Settings, send_id: int) -> Send:
    """Send `send_id` as it is now (to see whom it reaches before someone acts on it)."""
    return _found(_store(settings).send(send_id), send_id)


def _resumed(actor: audit.Actor | None) -> Callable[[Session, Send, str], object] | None:
    """The audit row of a person's start or resume, in the transaction that marks it running."""
    if actor is None:
        return None

    def note(session: Session, send: Send, status: str) -> None:
        audit.record(session, actor, "send.resumed", f"send {send.id}", was=status,
                     regions=send.regions)

    return note


def snapshot_send(settings: Settings, send_id: int, manifest: Manifest | None = None, *,
                  actor: audit.Actor | None = None) -> Send:
    """Snapshot the recipients (once) and mark the send running; a paused send runs again,
    a finished one is left as it is.

    The variants are frozen with the snapshot from `manifest`, the one the gate checked when the
    send was created in this process (else the current build, built first when stale), so a
    resume sends what the send started with. With `actor` (a person resuming it), the audit
    trail gets `send.resumed`.
    """
    store = _store(settings)
    send = _found(store.send(send_id), send_id)
    if send.status == "cancelled":
        raise SendError(f"send {send_id} was cancelled")
    if send.status == "done":
        return send
    if send.snapshot_at is not None:
        manifest = None
    elif manifest is None:
        manifest = current_manifest(settings, send.theme)
    if manifest is not None and (held := approval.problem(settings, send, manifest.source_hash)):
        raise SendError(f"send {send_id} does not start: {held}")
    snapshot = _snapshot(settings, send, manifest) if manifest is not None else None
    send = _found(store.start(send_id, snapshot, _resumed(actor)), send_id)
    if manifest is not None:  # it has gone out: the archive and the feed may show it now
        publish(settings, send.theme, f"send {send_id} started")
    return send


def _snapshot(settings: Settings, send: Send, manifest: Manifest) -> Snapshot:
    """What the send freezes: the build's variants (read when the snapshot is taken) and who
    gets which."""
    return Snapshot(manifest.topic, manifest.subject, manifest.greeting, manifest.greeting_named,
                    manifest.source_hash, _variants_of(manifest, send.regions, send.audiences),
                    partial(_read_variant, settings, send.theme, manifest))


# --- delivering ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    claimed: Claim
    verdict: Verdict
    error: DeliveryError | MessageError | None = None

    @property
    def answer(self) -> answers.Verdict | None:
        """The RFC 3463 class of the server's refusal; None when it answered nothing."""
        if isinstance(self.error, DeliveryError) and self.error.code is not None:
            return answers.classify(str(self.error))
        return None


class _Breaker:
    """Says when recipients' permanent failures mean that going on would only do harm."""

    def __init__(self) -> None:
        self.recent: deque[bool] = deque(maxlen=PERMANENT_WINDOW)
        self.answers = self.blocks = 0

    def feed(self, outcome: _Outcome) -> str:
        """A reason to pause, or ""."""
        if outcome.verdict in (Verdict.CONNECTION, Verdict.UNTRIED):
            return ""  # nobody's attempt; ConnectionWatch looks after these
        permanent, error = outcome.verdict is Verdict.FAILED, outcome.error
        if self.answers < BLOCK_WINDOW:
            self.answers += 1
            answer = outcome.answer
            if answer and answer.kind == "blocked" and permanent:
                self.blocks += 1
                if self.blocks >= BLOCK_SHARE * BLOCK_WINDOW:
                    return (f"deliverability alarm: {self.blocks} of the first {self.answers} "
                            f"answers were blocks (policy, reputation or authentication), a "
                            f"problem of our server or reputation; last: {error}")
        self.recent.append(permanent)
        failed = sum(self.recent)
        if len(self.recent) == PERMANENT_WINDOW and failed > PERMANENT_SHARE * PERMANENT_WINDOW:
            return (f"{failed} of the last {PERMANENT_WINDOW} attempts failed permanently; "
                    f"last answer: {error if permanent else 'ok'}")
        return ""


class _Worker:
    """One process's part in delivering a send; `name` marks the rows it claimed."""

    def __init__(self, settings: Settings, store: SendStore, send: Send, transport: Transport,
                 name: str, clock: Clock):
        self.settings, self.store, self.send, self.transport = settings, store, send, transport
        self.name, self.clock = name, clock
        self.halt = threading.Event()  # the connection failed: leave the rest of the batch
        common = MessageCommon(stored_id(send), install_id(store.engine),
                               send.subject, send.topic, send.greeting, send.greeting_named)
        self.templates = {row.name: MessageTemplate(settings, common, row.html, row.text,
                                                    row.online_url)
                          for row in store.variants(stored_id(send))}

    def claim(self) -> tuple[str, list[Claim], int]:
        """The send's status, up to `send_batch` due rows now marked as ours, and how many
        rows were skipped instead because their people may no longer be mailed."""
        return self.store.claim_batch(self.send, self.name, self.clock.now(),
                                      self.settings.send_batch)

    def deliver(self, item: Claim) -> _Outcome:
        """Build and send one message; runs in the pool's threads."""
        if self.halt.is_set():
            return _Outcome(item, Verdict.UNTRIED)
        template = self.templates[item.variant]
        token = make_token(self.settings, item.public_id, "unsubscribe")
        try:
            self.transport.send(template.message(
                recipient_id=item.public_id, address=item.address, name=item.name,
                unsubscribe=unsubscribe_url(self.settings, item.public_id, self.send.topic,
                                            token),
                preferences=preferences_url(self.settings, item.public_id), token=token))
        except (DeliveryError, MessageError) as exc:
            outcome = _Outcome(item, classify(exc), exc)
            if outcome.verdict is Verdict.CONNECTION:
                self.halt.set()
            return outcome
        return _Outcome(item, Verdict.SENT)

    def record(self, outcomes: Sequence[_Outcome]) -> int:
        """The batch's results in one transaction, one UPDATE for everything that was sent;
        returns how many rows reached a final status.

        A final refusal counts as a bounce of its class at once: a 5.1.1 at RCPT suppresses
        the address now, not after a bounce message that may never come.
        """
        now = self.clock.now()
        sent = [o.claimed.delivery_id for o in outcomes if o.verdict is Verdict.SENT]
        failed = [o for o in outcomes if o.verdict is not Verdict.SENT]
        others = [self._failure(o, now) for o in failed]
        refusals = [Refusal(row.delivery_id, outcome.claimed.address, answer)
                    for outcome, row in zip(failed, others, strict=True)
                    if row.status == "failed" and (answer := outcome.answer) is not None]
        self.store.record_outcomes(self.name, now, sent, others, refusals,
                                   self.settings.bounce_soft_limit)
        return len(sent) + sum(row.status == "failed" for row in others)

    def _failure(self, outcome: _Outcome, now: dt.datetime) -> RowUpdate:
        error, attempts, answer = outcome.error, outcome.claimed.attempts + 1, outcome.answer
        row = partial(RowUpdate, outcome.claimed.delivery_id, code=getattr(error, "code", None),
                      error=str(error or ""), answer_class=answer.kind if answer else "",
                      enhanced_code=answer.enhanced if answer else "")
        if outcome.verdict in (Verdict.CONNECTION, Verdict.UNTRIED):  # nobody's attempt
            return row("pending", outcome.claimed.attempts)
        if outcome.verdict is Verdict.FAILED:
            return row("failed", attempts)
        if attempts >= self.settings.send_max_attempts:
            return row("failed", attempts, error=f"gave up after {attempts} attempts: {error}")
        delay = self.settings.send_retry_seconds * 2 ** (attempts - 1)
        return row("pending", attempts, next_attempt_at=now + dt.timedelta(seconds=delay))

    def idle(self) -> float | None:
        """Nothing was due: seconds to wait for a retry or another worker's batch, or None
        when the send is finished (then it is marked done)."""
        now = self.clock.now()
        pending, sending, soonest = self.store.settle(
            stored_id(self.send), self.name, now,
            now - dt.timedelta(seconds=self.settings.send_claim_timeout), lease.gone)
        if pending or sending:
            wait = (soonest - now).total_seconds() if pending and soonest else 0.2
            return min(max(wait, 0.01), 1.0)
        return None

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Sit out a back-off on the clock, renewing the lease meanwhile; `stop` ends it at once."""
        while seconds > 0:
            step = min(seconds, LEASE_WAIT)
            if self.clock.wait(step, stop):
                return
            seconds -= step
            if seconds > 0:
                self.store.renew_lease(stored_id(self.send), self.name)

    def run(self, progress: Progress | None, stop: threading.Event) -> None:
        """Claim, send and record batches until the send is done, paused, cancelled or stopped."""
        breaker = _Breaker()
        connection = ConnectionWatch(self.settings.send_connection_retry_seconds,
                                     self.settings.send_connection_patience,
                                     clock=lambda: self.clock.now().timestamp())
        counts = self.store.counts(stored_id(self.send))
        total, finished = sum(counts.values()), sum(counts.get(s, 0) for s in FINAL)
        if progress:
            progress(finished, total)
        threads = max(self.settings.smtp_connections, 1)
        with ThreadPoolExecutor(threads, thread_name_prefix="send") as pool:
            while not stop.is_set():
                status, batch, skipped = self.claim()
                if status != "running":
                    return
                finished += skipped
                if not batch:
                    if skipped:  # rows were due: the next ones may be too
                        continue
                    wait = self.idle()
                    if wait is None:
                        return
                    self.clock.wait(wait, stop)
                    continue
                self.halt.clear()
                try:
                    outcomes = list(pool.map(self.deliver, batch))
                except ConfigError as exc:  # a setting that cannot work: nothing was sent, none can be
                    pause_send(self.settings, stored_id(self.send), str(exc), WORKER)
                    raise
                done = self.record(outcomes)
                finished += done
                log.info("batch delivered", extra={
                    "send": self.send.id, "worker": self.name, "batch": len(batch),
                    "sent": sum(o.verdict is Verdict.SENT for o in outcomes), "count": finished})
                if progress:
                    progress(finished, total)
                backoff, reason = connection.after_batch(
                    [o.verdict for o in outcomes],
                    [o.error for o in outcomes if isinstance(o.error, DeliveryError)
                     and o.verdict is Verdict.CONNECTION])
                reason = reason or next(filter(None, map(breaker.feed, outcomes)), "")
                if reason:
                    log.warning("send paused: %s", reason, extra={"send": self.send.id})
                    pause_send(self.settings, stored_id(self.send), reason, WORKER)
                    return
                if backoff:
                    self.wait(backoff, stop)


def summary(settings: Settings, send_id: int) -> SendSummary:
    """Status and counts per delivery status of one send."""
    store = _store(settings)
    send = _found(store.send(send_id), send_id)
    return SendSummary(send_id, send.status, store.counts(send_id), send.pause_reason)

def _deliver(settings: Settings, send: Send, transport: Transport | None,
             progress: Progress | None, stop: threading.Event | None, name: str, clock: Clock
             ) -> SendSummary:
    own = transport is None
    transport = transport or transport_from_settings(settings)
    log.info("worker started", extra={"send": send.id, "worker": name, "theme": send.theme})
    try:
        _Worker(settings, _store(settings), send, transport, name, clock).run(
            progress, stop or threading.Event())
    finally:
        if own:
            transport.close()
    result = summary(settings, stored_id(send))
    log.info("worker stopped", extra={"send": send.id, "worker": name, "status": result.status,
                                      **{k: v for k, v in result.counts.items() if k in (
                                          "sent", "failed", "pending")}})
    return result


@contextmanager
def _holding(settings: Settings, send_id: int) -> Iterator[str]:
    """This worker's name, holding the send's lease (SQLite) for the block."""
    name = lease.worker_name()
    try:
        with lease.holding(get_engine(settings), send_id, name, settings.send_claim_timeout):
            yield name
    except lease.LeaseHeld as exc:
        raise SendError(str(exc)) from None


def run_send(settings: Settings, send_id: int, *, transport: Transport | None = None,
             progress: Progress | None = None, stop: threading.Event | None = None,
             clock: Clock = SYSTEM, manifest: Manifest | None = None,
             actor: audit.Actor | None = None) -> SendSummary:
    """Start or resume a send and deliver every pending recipient.

    Snapshots the recipients if not done yet, runs a paused send again, and re-queues rows left
    in "sending" by workers that are gone: on SQLite, whoever held the lease before; on
    PostgreSQL, workers that ended on this machine or fell silent for `send_claim_timeout`,
    so the batches of workers still sending are left to them (to add workers to a running
    send, `work` does the same without starting it). `stop` is checked between batches;
    `manifest` is the one the gate checked (see `snapshot_send`); `actor`, the person who
    resumes it (the audit trail's `send.resumed`).
    """
    with _holding(settings, send_id) as name:
        send = snapshot_send(settings, send_id, manifest, actor=actor)
        if send.status == "done":
            return summary(settings, send_id)
        _store(settings).release_claims(
            send_id, clock.now() - dt.timedelta(seconds=settings.send_claim_timeout), lease.gone)
        return _deliver(settings, send, transport, progress, stop, name, clock)


def work(settings: Settings, send_id: int | None = None, *, transport: Transport | None = None,
         progress: Progress | None = None, stop: threading.Event | None = None,
         clock: Clock = SYSTEM) -> list[SendSummary]:
    """Deliver the pending rows of running sends (or of one) beside other workers.

    Other workers' fresh claims are left alone; claims older than `send_claim_timeout` are
    taken over. Returns when nothing is left to do.
    """
    stop = stop or threading.Event()
    store = _store(settings)
    if send_id is not None and _found(store.send(send_id), send_id).status != "running":
        raise SendError(f"send {send_id} is not running; start it with "
                        f"`mailer sends resume {send_id}`")
    sends = store.running(send_id)
    results = []
    for send in sends:
        if stop.is_set():
            break
        with _holding(settings, stored_id(send)) as name:
            results.append(_deliver(settings, send, transport, progress, stop, name, clock))
    return results


# --- changing a send's course --------------------------------------------------------------


def _changed(actor: audit.Actor, action: str, **detail: str
             ) -> Callable[[Session, Send, str], object]:
    def note(session: Session, send: Send, status: str) -> None:
        audit.record(session, actor, action, f"send {send.id}", was=status, **detail)

    return note


def pause_send(settings: Settings, send_id: int, reason: str = "paused by hand",
               actor: audit.Actor = audit.SYSTEM) -> None:
    """Stop handing out batches; the batches in flight finish. `resume` carries on. The audit
    trail gets `send.paused` by `actor` with the reason."""
    status = _found(_store(settings).pause(send_id, reason, PAUSABLE,
                                           _changed(actor, "send.paused", reason=reason)), send_id)
    if status not in PAUSABLE:
        raise SendError(f"send {send_id} is {status}; only a planned or running send "
                        "can be paused")


def cancel_send(settings: Settings, send_id: int, actor: audit.Actor = audit.SYSTEM) -> None:
    """Call a send off; refused once any message has left (pause it instead). The audit trail
    gets `send.cancelled` by `actor`."""
    status, left = _store(settings).cancel(send_id, _changed(actor, "send.cancelled"))
    if _found(status, send_id) in FINISHED:
        raise SendError(f"send {send_id} is already {status}")
    if left:
        raise SendError(f"send {send_id} cannot be cancelled: {left} message(s) have left; "
                        f"pause it with `mailer sends pause {send_id}`")


# --- looking without sending ---------------------------------------------------------------


def dry_run(settings: Settings, mailing: ToSend, regions: Iterable[str] | None = None,
            audiences: Iterable[str] | None = None) -> Iterator[tuple[str, str, str]]:
    """(address, segment, variant) of everyone a send of the gate's manifest (or of a theme,
    after its preflight) would reach now; nothing is recorded."""
    chosen_regions, chosen_audiences = _segment(regions, audiences)
    manifest = _checked(settings, mailing)
    variants = _variants_of(manifest, chosen_regions, chosen_audiences)
    for person in _store(settings).recipients(manifest.topic, chosen_regions, chosen_audiences):
        yield (person.email, segment_key(person.region, person.audience),
               variants[person.region, person.audience])


def send_test(settings: Settings, mailing: ToSend, addresses: Sequence[str],
              regions: Iterable[str] | None = None, audiences: Iterable[str] | None = None, *,
              transport: Transport | None = None) -> list[tuple[str, str]]:
    """Each distinct variant of the gate's manifest (or of a theme, after its preflight) for
    the segment to each address, subject marked "[TEST]".

    Nothing is recorded against subscribers; the links point at the general unsubscribe and
    sign-up pages. An address may be "Name <address>"; the greeting uses that name, else the
    tester's name as a subscriber, else the neutral greeting. Returns (address, variant) pairs.
    """
    testers = tester_names(settings, addresses)
    chosen_regions, chosen_audiences = _segment(regions, audiences)
    manifest = _checked(settings, mailing)
    names = sorted(set(_variants_of(manifest, chosen_regions, chosen_audiences).values()))
    links = anonymous_links(settings)
    common = MessageCommon(0, install_id(get_engine(settings)), manifest.subject,
                           manifest.topic, manifest.greeting, manifest.greeting_named, test=True)
    own = transport is None
    transport = transport or transport_from_settings(settings)
    sent = []
    try:
        for name in names:
            template = MessageTemplate(settings, common, *_read_variant(settings, manifest.theme, manifest,
                                                                      name))
            for n, (address, tester) in enumerate(testers, 1):
                transport.send(template.message(
                    recipient_id=f"{name}-{n}", address=address, name=tester,
                    unsubscribe=links["unsubscribe_url"], preferences=links["preferences_url"]))
                sent.append((address, name))
    finally:
        if own:
            transport.close()
    return sent
