"""The send path's queries: every read and write of sends, their variants and deliveries.

The workers (runner), the lease and the report ask for what they need by name,
and the SQL lives here only, written with SQLAlchemy so it runs on SQLite and PostgreSQL alike.
A method is one transaction; steps that must happen together (claim a batch and renew the lease;
record a batch and its bounces) are one method.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, bindparam, case, exists, func, insert, literal, or_, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from mailer.bounces.classify import Verdict as Answer
from mailer.bounces.suppressions import record_bounce
from mailer.db import session_scope
from mailer.events import emit
from mailer.models import (
    Delivery,
    Send,
    SendVariant,
    Subscriber,
    Subscription,
    Suppression,
    stored_id,
    table_of,
    utcnow,
)
from mailer.subscribers.subscriptions import recipients, recipients_query

FINISHED = ("done", "cancelled")
# What runs in a send's changing transaction with the send and its status before (the audit row)
Then = Callable[[Session, Send, str], object]
LEFT = ("sending", "sent", "bounced")  # a message in these rows has left (or may have)


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery row a worker claimed, with what its message needs."""

    delivery_id: int
    subscriber_id: int
    public_id: str  # what the person's links carry
    attempts: int
    variant: str
    address: str
    name: str


@dataclass(frozen=True, slots=True)
class RowUpdate:
    """What becomes of a claimed row that was not sent, or of a due row skipped at its claim."""

    delivery_id: int
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None = None
    code: int | None = None
    error: str = ""
    answer_class: str = ""
    enhanced_code: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A final refusal with an RFC 3463 class: a bounce of the delivery's address."""

    delivery_id: int
    address: str
    answer: Answer


@dataclass(frozen=True)
class Snapshot:
    """What a send freezes when it starts: the build it sends and who gets which variant."""

    topic: str
    subject: str
    greeting: str
    greeting_named: str
    source_hash: str
    variants: Mapping[tuple[str, str], str]  # (region, audience) → variant name
    read_variant: Callable[[str], tuple[str, str, str]]  # name → HTML, text, web-version URL


@dataclass(frozen=True)
class Figures:
    """A send's deliveries counted for its report."""

    send: Send
    segments: list[tuple[str, str, str, int]]  # region, audience, status, count
    errors: list[tuple[str, int]]  # the most common answers and skip reasons
    classes: dict[str, int]  # RFC 3463 class of the refusals → count


