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
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from sqlalchemy import exists, func, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from mailer import addresses, taxonomy
from mailer.models import (
    TEXT_MAX,
    Subscriber,
    Subscription,
    Suppression,
    utcnow,
)

CONFIRM_RESEND_AFTER = dt.timedelta(minutes=15)
# Fixed, so suppressions survive a change of secret_key (a keyed hash would silently forget every
# erased address on key rotation). Nobody can read an address back from the table.
HASH_SALT = b"mailer.suppression.v1:"

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]")


class NotFound(Exception):
    """No such subscriber (never said to a web visitor in a way that reveals an address)."""


class AlreadyConfirmed(Exception):
    """A confirmation link that was already used, or has nothing left to confirm."""


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


def suppress(session: Session, email: str, reason: str) -> None:
    """Record that an address must not be mailed (unsubscribed, bounced, complaint, erased)."""
    key = hash_address(email)
    row = session.get(Suppression, key)
    if row is None:
        session.add(Suppression(address_hash=key, reason=reason))
    else:
        row.reason = reason
    session.flush()


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return subscriber


def find_by_email(session: Session, email: str) -> Subscriber:
    email = addresses.normalise(email)
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    if subscriber is None:
        raise NotFound(f"no subscriber with address {email}")
    return subscriber


def subscriptions_of(session: Session, subscriber_id: int) -> dict[str, Subscription]:
    rows = session.exec(select(Subscription).where(Subscription.subscriber_id == subscriber_id))
    return {row.topic: row for row in rows}


def active_topics(session: Session, subscriber_id: int) -> list[str]:
    subs = subscriptions_of(session, subscriber_id)
    return [t for t in taxonomy.TOPICS if t in subs and subs[t].status == "active"]


def request_subscription(
    session: Session, email: str, profile: Profile, source: str
) -> Subscriber | None:
    """Record a web sign-up awaiting double opt-in; return whom to mail, or None to stay quiet.

    A new address gets a pending subscriber; an existing one only keeps the request aside. None
    means a confirmation went to this address less than CONFIRM_RESEND_AFTER ago.
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
    subscriber.pending_request = json.dumps({**asdict(profile), "source": source})
    subscriber.confirm_sent_at = now
    session.flush()
    return subscriber


def confirmation_failed(session: Session, subscriber_id: int) -> None:
    """The confirmation mail did not leave: let the person try again at once."""
    get_subscriber(session, subscriber_id).confirm_sent_at = None
    session.flush()


def confirm(session: Session, subscriber_id: int) -> Subscriber:
    """Apply a confirmed sign-up: the person's own opt-in, which also lifts a suppression."""
    subscriber = get_subscriber(session, subscriber_id)
    if not subscriber.pending_request:
        raise AlreadyConfirmed("nothing to confirm")
    request = json.loads(subscriber.pending_request)
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
    return subscriber


def _apply_profile(subscriber: Subscriber, profile: Profile) -> None:
    subscriber.name = profile.name
    subscriber.organisation = profile.organisation
    subscriber.region = profile.region
    subscriber.audience = profile.audience


def _set_topics(session: Session, subscriber: Subscriber, topics: Iterable[str], source: str,
                only_add: bool = False) -> None:
    """Make exactly `topics` active (or, with only_add, add them to the active ones)."""
    now = utcnow()
    wanted = set(topics)
    existing = subscriptions_of(session, subscriber.id)  # type: ignore[arg-type]
    for topic in taxonomy.TOPICS:
        row = existing.get(topic)
        if topic in wanted:
            if row is None:
                row = Subscription(subscriber_id=subscriber.id, topic=topic)  # type: ignore[arg-type]
                session.add(row)
            if row.status != "active":
                row.status, row.consent_at, row.consent_source = "active", now, source
                row.updated_at = now
        elif row is not None and row.status == "active" and not only_add:
            row.status, row.updated_at = "unsubscribed", now


def update_preferences(session: Session, subscriber_id: int, profile: Profile) -> Subscriber:
    """The person's own changes. Someone who left everything must sign up again to come back."""
    subscriber = get_subscriber(session, subscriber_id)
    _apply_profile(subscriber, profile)
    subscriber.updated_at = utcnow()
    if subscriber.status == "active":
        _set_topics(session, subscriber, profile.topics, "preferences page")
    session.flush()
    return subscriber


def unsubscribe(
    session: Session, subscriber_id: int, topic: str | None = None, reason: str = "unsubscribed"
) -> Subscriber:
    """Leave one topic, or (topic None) everything, which also suppresses the address."""
    subscriber = get_subscriber(session, subscriber_id)
    now = utcnow()
    for row in subscriptions_of(session, subscriber_id).values():
        if (topic is None or row.topic == topic) and row.status != "unsubscribed":
            row.status, row.updated_at = "unsubscribed", now
    if topic is None:
        subscriber.status = "unsubscribed"
        subscriber.pending_request = None
        subscriber.updated_at = now
        suppress(session, subscriber.email, reason)
    session.flush()
    return subscriber


def personal_data(session: Session, subscriber_id: int) -> dict:
    """Everything kept about one person ("mijn gegevens"), as JSON-ready data."""
    subscriber = get_subscriber(session, subscriber_id)
    suppression = session.get(Suppression, subscriber.address_hash)
    return {
        "email": subscriber.email,
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
            for row in subscriptions_of(session, subscriber_id).values()
        ],
        "suppression": (
            {"reason": suppression.reason, "created_at": suppression.created_at.isoformat()}
            if suppression else None
        ),
    }


def erase(session: Session, subscriber_id: int) -> None:
    """Delete everything about a person; only the hashed suppression entry stays."""
    subscriber = get_subscriber(session, subscriber_id)
    suppress(session, subscriber.email, "erased")
    for row in subscriptions_of(session, subscriber_id).values():
        session.delete(row)
    session.flush()
    session.delete(subscriber)
    session.flush()


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


def recipients_query(
    topic: str, regions: Iterable[str] | None = None, audiences: Iterable[str] | None = None,
) -> Select:
    """Active, unsuppressed subscribers with an active subscription to `topic` in the segments,
    ordered by id; a query, so a send can snapshot them with one INSERT … SELECT."""
    query = (
        select(Subscriber)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            Subscription.topic == topic,
            Subscription.status == "active",
            Subscriber.status == "active",
            ~exists().where(Suppression.address_hash == Subscriber.address_hash),
        )
        .order_by(Subscriber.id)
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
