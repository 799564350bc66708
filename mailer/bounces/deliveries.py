"""The deliveries a bounce can answer: found by send and recipient, and marked bounced.

Bounce matching is the only reader of these rows outside the send path, so the two queries live
beside it and the send path needs nothing from here.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from mailer.models import Delivery, Subscriber


def sent_delivery(session: Session, send_id: int, public_id: str
                  ) -> tuple[Delivery, Subscriber] | None:
    """The sent (or bounced) delivery of send `send_id` to the subscriber `public_id`."""
    return session.exec(
        select(Delivery, Subscriber).join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id)
        .where(Delivery.send_id == send_id, Subscriber.public_id == public_id,
               col(Delivery.status).in_(["sent", "bounced"]))).first()


def mark_bounced(session: Session, delivery: Delivery, error: str, answer_class: str,
                 enhanced_code: str) -> None:
    """A sent delivery came back as a bounce: `error` is its status and reason."""
    delivery.status, delivery.error = "bounced", error
    delivery.answer_class, delivery.enhanced_code = answer_class, enhanced_code
    session.add(delivery)
