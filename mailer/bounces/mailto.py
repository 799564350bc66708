"""Mail to the List-Unsubscribe mailto address: it unsubscribes exactly the person whose
one-click token its subject carries (`unsubscribe <topic> <token>`, as the header asks), from
that topic. The token is checked like the one-click's, so a forged mail changes nothing, and
a mail read again (a copy, or a rerun after a crash) finds the topic left and changes nothing.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

from sqlmodel import Session

from mailer import taxonomy
from mailer.config import Settings
from mailer.models import stored_id
from mailer.subscribers.subscriptions import NotFound, active_topics, get_subscriber, unsubscribe
from mailer.subscribers.tokens import TokenError, read_token

_SUBJECT = re.compile(r"\bunsubscribe(?:\s+([a-z-]+)\s+([A-Za-z0-9_.-]+))?", re.IGNORECASE)
_RECIPIENT_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To")


def unsubscribe_request(settings: Settings, message: EmailMessage) -> tuple[str, str] | None:
    """(topic, token) of a mail to our unsubscribe address, each "" when the subject lacks
    it; None for any other mail."""
    to = " ".join(str(v) for h in _RECIPIENT_HEADERS for v in message.get_all(h, [])).lower()
    if settings.unsubscribe_address.lower() not in to:
        return None
    match = _SUBJECT.search(str(message.get("Subject", "")))
    return (match.group(1) or "", match.group(2) or "") if match else ("", "")


def unsubscribe_by_mail(settings: Settings, session: Session, topic: str, token: str) -> str:
    """Apply one unsubscribe mail; returns what was done, for the report."""
    if not token or topic not in taxonomy.TOPICS:
        return "unsubscribe mail without a valid topic and token: nothing changed"
    try:
        claim = read_token(settings, token, "unsubscribe")
        person = get_subscriber(session, claim)
    except (TokenError, NotFound):
        return "unsubscribe mail with an unknown or forged token: nothing changed"
    if topic not in active_topics(session, stored_id(person)):  # this mail, or a copy, read again
        return (f"already unsubscribed: subscriber {person.public_id} does not receive {topic}; "
                "nothing changed")
    return f"subscriber {unsubscribe(session, claim, topic, via='mail')} unsubscribed from {topic}"
