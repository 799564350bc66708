"""Subscribe, confirm, unsubscribe, preferences, personal data and erasure.

The rules that protect people live here, not in the web app or the CLI:
- an unsubscribed or erased address is suppressed (by hash) and only the person's own double
  opt-in lifts that; imports never do;
- a web sign-up changes nothing about an existing subscriber until it is confirmed, so a form
  filled in by a stranger cannot alter someone's data or subscriptions;
- confirmation mails to one address are spaced out, so the form cannot be used to flood it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import TextClause, bindparam, delete, exists, func, or_, text, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from mailer import addresses, taxonomy
from mailer.audit import Actor, record
from mailer.errors import AccessError, DataError
from mailer.events import emit, forget, outbox_params, outbox_sql
from mailer.models import (
    TEXT_MAX,
    Subscriber,
    Subscription,
    Suppression,
    stored_id,
    table_of,
    utcnow,
)
from mailer.subscribers.tokens import Claim

CONFIRM_RESEND_AFTER = dt.timedelta(minutes=15)
RECIPIENT = Actor("recipient", "subscription page")  # a person acting on their own pages
# Fixed, so suppressions survive a change of secret_key (a keyed hash would silently forget every
# erased address on key rotation). Nobody can read an address back from the table.
HASH_SALT = b"mailer.suppression.v1:"

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]")


class NotFound(DataError):
    """No such subscriber (never said to a web visitor in a way that reveals an address)."""


class AlreadyConfirmed(AccessError):
    """A confirmation link of someone whose sign-up is already confirmed."""


class StaleConfirmation(AccessError):
    """A confirmation link for a sign-up that was replaced by a newer one, or that has gone."""


class SignUp(NamedTuple):
    """A recorded web sign-up: whom to mail, and the nonce its confirmation link must carry."""

    subscriber: Subscriber
    nonce: str


# Who a service call is about: a row id (our own commands), or the claim of a link's token.
SubscriberRef = int | Claim


def text_problem(label: str, value: str) -> str | None:
    """Names end up in mail headers: no line breaks or control characters, bounded length."""
    if CONTROL_RE.search(value):
        return f"{label} contains a line break or control character"
    if len(value) > TEXT_MAX:
        return f"{label} longer than {TEXT_MAX} characters"
    return None


def hash_address(email: str) -> str:
    return hashlib.sha256(HASH_SALT + addresses.normalise(email).encode()).hexdigest()


@dataclass(frozen=True)
class Profile:
    """What a person tells us about themselves, from the sign-up form or the preferences page."""

    name: str = ""
    organisation: str = ""
    region: str = ""
    audience: str = ""
    topics: tuple[str, ...] = field(default_factory=tuple)

    def problems(self, require_topics: bool = True) -> dict[str, str]:
        """Field name → problem, empty when the profile can be stored."""
        found = {}
        for key in ("name", "organisation"):
            problem = text_problem(key, getattr(self, key))
            if problem:
                found[key] = problem
        for key in ("region", "audience"):
            problem = taxonomy.problem(key, getattr(self, key))
            if problem:
                found[key] = problem
        if taxonomy.problems("topic", self.topics) or (require_topics and not self.topics):
            found["topics"] = "choose at least one known topic"
        return found


def is_suppressed(session: Session, email: str) -> bool:
    return session.get(Suppression, hash_address(email)) is not None


# The one-click path in plain SQL: every statement goes through a key or an index, and none
# pays for building ORM statements on every request.
_TIME = table_of(Subscriber).c.updated_at.type


def _timed(sql: str) -> TextClause:
    """A statement whose `:now` is stored like the models' timestamps."""
    return text(sql).bindparams(bindparam("now", type_=_TIME))


_FIND_PUBLIC = text("SELECT id, status FROM subscriber WHERE public_id = :public_id")
_TOPICS_OFF = ("UPDATE subscription SET status = 'unsubscribed', updated_at = :now, "
               "unsubscribed_via = :via "
               "WHERE subscriber_id = {person} AND status <> 'unsubscribed'")
_PERSON_OFF = ("UPDATE subscriber SET status = 'unsubscribed', pending_request = NULL, "
               "updated_at = :now WHERE {where} RETURNING {returning}")
_SUPPRESS_SQL = ("INSERT INTO suppression (address_hash, reason, created_at) {values} "
                 "ON CONFLICT (address_hash) DO UPDATE SET reason = excluded.reason")
