"""Log-ins: a name, a password and, where required, a TOTP code; with a lock per name after
repeated failures, kept in the database so that it holds in every worker.

The answer never tells whether a name is an account: a wrong name and a wrong password read
the same, take the same time (mailer.accounts.passwords) and count towards the same lock.
"""

from __future__ import annotations

import datetime as dt

import pyotp
from sqlmodel import Session

from mailer.accounts.passwords import hash_password, needs_rehash, verify
from mailer.accounts.roles import Person
from mailer.accounts.users import find, name_key, person
from mailer.audit import Actor, record
from mailer.config import Settings
from mailer.db import session_scope
from mailer.errors import AccessError
from mailer.models import Account, LoginLock, utcnow

MAX_FAILURES = 10
WINDOW = dt.timedelta(minutes=15)
LOCK = dt.timedelta(minutes=15)
WRONG = "wrong name, password or code"


class LoginRefused(AccessError):
    """A log-in that did not succeed; the message says no more than a person may know."""


def _locked_until(session: Session, key: str, now: dt.datetime) -> dt.datetime | None:
    lock = session.get(LoginLock, key)
    return lock.locked_until if lock and lock.locked_until and lock.locked_until > now else None


def _count_failure(session: Session, key: str, now: dt.datetime) -> dt.datetime | None:
    """One more failure for `key`; the moment the name is locked until, when this one locks it."""
    lock = session.get(LoginLock, key) or LoginLock(name_key=key, failures=0, window_start=now)
    if lock.window_start + WINDOW <= now:
        lock.failures, lock.window_start = 0, now
    lock.failures += 1
    if lock.failures >= MAX_FAILURES:
        lock.locked_until, lock.failures, lock.window_start = now + LOCK, 0, now
    session.add(lock)
    return lock.locked_until if lock.locked_until and lock.locked_until > now else None


def _second_factor(settings: Settings, account: Account, code: str | None,
                   enrolling: bool) -> str:
    """Why the TOTP step fails, or ""."""
    if account.totp_secret:
        if code and pyotp.TOTP(account.totp_secret).verify(code.strip(), valid_window=1):
            return ""
        return WRONG
    if settings.auth_mfa == "admins" and account.role == "admin" and not enrolling:
        return ("an admin logs in with a TOTP code ([auth] mfa = \"admins\"): have one set up "
                f"with `mailer users totp {account.name}`")
    return ""


def _check(settings: Settings, session: Session, name: str, password: str, code: str | None,
           enrolling: bool) -> tuple[Account | None, str]:
    account = find(session, name)
    usable = account is not None and account.disabled_at is None
    if not verify(account.password_hash if usable and account else "", password) or not account:
        return None, WRONG
    why = _second_factor(settings, account, code, enrolling)
    if why:
        return None, why
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    lock = session.get(LoginLock, account.name_key)
    if lock is not None:
        session.delete(lock)
    return account, ""


def log_in(settings: Settings, name: str, password: str, code: str | None, origin: str,
           enrolling: bool = False) -> Person:
    """The person NAME, when the password (and code) are right and the name is not locked.

    Every attempt is in the audit trail: a log-in, a failed one, a lock, a try while locked.
    `enrolling` lets an admin without a TOTP secret in, to set one up."""
    key, now, why = name_key(name), utcnow(), ""
    actor = Actor(name.strip()[:80], origin)
    with session_scope(settings, write=True) as session:
        until = _locked_until(session, key, now)
        if until is not None:
            record(session, actor, "login.refused", outcome=f"locked until {until:%H:%M} UTC")
        else:
            account, why = _check(settings, session, name, password, code, enrolling)
            if account is not None:
                record(session, Actor(account.name, origin), "login")
                return person(account, origin)
            until = _count_failure(session, key, now)
            record(session, actor, "login.failed", outcome=why)
            if until is not None:
                record(session, actor, "login.locked", outcome=f"locked until {until:%H:%M} UTC")
    if until is not None:
        raise LoginRefused("too many failed log-ins for this name: try again after "
                           f"{until:%H:%M} UTC")
    raise LoginRefused(why)
