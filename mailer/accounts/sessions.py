"""Studio log-in sessions: a random token in an HttpOnly cookie, only its hash in the database,
a CSRF token per session, and an end after `auth_idle_hours` without a request."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlmodel import col, delete

from mailer.accounts.roles import Person
from mailer.accounts.users import find, person, token_hash
from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Account, StaffSession, utcnow

TOUCH_EVERY = dt.timedelta(minutes=1)  # seen_at is written at most this often per session


def start(settings: Settings, who: Person) -> tuple[str, str]:
    """A new session for a person who just logged in: the cookie's token and the CSRF token.
    Sessions idle for too long are cleared here, so the table holds only live ones."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    stale = utcnow() - dt.timedelta(hours=settings.auth_idle_hours)
    with session_scope(settings, write=True) as session:
        session.execute(delete(StaffSession).where(col(StaffSession.seen_at) < stale))
        account = find(session, who.name)
        if account is None or account.id is None:
            raise ValueError(f"{who.name} has no account: log in before starting a session")
        session.add(StaffSession(token_hash=token_hash(token), account_id=account.id,
                                 csrf=csrf, origin=who.origin))
    return token, csrf


def current(settings: Settings, token: str, origin: str) -> tuple[Person, str] | None:
    """The logged-in person and the session's CSRF token, or None when the cookie names no
    live session (never was, logged out, idle too long, account disabled)."""
    if not token:
        return None
    now = utcnow()
    idle = dt.timedelta(hours=settings.auth_idle_hours)
    with session_scope(settings) as session:
        found = session.get(StaffSession, token_hash(token))
        account = session.get(Account, found.account_id) if found else None
    if found is None or account is None:
        return None
    if found.seen_at + idle <= now or account.disabled_at is not None:
        end(settings, token)
        return None
    if found.seen_at + TOUCH_EVERY <= now:
        with session_scope(settings, write=True) as session:
            found.seen_at = now
            session.add(found)
    return person(account, origin), found.csrf


def end(settings: Settings, token: str) -> None:
    """Log out: the session is gone, whatever the cookie still holds."""
    with session_scope(settings, write=True) as session:
        session.execute(delete(StaffSession).where(
            col(StaffSession.token_hash) == token_hash(token)))