class SendStore:
    """The named queries of the send path on one database."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @property
    def leased(self) -> bool:
        """Whether one worker at a time delivers a send, under a lease: on SQLite (one writer)."""
        return self.engine.dialect.name == "sqlite"

    # --- sends ------------------------------------------------------------------------------

    def create(self, values: Mapping[str, Any],
               then: Callable[[Session, int], object] | None = None) -> int:
        """A new send with `values`; `then` runs in the same transaction with its id."""
        with session_scope(self.engine, write=True) as session:
            send = Send(**values)
            session.add(send)
            session.flush()
            if then is not None:
                then(session, stored_id(send))
            return stored_id(send)

    def send(self, send_id: int) -> Send | None:
        with session_scope(self.engine) as session:
            return _send(session, send_id)

    def running(self, send_id: int | None = None) -> list[Send]:
        """The running sends (or the one, when it runs), oldest first."""
        query = select(Send).where(Send.status == "running").order_by(col(Send.id))
        with session_scope(self.engine) as session:
            return list(session.exec(query if send_id is None else query.where(Send.id == send_id)))

    def start(self, send_id: int, snapshot: Snapshot | None, then: Then | None = None
              ) -> Send | None:
        """Take the snapshot unless one was taken, and mark a planned or paused send running;
        `then(session, send, status before)` runs in the same transaction.

        The send's row is locked first, so on PostgreSQL one snapshot is taken however many
        workers start at once."""
        with session_scope(self.engine, write=True) as session:
            send = _send(session, send_id, lock=True)
            if send is None:
                return None
            status = send.status
            if send.snapshot_at is None and snapshot is not None:
                _snapshot(session, send, snapshot)
            if send.status in ("planned", "paused"):
                resumed = send.status == "paused"
                send.status, send.pause_reason = "running", ""
                _tell(session, "send.started", send, resumed=resumed,
                      recipients=sum(_counts(session, send_id).values()))
            session.add(send)
            if then is not None:
                then(session, send, status)
            return send

    def pause(self, send_id: int, reason: str, allowed: Collection[str],
              then: Then | None = None) -> str | None:
        """Pause the send when its status is one of `allowed`; returns the status it had
        (None: there is no such send). `then` runs in the same transaction when it paused."""
        with session_scope(self.engine, write=True) as session:
            send = _send(session, send_id, lock=True)
            if send is None or send.status not in allowed:
                return send.status if send else None
            status, send.status, send.pause_reason = send.status, "paused", reason
            session.add(send)
            if status != "paused":
                _tell(session, "send.paused", send, reason=reason)
            if then is not None:
                then(session, send, status)
            return status

    def cancel(self, send_id: int, then: Then | None = None) -> tuple[str | None, int]:
        """Call the send off (its pending rows skipped) unless it is finished or a message has
        left; returns its status before and how many messages have left. `then` runs in the
        same transaction when it was called off."""
        with session_scope(self.engine, write=True) as session:
            send = _send(session, send_id, lock=True)
            if send is None or send.status in FINISHED:
                return (send.status if send else None), 0
            left = session.exec(select(func.count()).where(
                Delivery.send_id == send_id, col(Delivery.status).in_(LEFT))).one()
            if left:
                return send.status, left
            status = send.status
            session.execute(update(Delivery).where(
                col(Delivery.send_id) == send_id, col(Delivery.status) == "pending",
            ).values(status="skipped", error="send cancelled"))
            send.status, send.finished_at = "cancelled", utcnow()
            session.add(send)
            if then is not None:
                then(session, send, status)
            return status, 0

    def variants(self, send_id: int) -> list[SendVariant]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(SendVariant).where(SendVariant.send_id == send_id)))

    def recipients(self, topic: str, regions: Iterable[str], audiences: Iterable[str]
                   ) -> Iterator[Subscriber]:
        """Whom a send of `topic` to the segments would reach now, streamed."""
        with session_scope(self.engine) as session:
            yield from recipients(session, topic, regions, audiences)

    # --- deliveries -------------------------------------------------------------------------

    def claim_batch(self, send: Send, worker: str, now: dt.datetime, limit: int
                    ) -> tuple[str, list[Claim], int]:
        """The send's status, up to `limit` due rows now marked as `worker`'s, and how many due
        rows were skipped instead because their people may no longer be mailed. "taken over"
        when another worker took the lease.

        SKIP LOCKED lets workers on PostgreSQL take different rows; SQLite has one writer.
        """
        with session_scope(self.engine, write=True) as session:
            status = session.exec(select(Send.status).where(Send.id == send.id)).one()
            if status != "running":
                return status, [], 0
            if not self._renew(session, stored_id(send), worker):
                return "taken over", [], 0
            due = (select(Delivery.id)
                   .where(Delivery.send_id == send.id, Delivery.status == "pending",
                          or_(col(Delivery.next_attempt_at).is_(None),
                              col(Delivery.next_attempt_at) <= now))
                   .order_by(col(Delivery.id)).limit(limit)
                   .with_for_update(skip_locked=True))
            ids = list(session.exec(due))
            if not ids:
                return status, [], 0
            rows = session.execute(
                select_columns(col(Delivery.id), col(Delivery.attempts), col(Delivery.variant),
                               col(Subscriber.id), col(Subscriber.public_id), col(Subscriber.email),
                               col(Subscriber.name), col(Subscriber.status),
                               col(Subscription.status), col(Suppression.reason))
                .select_from(Delivery)
                .outerjoin(Subscriber, col(Subscriber.id) == Delivery.subscriber_id)
                .outerjoin(Subscription, and_(col(Subscription.subscriber_id) == Subscriber.id,
                                              col(Subscription.topic) == send.topic))
                .outerjoin(Suppression, col(Suppression.address_hash) == Subscriber.address_hash)
                .where(col(Delivery.id).in_(ids)).order_by(col(Delivery.id)))
            claimed, skipped = [], []
            for (did, attempts, variant, sid, public_id, address, name, person, subscription,
                 suppressed) in rows:
                reason = _why_not(sid, person, subscription, suppressed)
                if reason:
                    skipped.append(RowUpdate(did, "skipped", attempts, error=reason))
                else:
                    claimed.append(Claim(did, sid, public_id, attempts, variant, address, name))
            if claimed:
                session.execute(update(Delivery).where(
                    col(Delivery.id).in_([c.delivery_id for c in claimed])
                ).values(status="sending", worker=worker, claimed_at=now))
            _update_rows(session, skipped)
            return status, claimed, len(skipped)

    def record_outcomes(self, worker: str, now: dt.datetime, sent: Sequence[int],
                        others: Sequence[RowUpdate], refusals: Sequence[Refusal],
                        soft_limit: int) -> None:
        """A batch's results in one transaction: one UPDATE for every row sent (still claimed by
        `worker`), the other rows as given, and each refusal as a bounce of its class."""
        with session_scope(self.engine, write=True) as session:
            if sent:
                session.execute(update(Delivery).where(
                    col(Delivery.id).in_(sent), col(Delivery.worker) == worker,
                    col(Delivery.status) == "sending",
                ).values(status="sent", sent_at=now, attempts=Delivery.attempts + 1,
                         code=None, error="", answer_class="", enhanced_code=""))
            _update_rows(session, others)
            for refusal in refusals:
                record_bounce(session, key=f"delivery:{refusal.delivery_id}",
                              address=refusal.address, verdict=refusal.answer,
                              delivery_id=refusal.delivery_id, soft_limit=soft_limit)

    def settle(self, send_id: int, worker: str, now: dt.datetime, abandoned_before: dt.datetime,
               gone: Callable[[str], bool]) -> tuple[int, int, dt.datetime | None]:
        """Nothing was due: take over the claims of workers that died (silent since
        `abandoned_before`, or `gone`), renew the lease, and count the pending and claimed rows
        with the soonest retry. When none are left the running send is marked done."""
        with session_scope(self.engine, write=True) as session:
            _release_abandoned(session, send_id, abandoned_before, gone)
            self._renew(session, send_id, worker)
            pending, sending, soonest = session.exec(
                select(func.count().filter(col(Delivery.status) == "pending"),
                       func.count().filter(col(Delivery.status) == "sending"),
                       func.min(Delivery.next_attempt_at).filter(col(Delivery.status) == "pending"))
                .where(Delivery.send_id == send_id)).one()
            if not (pending or sending) and _mark_done(session, send_id, now):
                _tell(session, "send.finished", _send(session, send_id),
                      counts=_counts(session, send_id))
            return pending, sending, soonest

    def release_claims(self, send_id: int, abandoned_before: dt.datetime,
                       gone: Callable[[str], bool]) -> None:
        """Put the rows left "sending" by workers that died back to pending; only these rows can
        go out twice. Under the lease (SQLite) the caller is the send's one worker, so every
        claim is an earlier worker's; otherwise other workers may be sending, and only the
        claims of those silent since `abandoned_before` or `gone` are taken."""
        with session_scope(self.engine, write=True) as session:
            if self.leased:
                _release(session, send_id, None)
            else:
                _release_abandoned(session, send_id, abandoned_before, gone)

    def counts(self, send_id: int) -> dict[str, int]:
        """How many of the send's rows are in each delivery status."""
        with session_scope(self.engine) as session:
            return _counts(session, send_id)

    def newest(self, limit: int) -> list[tuple[Send, dict[str, int]]]:
        """The newest `limit` sends, each with how many of its rows are in each delivery status."""
        with session_scope(self.engine) as session:
            sends = list(session.exec(select(Send).order_by(col(Send.id).desc()).limit(limit)))
            counts: dict[int, dict[str, int]] = {stored_id(send): {} for send in sends}
            if counts:
                for send_id, status, n in session.exec(
                        select(Delivery.send_id, Delivery.status, func.count())
                        .where(col(Delivery.send_id).in_(list(counts)))
                        .group_by(col(Delivery.send_id), col(Delivery.status))):
                    counts[send_id][status] = n
            return [(send, dict(sorted(counts[stored_id(send)].items()))) for send in sends]

    def figures(self, send_id: int, top_errors: int) -> Figures | None:
        """The send and its deliveries counted by segment and status, answer and class."""
        with session_scope(self.engine) as session:
            send = session.get(Send, send_id)
            if send is None:
                return None
            segments = session.exec(
                select(Delivery.region, Delivery.audience, Delivery.status, func.count())
                .where(Delivery.send_id == send_id)
                .group_by(Delivery.region, Delivery.audience, Delivery.status)).all()
            errors = session.exec(
                select(Delivery.error, func.count()).where(Delivery.send_id == send_id,
                                                           Delivery.error != "")
                .group_by(Delivery.error).order_by(func.count().desc()).limit(top_errors)).all()
            classes = session.exec(
                select(Delivery.answer_class, func.count()).where(
                    Delivery.send_id == send_id, Delivery.answer_class != "")
                .group_by(Delivery.answer_class)).all()
        return Figures(send, [(region, audience, status, n) for region, audience, status, n in segments],
                       [(e, n) for e, n in errors], dict(classes))

    # --- the lease (SQLite) ---------------------------------------------------------------------

    def take_lease(self, send_id: int, worker: str, now: dt.datetime,
                   free: Callable[[str, dt.datetime | None], bool]
                   ) -> tuple[str, dt.datetime, dt.datetime] | None:
        """Give the send's lease to `worker` when `free(holder, last renewal)` says so; otherwise
        the holder, since when it holds the lease and its last renewal."""
        with session_scope(self.engine, write=True) as session:
            row = session.exec(select(Send.lease_holder, Send.lease_since, Send.lease_renewed_at)
                               .where(Send.id == send_id)).first()
            if row is None:
                return None  # no such send: the caller says so when it reads it
            holder, since, renewed = row
            if free(holder, renewed):
                session.execute(update(Send).where(col(Send.id) == send_id)
                                .values(lease_holder=worker, lease_since=now, lease_renewed_at=now))
                return None
            assert since is not None and renewed is not None  # a held lease was taken and renewed
            return holder, since, renewed

    def release_lease(self, send_id: int, worker: str) -> None:
        with session_scope(self.engine, write=True) as session:
            session.execute(update(Send).where(col(Send.id) == send_id,
                                               col(Send.lease_holder) == worker)
                            .values(lease_holder="", lease_renewed_at=None))

    def renew_lease(self, send_id: int, worker: str) -> bool:
        """A sign of life between batches; False when the lease was lost."""
        with session_scope(self.engine, write=True) as session:
            return self._renew(session, send_id, worker)

    def _renew(self, session: Session, send_id: int, worker: str) -> bool:
        """A sign of life in the caller's transaction; False when the lease was lost (another
        worker took it over after this one was silent too long): then stop."""
        if not self.leased:
            return True
        result = session.exec(update(Send).where(col(Send.id) == send_id,
                                                 col(Send.lease_holder) == worker)
                              .values(lease_renewed_at=utcnow()))
        return result.rowcount == 1