_LEAVE_EVERY_TOPIC = _timed(_TOPICS_OFF.format(person=":id"))
_LEAVE_TOPIC = _timed(_TOPICS_OFF.format(person=":id") + " AND topic = :topic")
_LEAVE = _timed(_PERSON_OFF.format(where="id = :id", returning="address_hash"))
_SUPPRESS = _timed(_SUPPRESS_SQL.format(values="VALUES (:hash, :reason, :now)"))
# PostgreSQL does the same in one statement (data-modifying CTEs, which SQLite lacks): one
# round trip to the server instead of four, the webhook outbox included. An event is written
# only when something changed: a topic left, or a person who had not left everything yet
# (`was` reads the row as it was before the statement).
_PERSON = "(SELECT id FROM person)"
_LEFT = "EXISTS (SELECT 1 FROM topics)"
_OUTBOX = outbox_sql("postgresql")
_ONE_STATEMENT_EVERY_TOPIC = _timed(
    f"WITH was AS ({_FIND_PUBLIC.text}), "
    f"person AS ({_PERSON_OFF.format(where='public_id = :public_id', returning='id, address_hash')}), "
    f"topics AS ({_TOPICS_OFF.format(person=_PERSON)} RETURNING id), "
    f"suppressed AS ({_SUPPRESS_SQL.format(values='SELECT address_hash, :reason, :now FROM person')}), "
    f"told AS ({_OUTBOX} AND ({_LEFT} OR EXISTS (SELECT 1 FROM was WHERE status <> 'unsubscribed'))) "
    "SELECT id FROM person")
_ONE_STATEMENT_TOPIC = _timed(
    f"WITH person AS ({_FIND_PUBLIC.text}), "
    f"topics AS ({_TOPICS_OFF.format(person=_PERSON)} AND topic = :topic RETURNING id), "
    f"told AS ({_OUTBOX} AND {_LEFT}) SELECT id FROM person")


def suppress(session: Session, email: str, reason: str) -> None:
    """Record that an address must not be mailed (unsubscribed, bounced, complaint, erased)."""
    session.flush()
    session.execute(_SUPPRESS, {"hash": hash_address(email), "reason": reason, "now": utcnow()})
    _forget_loaded(session)


def get_subscriber(session: Session, ref: SubscriberRef) -> Subscriber:
    subscriber = _claimed(session, ref) if isinstance(ref, Claim) else session.get(Subscriber, ref)
    if subscriber is None:
        raise NotFound("no such subscriber")
    return subscriber


def _claimed(session: Session, claim: Claim) -> Subscriber | None:
    """The person a link names, if they still exist.

    A link from before public ids names a row id. It counts only for a row that existed when
    public ids came (it has that `legacy_id`; rows made later have none), and only when the link
    was made after the row was: before, the id belonged to someone erased since.
    """
    if claim.public_id is not None:
        return session.exec(select(Subscriber).where(Subscriber.public_id == claim.public_id)
                            ).first()
    person = session.exec(select(Subscriber).where(Subscriber.legacy_id == claim.legacy_id)
                          ).first()
    if person is None or claim.issued_at < person.created_at.replace(microsecond=0):
        return None
    return person


def find_by_email(session: Session, email: str) -> Subscriber:
    email = addresses.normalise(email)
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    if subscriber is None:
        raise NotFound(f"no subscriber with address {email}; `mailer subscribers find TEXT` looks "
                       "people up")
    return subscriber


def subscriptions_of(session: Session, subscriber_id: int) -> dict[str, Subscription]:
    rows = session.exec(select(Subscription).where(Subscription.subscriber_id == subscriber_id))
    return {row.topic: row for row in rows}


def active_topics(session: Session, subscriber_id: int) -> list[str]:
    subs = subscriptions_of(session, subscriber_id)
    return [t for t in taxonomy.TOPICS if t in subs and subs[t].status == "active"]


def profile_of(session: Session, ref: SubscriberRef) -> tuple[Subscriber, list[str]]:
    """A person and their active topics, for their preferences page."""
    subscriber = get_subscriber(session, ref)
    return subscriber, active_topics(session, stored_id(subscriber))


