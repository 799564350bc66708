"""Who a test send greets: the tester by their own name, never an invented recipient."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr

from sqlmodel import col, select

from mailer.addresses import normalise
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Subscriber


def tester_names(settings: Settings, addresses: Sequence[str]) -> list[tuple[str, str]]:
    """(address, name) per `--test` address: the name written as "Name <address>", else the
    name the address has as a subscriber, else "" (the mailing's neutral greeting)."""
    parsed = [parseaddr(a) for a in addresses]
    with session_scope(settings) as session:
        known = dict(session.exec(select(Subscriber.email, Subscriber.name).where(
            col(Subscriber.email).in_([normalise(a) for _, a in parsed]))).all())
    return [(address, name.strip() or known.get(normalise(address)) or "")
            for name, address in parsed]