# --- in a caller's transaction: bounce matching ---------------------------------------------------


# --- helpers --------------------------------------------------------------------------------


def _send(session: Session, send_id: int, lock: bool = False) -> Send | None:
    query = select(Send).where(Send.id == send_id)
    return session.exec(query.with_for_update() if lock else query).first()


def _counts(session: Session, send_id: int) -> dict[str, int]:
    rows = session.exec(select(Delivery.status, func.count())
                        .where(Delivery.send_id == send_id).group_by(Delivery.status))
    return dict(rows.all())


def _mark_done(session: Session, send_id: int, now: dt.datetime) -> bool:
    """Mark a running send done if none of its rows is pending or claimed; whether it was."""
    return session.exec(update(Send).where(
        col(Send.id) == send_id, col(Send.status) == "running",
        ~exists().where(col(Delivery.send_id) == send_id,
                        col(Delivery.status).in_(["pending", "sending"])),
    ).values(status="done", finished_at=now)).rowcount == 1


def _tell(session: Session, event: str, send: Send | None, **data: Any) -> None:
    """A send's event for the webhook receivers, in the transaction that changed the send."""
    assert send is not None
    emit(session, event, {"send_id": send.id, "theme": send.theme, "topic": send.topic,
                          "regions": send.regions, "audiences": send.audiences, **data})