def request_subscription(
    session: Session, email: str, profile: Profile, source: str
) -> SignUp | None:
    """Record a web sign-up awaiting double opt-in; return whom to mail, or None to stay quiet.

    A new address gets a pending subscriber; an existing one only keeps the request aside. A new
    request replaces an older one, with a new nonce, so an older link cannot apply it. None means
    a confirmation went to this address less than CONFIRM_RESEND_AFTER ago.
    """
    email = addresses.normalise(email)
    now = utcnow()
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    if subscriber is None:
        subscriber = Subscriber(
            email=email, address_hash=hash_address(email), name=profile.name,
            organisation=profile.organisation, region=profile.region,
            audience=profile.audience, status="pending", source=source,
        )
        session.add(subscriber)
    elif subscriber.confirm_sent_at and now - subscriber.confirm_sent_at < CONFIRM_RESEND_AFTER:
        return None
    nonce = secrets.token_hex(8)
    subscriber.pending_request = json.dumps({**asdict(profile), "source": source, "nonce": nonce})
    subscriber.confirm_sent_at = now
    session.flush()
    return SignUp(subscriber, nonce)


def purge_pending(session: Session, older_than: dt.timedelta) -> int:
    """Forget sign-ups never confirmed within `older_than`: people who only ever were pending are
    deleted, and others lose the request they left waiting. Returns how many were affected."""
    cutoff = utcnow() - older_than
    sent = func.coalesce(Subscriber.confirm_sent_at, Subscriber.created_at)
    gone = session.exec(select(Subscriber.id).where(Subscriber.status == "pending", sent < cutoff)
                        ).all()
    for chunk in (gone[i:i + 500] for i in range(0, len(gone), 500)):
        session.execute(delete(Subscription).where(col(Subscription.subscriber_id).in_(chunk)))
        session.execute(delete(Subscriber).where(col(Subscriber.id).in_(chunk)))
    cleared = session.exec(
        update(Subscriber)
        .where(col(Subscriber.pending_request).is_not(None), sent < cutoff)
        .values(pending_request=None, confirm_sent_at=None)
    ).rowcount
    session.flush()
    return len(gone) + cleared


def confirmation_failed(session: Session, subscriber_id: int) -> None:
    """The confirmation mail did not leave: let the person try again at once."""
    get_subscriber(session, subscriber_id).confirm_sent_at = None
    session.flush()


def pending_sign_up(session: Session, ref: SubscriberRef, nonce: str) -> tuple[Subscriber, dict]:
    """The sign-up a confirmation link was mailed for, still waiting; changes nothing.

    Raises AlreadyConfirmed when nothing waits and the person is active, StaleConfirmation when
    the link's sign-up was replaced by a newer one or is gone.
    """
    subscriber = get_subscriber(session, ref)
    if not subscriber.pending_request:
        if subscriber.status == "active":
            raise AlreadyConfirmed("nothing to confirm")
        raise StaleConfirmation("no sign-up waits for this link")
    request = json.loads(subscriber.pending_request)
    if not secrets.compare_digest(str(request.get("nonce", "")), nonce):
        raise StaleConfirmation("a newer sign-up replaced the one this link was sent for")
    return subscriber, request


def confirm(session: Session, ref: SubscriberRef, nonce: str) -> Subscriber:
    """Apply the confirmed sign-up the link was sent for: the person's own opt-in, which also
    lifts a suppression."""
    subscriber, request = pending_sign_up(session, ref, nonce)
    now = utcnow()
    profile = Profile(**{k: request[k] for k in ("name", "organisation", "region", "audience")},
                      topics=tuple(request["topics"]))
    _apply_profile(subscriber, profile)
    subscriber.status = "active"
    subscriber.pending_request = None
    subscriber.updated_at = now
    _set_topics(session, subscriber, profile.topics, f"double opt-in ({request['source']})",
                only_add=True)
    suppression = session.get(Suppression, subscriber.address_hash)
    if suppression is not None:
        session.delete(suppression)
    session.flush()
    emit(session, "subscriber.confirmed",
         {"public_id": subscriber.public_id, "region": subscriber.region,
          "audience": subscriber.audience, "topics": active_topics(session, stored_id(subscriber))},
         address=subscriber.email)
    return subscriber


def _apply_profile(subscriber: Subscriber, profile: Profile) -> None:
    subscriber.name = profile.name
    subscriber.organisation = profile.organisation
    subscriber.region = profile.region
    subscriber.audience = profile.audience


def _set_topics(session: Session, subscriber: Subscriber, topics: Iterable[str], source: str,
                only_add: bool = False) -> list[str]:
    """Make exactly `topics` active (or, with only_add, add them to the active ones); returns
    the topics left."""
    now = utcnow()
    wanted = set(topics)
    existing = subscriptions_of(session, stored_id(subscriber))
    left = []
    for topic in taxonomy.TOPICS:
        row = existing.get(topic)
        if topic in wanted:
            if row is None:
                row = Subscription(subscriber_id=stored_id(subscriber), topic=topic)
                session.add(row)
            if row.status != "active":
                row.status, row.consent_at, row.consent_source = "active", now, source
                row.updated_at = now
        elif row is not None and row.status == "active" and not only_add:
            row.status, row.updated_at, row.unsubscribed_via = "unsubscribed", now, "page"
            left.append(topic)
    return left


