"""Tokens of the REST API: made, listed and revoked by an admin, each carrying only the scopes
it needs.

A token is 256 random bits behind a recognisable prefix, shown once when it is made; only its
SHA-256 is stored, so a copy of the database lets nobody call the API. A revoked token stays in
the table (it is named in the audit trail) and never works again. `last_used_at` is written at
most once a minute per token, so a busy client does not turn every read into a write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from mailer.audit import Actor, record
from mailer.config import Settings
from mailer.db import session_scope
from mailer.errors import AccessError
from mailer.models import ApiToken, iso_utc, utcnow

SCOPES: dict[str, str] = {
    "subscribers:read": "list and read subscribers",
    "subscribers:write": "add, change, unsubscribe and erase subscribers",
    "sends:read": "list sends and read their reports",
    "schedules:read": "list planned sends",
    "mailings:read": "list built mailings and their variants",
    "suppressions:read": "list suppressed addresses (as hashes)",
    "suppressions:write": "suppress addresses",
}
PREFIX = "mlr_"
TOUCH_EVERY = dt.timedelta(minutes=1)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}")


class TokenError(AccessError):
    """A token that cannot be added or revoked as asked."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def scope_problem(scopes: Sequence[str]) -> str | None:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        return f"unknown scope {unknown[0]!r}: choose from {', '.join(SCOPES)}"
    if not scopes:
        return "a token needs at least one scope (--scope)"
    return None


def add(settings: Settings, actor: Actor, name: str, scopes: Sequence[str]) -> tuple[ApiToken, str]:
    """Make a token; returns it and the token itself, which is never shown again."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise TokenError(f"{name!r} cannot be a token name: use 1 to 80 letters, digits and "
                         ". _ - @, starting with a letter or digit")
    if why := scope_problem(scopes):
        raise TokenError(why)
    secret = PREFIX + secrets.token_urlsafe(32)
    held = [s for s in SCOPES if s in scopes]
    with session_scope(settings, write=True) as session:
        if session.exec(select(ApiToken).where(ApiToken.name == name)).first():
            raise TokenError(f"there is already a token {name!r} (names stay taken after a revoke)")
        token = ApiToken(name=name, token_hash=token_hash(secret), scopes=held,
                         created_by=actor.name)
        session.add(token)
        record(session, actor, "token.added", f"token {name}", scopes=held)
    return token, secret


def tokens(settings: Settings) -> list[ApiToken]:
    with session_scope(settings) as session:
        return list(session.exec(select(ApiToken).order_by(col(ApiToken.name))))


def revoke(settings: Settings, actor: Actor, name: str) -> ApiToken:
    with session_scope(settings, write=True) as session:
        token = session.exec(select(ApiToken).where(ApiToken.name == name.strip())).first()
        if token is None:
            raise TokenError(f"there is no token {name!r} (see `mailer tokens list`)")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            session.add(token)
            record(session, actor, "token.revoked", f"token {token.name}")
        return token


def authenticate(session: Session, secret: str) -> ApiToken | None:
    """The live token whose secret this is, or None (unknown or revoked); notes its use."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(secret))).first()
    if token is None or token.revoked_at is not None:
        return None
    now = utcnow()
    if token.last_used_at is None or token.last_used_at + TOUCH_EVERY <= now:
        token.last_used_at = now
        session.add(token)
    return token


def as_dict(token: ApiToken) -> dict[str, Any]:
    """One token for `mailer tokens list --json`: never its secret, which is not kept."""
    return {"name": token.name, "scopes": list(token.scopes), "created_by": token.created_by,
            "created_at": iso_utc(token.created_at), "last_used_at": iso_utc(token.last_used_at),
            "revoked_at": iso_utc(token.revoked_at)}