def _snapshot(session: Session, send: Send, snapshot: Snapshot) -> None:
    """The send's variants and one pending row per recipient, written with one INSERT … SELECT."""
    for name in sorted(set(snapshot.variants.values())):
        html, text, online_url = snapshot.read_variant(name)
        session.add(SendVariant(send_id=stored_id(send), name=name, html=html,
                                text=text, online_url=online_url))
    people = recipients_query(snapshot.topic, send.regions, send.audiences).order_by(None).subquery()
    variant = case(*[(and_(people.c.region == region, people.c.audience == audience), name)
                     for (region, audience), name in snapshot.variants.items()])
    columns = ["send_id", "subscriber_id", "region", "audience", "variant", "status", "attempts",
               "worker", "error"]
    rows = select_columns(literal(send.id), people.c.id, people.c.region, people.c.audience, variant,
                  literal("pending"), literal(0), literal(""), literal("")).order_by(people.c.id)
    session.execute(insert(Delivery).from_select(columns, rows))
    send.topic, send.subject = snapshot.topic, snapshot.subject
    send.greeting, send.greeting_named = snapshot.greeting, snapshot.greeting_named
    send.source_hash, send.snapshot_at = snapshot.source_hash, utcnow()


def _why_not(subscriber_id: int | None, person: str | None, subscription: str | None,
             suppressed: str | None) -> str:
    """Why a snapshotted recipient may no longer be mailed, or ""."""
    if subscriber_id is None:
        return "erased"
    if suppressed:
        return f"suppressed ({suppressed})"
    if person != "active":
        return f"subscriber {person}"
    if subscription != "active":
        return "left the topic"
    return ""