def set_topics(session: Session, subscriber: Subscriber, topics: Iterable[str], source: str) -> None:
    """Make exactly `topics` active for a subscriber, recording `source` as the consent of each
    topic switched on (a partner's change through the API); each topic left is told to the
    webhook receivers."""
    for topic in _set_topics(session, subscriber, topics, source):
        emit(session, "subscriber.unsubscribed", _left(subscriber.public_id, topic))


def update_preferences(session: Session, ref: SubscriberRef, profile: Profile) -> Subscriber:
    """The person's own changes. Someone who left everything must sign up again to come back.
    Each topic left is told to the webhook receivers as an unsubscribe from it."""
    subscriber = get_subscriber(session, ref)
    _apply_profile(subscriber, profile)
    subscriber.updated_at = utcnow()
    if subscriber.status == "active":
        for topic in _set_topics(session, subscriber, profile.topics, "preferences page"):
            emit(session, "subscriber.unsubscribed", _left(subscriber.public_id, topic))
    session.flush()
    return subscriber


def unsubscribe(
    session: Session, ref: SubscriberRef, topic: str | None = None, reason: str = "unsubscribed",
    via: str = "page",
) -> str:
    """Leave one topic, or (topic None) everything, which also suppresses the address; returns
    the person's public id. `via` (one-click, page, mail, staff) is kept for the figures. When
    that changed something, subscriber.unsubscribed is written for the webhook receivers.

    This is the one-click path, so it stays lean: on PostgreSQL one statement that finds the
    person by the unique public id and writes by key (their subscriptions, their row, the
    suppression, the event); on SQLite (no round trips to pay for) the same as a few statements.
    """
    if isinstance(ref, Claim) and ref.public_id is not None:
        if session.get_bind().dialect.name == "postgresql":
            if session.execute(*unsubscribe_in_one_statement(ref.public_id, topic, reason, via)
                               ).scalar() is None:
                raise NotFound("no such subscriber")
            _forget_loaded(session)
            return ref.public_id
        found = session.execute(_FIND_PUBLIC, {"public_id": ref.public_id}).first()
        if found is None:
            raise NotFound("no such subscriber")
        (person_id, status), public_id = found, ref.public_id
    else:
        person = get_subscriber(session, ref)
        person_id, public_id, status = person.id, person.public_id, person.status
    params = {"id": person_id, "now": utcnow(), "topic": topic, "via": via}
    left = session.connection().execute(_LEAVE_EVERY_TOPIC if topic is None else _LEAVE_TOPIC,
                                        params).rowcount
    if topic is None:
        address_hash = session.execute(_LEAVE, params).scalar_one()
        session.execute(_SUPPRESS, {**params, "hash": address_hash, "reason": reason})
    if left or (topic is None and status != "unsubscribed"):
        emit(session, "subscriber.unsubscribed", _left(public_id, topic))
    _forget_loaded(session)
    return public_id


def _left(public_id: str, topic: str | None) -> dict[str, str | None]:
    """The data of subscriber.unsubscribed: who, and the topic (None: every topic)."""
    return {"public_id": public_id, "topic": topic}


def unsubscribe_in_one_statement(public_id: str, topic: str | None, reason: str = "unsubscribed",
                                 via: str = "page") -> tuple[TextClause, dict]:
    """`unsubscribe` on PostgreSQL for a person named by public id, as one statement (so one
    round trip, and on an autocommit connection a transaction of its own) and its parameters.
    The statement returns the person's row id, or no row when nobody has that public id."""
    statement = _ONE_STATEMENT_EVERY_TOPIC if topic is None else _ONE_STATEMENT_TOPIC
    event = outbox_params("subscriber.unsubscribed", _left(public_id, topic))
    return statement, {**event, "public_id": public_id, "topic": topic, "reason": reason,
                       "via": via}


def _forget_loaded(session: Session) -> None:
    """Plain SQL bypassed the rows this session had loaded: read them afresh when used."""
    if session.identity_map:
        session.expire_all()


