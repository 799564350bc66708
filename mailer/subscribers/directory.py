"""Subscribers as other systems see them (the REST API): pages in key order, a create with a
recorded consent, changes, and suppressions, under the rules the CLI obeys:

- a suppressed address (unsubscribed, erased, bounced, complained) is never added back by a
  create; only the person's own double opt-in lifts a suppression;
- an address already on the list is not created again: it is changed instead;
- only an active subscriber is changed, and a topic the person left is not switched back on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Integer, Row, any_, bindparam, exists
from sqlmodel import Session, col, select

from mailer import addresses, taxonomy
from mailer.errors import DataError
from mailer.models import TEXT_MAX, Subscriber, Subscription, Suppression, stored_id, utcnow
from mailer.subscribers.subscriptions import (
    NotFound,
    Profile,
    hash_address,
    is_suppressed,
    set_topics,
    subscriptions_of,
    suppress,
    unsubscribe,
)


class Conflict(DataError):
    """A request that contradicts what is stored; `field` names the part to blame, if any."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Filters:
    region: str | None = None
    audience: str | None = None
    topic: str | None = None  # an active subscription to it
    status: str | None = None


def by_public_id(session: Session, public_id: str) -> Subscriber:
    person = session.exec(select(Subscriber).where(Subscriber.public_id == public_id)).first()
    if person is None:
        raise NotFound(f"no subscriber {public_id}")
    return person


def active_topics(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    """The active topics of each person, in the taxonomy's order, in one query."""
    found: dict[int, set[str]] = {i: set() for i in ids}
    if ids:
        person = col(Subscription.subscriber_id)
        # PostgreSQL gets the ids as one array: a list of 500 bound values cost more than the
        # rows it finds (bench/api_list.py); SQLite has no arrays.
        among = (person == any_(bindparam("ids", list(ids), type_=ARRAY(Integer)))
                 if session.get_bind().dialect.name == "postgresql" else person.in_(list(ids)))
        rows: Any = session.execute(select(Subscription.subscriber_id, Subscription.topic).where(
            among, col(Subscription.status) == "active"))
        for who, topic in rows:
            found[who].add(topic)
    return {i: [t for t in taxonomy.TOPICS if t in topics] for i, topics in found.items()}


# What a page shows of each person, read as plain rows: building ORM objects took most of the
# time of a page of 500 (bench/api_list.py).
LISTED = tuple(col(getattr(Subscriber, name)) for name in (
    "id", "public_id", "email", "name", "organisation", "region", "audience", "status", "source",
    "created_at", "updated_at"))


def _in_page(query: Any, filters: Filters, after: int | None, limit: int) -> Any:
    query = query.order_by(col(Subscriber.id)).limit(limit)
    if after is not None:
        query = query.where(col(Subscriber.id) > after)
    for name in ("region", "audience", "status"):
        if (value := getattr(filters, name)) is not None:
            query = query.where(getattr(Subscriber, name) == value)
    if filters.topic is not None:
        query = query.where(exists().where(
            col(Subscription.subscriber_id) == Subscriber.id,
            col(Subscription.topic) == filters.topic, col(Subscription.status) == "active"))
    return query


def page(session: Session, filters: Filters, after: int | None, limit: int
         ) -> tuple[list[Row], dict[int, list[str]], bool]:
    """Up to `limit` subscribers after row `after` in row order (the columns of LISTED), the
    active topics of each, and whether more follow."""
    people = list(session.execute(_in_page(select(*LISTED), filters, after, limit + 1)))
    shown = people[:limit]
    return shown, active_topics(session, [person.id for person in shown]), len(people) > limit


def check_new(session: Session, email: str) -> None:
    """Conflict when the address may not be created: suppressed, or already on the list."""
    if is_suppressed(session, email):
        raise Conflict("this address is suppressed (it unsubscribed, was erased or bounced): "
                       "only the person's own sign-up can bring it back", "email")
    found = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    if found is not None:
        raise Conflict(f"this address is already subscriber {found.public_id} ({found.status}); "
                       "change it instead of creating it", "email")


def add_with_consent(session: Session, email: str, profile: Profile, consent_source: str,
                     consent_at: dt.datetime, source: str) -> Subscriber:
    """An active subscriber whose consent another system recorded (`consent_source`, when)."""
    email = addresses.normalise(email)
    check_new(session, email)
    person = Subscriber(email=email, address_hash=hash_address(email), name=profile.name,
                        organisation=profile.organisation, region=profile.region,
                        audience=profile.audience, status="active", source=source[:TEXT_MAX])
    session.add(person)
    session.flush()
    for topic in dict.fromkeys(profile.topics):
        session.add(Subscription(subscriber_id=stored_id(person), topic=topic, status="active",
                                 consent_at=consent_at, consent_source=consent_source[:TEXT_MAX]))
    session.flush()
    return person


def change(session: Session, person: Subscriber, changes: dict, source: str) -> Subscriber:
    """Change an active subscriber's name, organisation, region, audience and topics."""
    if person.status != "active":
        raise Conflict(f"subscriber {person.public_id} is {person.status}: only an active "
                       "subscriber can be changed; the person's own sign-up decides the rest")
    if "topics" in changes:
        rows = subscriptions_of(session, stored_id(person))
        left = [t for t in changes["topics"] if t in rows and rows[t].status == "unsubscribed"]
        if left:
            raise Conflict(f"subscriber {person.public_id} left {', '.join(left)}: only their "
                           "own sign-up switches it on again", "topics")
        set_topics(session, person, changes["topics"], source[:TEXT_MAX])
    for name in ("name", "organisation", "region", "audience"):
        if name in changes:
            setattr(person, name, changes[name])
    person.updated_at = utcnow()
    session.add(person)
    session.flush()
    return person


def suppressions_page(session: Session, reason: str | None, after: str | None, limit: int
                      ) -> tuple[list[Suppression], bool]:
    query = select(Suppression).order_by(col(Suppression.address_hash)).limit(limit + 1)
    if after is not None:
        query = query.where(col(Suppression.address_hash) > after)
    if reason is not None:
        query = query.where(Suppression.reason == reason)
    rows = list(session.exec(query))
    return rows[:limit], len(rows) > limit


def add_suppression(session: Session, email: str, reason: str) -> tuple[Suppression, bool]:
    """Suppress an address (a subscriber with it is unsubscribed from everything); returns the
    entry and whether it is new. An address suppressed already keeps its first reason."""
    email = addresses.normalise(email)
    address_hash = hash_address(email)
    if (found := session.get(Suppression, address_hash)) is not None:
        return found, False
    person = session.exec(select(Subscriber.id).where(Subscriber.email == email)).first()
    if person is not None:
        unsubscribe(session, person, None, reason)
    else:
        suppress(session, email, reason)
    entry = session.get(Suppression, address_hash)
    assert entry is not None
    return entry, True