def _update_rows(session: Session, rows: Sequence[RowUpdate]) -> None:
    """Several rows with different values in one executemany."""
    if rows:
        table = table_of(Delivery)
        session.connection().execute(
            update(table).where(table.c.id == bindparam("did")).values(
                status=bindparam("status"), attempts=bindparam("attempts"),
                next_attempt_at=bindparam("next"), code=bindparam("code"),
                error=bindparam("error"), answer_class=bindparam("class"),
                enhanced_code=bindparam("enhanced")),
            [{"did": r.delivery_id, "status": r.status, "attempts": r.attempts,
              "next": r.next_attempt_at, "code": r.code, "error": r.error,
              "class": r.answer_class, "enhanced": r.enhanced_code} for r in rows])


def _release(session: Session, send_id: int, claimed_before: dt.datetime | None) -> None:
    """Put rows stuck in "sending" back to pending: all of them, or those claimed before a time
    (a worker that died). Only these rows can go out twice."""
    query = update(Delivery).where(col(Delivery.send_id) == send_id,
                                   col(Delivery.status) == "sending")
    if claimed_before is not None:
        query = query.where(col(Delivery.claimed_at) < claimed_before)
    session.execute(query.values(status="pending", worker=""))


def _release_abandoned(session: Session, send_id: int, claimed_before: dt.datetime,
                       gone: Callable[[str], bool]) -> None:
    """Take over the claims of workers that died: those silent since `claimed_before`, and at
    once those `gone` says are (processes on this machine that ended)."""
    _release(session, send_id, claimed_before)
    workers = session.exec(select(Delivery.worker).distinct().where(
        Delivery.send_id == send_id, Delivery.status == "sending")).all()
    dead = [name for name in workers if gone(name)]
    if dead:
        session.execute(update(Delivery).where(
            col(Delivery.send_id) == send_id, col(Delivery.status) == "sending",
            col(Delivery.worker).in_(dead)).values(status="pending", worker=""))