def personal_data(session: Session, ref: SubscriberRef) -> dict:
    """Everything kept about one person ("mijn gegevens"), as JSON-ready data."""
    subscriber = get_subscriber(session, ref)
    suppression = session.get(Suppression, subscriber.address_hash)
    return {
        "email": subscriber.email,
        "public_id": subscriber.public_id,
        "name": subscriber.name,
        "organisation": subscriber.organisation,
        "region": subscriber.region,
        "audience": subscriber.audience,
        "status": subscriber.status,
        "source": subscriber.source,
        "created_at": subscriber.created_at.isoformat(),
        "updated_at": subscriber.updated_at.isoformat(),
        "pending_request": json.loads(subscriber.pending_request or "null"),
        "confirmation_mail_sent_at": (
            subscriber.confirm_sent_at.isoformat() if subscriber.confirm_sent_at else None
        ),
        "subscriptions": [
            {
                "topic": row.topic,
                "status": row.status,
                "consent_at": row.consent_at.isoformat() if row.consent_at else None,
                "consent_source": row.consent_source,
                "updated_at": row.updated_at.isoformat(),
            }
            for row in subscriptions_of(session, stored_id(subscriber)).values()
        ],
        "suppression": (
            {"reason": suppression.reason, "created_at": suppression.created_at.isoformat()}
            if suppression else None
        ),
    }


def erase(session: Session, ref: SubscriberRef, by: Actor = RECIPIENT) -> None:
    """Delete everything about a person; only the hashed suppression entry stays (and the
    webhook outbox loses what held their address). Their public id goes with the row, so every
    link they were sent stops working; subscriber.erased tells the receivers.

    `subscriber.erased` by `by` (default: the person on their own erase page) goes into the
    audit trail in the same transaction, naming only that public id: never the address."""
    subscriber = get_subscriber(session, ref)
    public_id = subscriber.public_id
    suppress(session, subscriber.email, "erased")
    for row in subscriptions_of(session, stored_id(subscriber)).values():
        session.delete(row)
    session.flush()
    session.delete(subscriber)
    session.flush()
    forget(session, public_id)
    emit(session, "subscriber.erased", {"public_id": public_id})
    record(session, by, "subscriber.erased", f"subscriber {public_id}")


def find_subscribers(session: Session, text: str, limit: int = 50) -> list[Subscriber]:
    """Subscribers whose address, name or organisation contains `text` (case-insensitive)."""
    pattern = f"%{text.strip().lower()}%"
    query = (
        select(Subscriber)
        .where(or_(col(Subscriber.email).like(pattern), col(Subscriber.name).ilike(pattern),
                   col(Subscriber.organisation).ilike(pattern)))
        .order_by(Subscriber.email)
        .limit(limit)
    )
    return list(session.exec(query))


def summary_document(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """One person as `mailer subscribers find` lists them, as JSON-ready data: their public id,
    address, name, organisation, segment, status and active topics."""
    return {"public_id": subscriber.public_id, "email": subscriber.email, "name": subscriber.name,
            "organisation": subscriber.organisation, "region": subscriber.region,
            "audience": subscriber.audience, "status": subscriber.status,
            "topics": active_topics(session, stored_id(subscriber))}


def recipients_query(
    topic: str, regions: Iterable[str] | None = None, audiences: Iterable[str] | None = None,
) -> SelectOfScalar[Subscriber]:
    """Active, unsuppressed subscribers with an active subscription to `topic` in the segments,
    ordered by id; a query, so a send can snapshot them with one INSERT … SELECT."""
    query = (
        select(Subscriber)
        .join(Subscription, col(Subscription.subscriber_id) == Subscriber.id)
        .where(
            Subscription.topic == topic,
            Subscription.status == "active",
            Subscriber.status == "active",
            ~exists().where(col(Suppression.address_hash) == Subscriber.address_hash),
        )
        .order_by(col(Subscriber.id))
    )
    if regions:
        query = query.where(col(Subscriber.region).in_(list(regions)))
    if audiences:
        query = query.where(col(Subscriber.audience).in_(list(audiences)))
    return query


def recipients(
    session: Session, topic: str, regions: Iterable[str] | None = None,
    audiences: Iterable[str] | None = None, batch: int = 1000,
) -> Iterator[Subscriber]:
    """The subscribers of `recipients_query`, streamed in batches so 100,000 recipients never
    sit in memory at once."""
    query = recipients_query(topic, regions, audiences).execution_options(yield_per=batch)
    yield from session.exec(query)


def recipient_count(
    session: Session, topic: str, regions: Iterable[str] | None = None,
    audiences: Iterable[str] | None = None,
) -> int:
    """How many subscribers `recipients_query` finds, counted by the database."""
    people = recipients_query(topic, regions, audiences).order_by(None).subquery()
    return session.exec(select(func.count()).select_from(people)).one()
