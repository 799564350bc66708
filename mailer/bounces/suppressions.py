"""What a bounce of one of our deliveries does to its address, by class: the same for a RCPT-time
refusal during a send and for a bounce message read later.

hard suppresses now; soft suppresses after `soft_limit` soft bounces of that address; blocked
suppresses nobody. Every bounce is kept (class, enhanced code, answer) once per `key`, so
reading the same bounce again changes nothing.
"""

from __future__ import annotations

from sqlmodel import Session, func, select

from mailer.bounces.classify import Verdict
from mailer.events import emit
from mailer.models import Bounce, Delivery, Subscriber
from mailer.subscribers.subscriptions import hash_address, suppress


def record_bounce(session: Session, *, key: str, address: str, verdict: Verdict,
                  delivery_id: int | None, soft_limit: int) -> str:
    """Store one bounce and apply its class; returns what was done, for the report."""
    if session.get(Bounce, key) is not None:
        return "already recorded"
    session.add(Bounce(key=key, address_hash=hash_address(address), kind=verdict.kind,
                       status=verdict.enhanced[:12], answer=verdict.answer,
                       delivery_id=delivery_id))
    session.flush()
    if verdict.kind == "blocked":
        return "blocked: nobody suppressed (a problem of our server or reputation)"
    if verdict.kind == "hard":
        suppress(session, address, "bounced")
        _told(session, address, verdict, delivery_id)
        return "suppressed"
    count = session.exec(select(func.count()).where(
        Bounce.address_hash == hash_address(address), Bounce.kind == "soft")).one()
    if count >= soft_limit:
        suppress(session, address, "bounced")
        return f"suppressed after {count} soft bounces"
    return f"soft bounce {count} of {soft_limit}"


def _told(session: Session, address: str, verdict: Verdict, delivery_id: int | None) -> None:
    """bounce.hard for the webhook receivers: whose address (by public id) bounced, how, and on
    which send."""
    public_id = session.exec(select(Subscriber.public_id).where(
        Subscriber.address_hash == hash_address(address))).first()
    send_id = None if delivery_id is None else session.exec(
        select(Delivery.send_id).where(Delivery.id == delivery_id)).first()
    emit(session, "bounce.hard", {"public_id": public_id, "status": verdict.enhanced,
                                  "send_id": send_id})
