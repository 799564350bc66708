"""Mail to the List-Unsubscribe mailto address: it unsubscribes exactly the person whose
one-click token its subject carries (`unsubscribe <topic> <token>`, as the header asks), from
that topic. The token is checked like the one-click's, so a forged mail changes nothing.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

from sqlmodel import Session

from mailer import taxonomy
from mailer.config import Settings
from mailer.subscribers.subscriptions import NotFound, unsubscribe
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
        public_id = unsubscribe(session, read_token(settings, token, "unsubscribe"), topic,
                                via="mail")
    except (TokenError, NotFound):
        return "unsubscribe mail with an unknown or forged token: nothing changed"
    return f"subscriber {public_id} unsubscribed from {topic}"
