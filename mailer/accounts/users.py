"""Accounts: add, list, change the role, disable, reset, and set a password through a one-time
link. Every change is recorded in the audit trail in its own transaction.

A new account without a password gets a link valid for 24 hours on which its owner sets one:
an admin never needs to know anyone's password. The first account must be an admin, so that
someone can manage the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

import pyotp
from sqlmodel import Session, col, delete, select

from mailer import urls
from mailer.accounts.passwords import hash_password, weakness
from mailer.accounts.roles import ROLES, Person
from mailer.audit import Actor, record
from mailer.config import Settings
from mailer.db import session_scope
from mailer.errors import AccessError
from mailer.models import Account, LoginLock, StaffSession, iso_utc, stored_id, utcnow
from mailer.taxonomy import REGIONS

SETUP_VALID = dt.timedelta(hours=24)
_NAME = re.compile(r"[\w.@-]{2,80}")


class AccountError(AccessError):
    """An account change that cannot be made, or a one-time link that is not (or no longer) valid."""


def name_key(name: str) -> str:
    return name.strip().lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def any_accounts(settings: Settings) -> bool:
    """Whether mailer has accounts; without them it works as before, for one writer on a laptop."""
    with session_scope(settings) as session:
        return session.exec(select(Account.id).limit(1)).first() is not None


def find(session: Session, name: str) -> Account | None:
    return session.exec(select(Account).where(Account.name_key == name_key(name))).first()


def person(account: Account, origin: str) -> Person:
    return Person(account.name, origin, account.role, tuple(account.regions))


def _get(session: Session, name: str) -> Account:
    account = find(session, name)
    if account is None:
        raise AccountError(f"there is no account {name!r} (see `mailer users list`)")
    return account


def _checked_role(role: str, regions: Sequence[str]) -> list[str]:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise AccountError(f"unknown region {unknown[0]!r}: choose from {', '.join(REGIONS)}")
    return sorted(set(regions))


def _new_link(settings: Settings, account: Account, now: dt.datetime) -> str:
    token = secrets.token_urlsafe(32)
    account.setup_hash, account.setup_expires_at = token_hash(token), now + SETUP_VALID
    return urls.absolute(settings.studio_url, urls.SET_PASSWORD, token=token)


def add(settings: Settings, actor: Actor, name: str, role: str, regions: Sequence[str] = (),
        password: str | None = None, totp: bool = False) -> tuple[Account, str, str]:
    """Add an account; returns it, the one-time link to set a password ("" when `password` was
    given) and the TOTP provisioning URI ("" without `totp`)."""
    if not _NAME.fullmatch(name.strip()):
        raise AccountError(f"{name!r} cannot be an account name: use 2 to 80 letters, digits "
                           "and . _ - @")
    held = _checked_role(role, regions)
    if password is not None and (why := weakness(password, name)):
        raise AccountError(why)
    now = utcnow()
    with session_scope(settings, write=True) as session:
        if find(session, name):
            raise AccountError(f"there is already an account {name!r}")
        if role != "admin" and session.exec(select(Account.id).limit(1)).first() is None:
            raise AccountError("the first account must be an admin (--role admin), so that "
                               "someone can manage the others")
        account = Account(name=name.strip(), name_key=name_key(name), role=role, regions=held,
                          password_hash=hash_password(password) if password else "")
        link = "" if password else _new_link(settings, account, now)
        uri = _enrol(account) if totp else ""
        session.add(account)
        record(session, actor, "user.added", f"account {account.name}", role=role,
               regions=held, totp=totp)
    return account, link, uri


def _enrol(account: Account) -> str:
    account.totp_secret = pyotp.random_base32()
    return pyotp.TOTP(account.totp_secret).provisioning_uri(name=account.name, issuer_name="mailer")


def enrol_totp(settings: Settings, actor: Actor, name: str) -> str:
    """A new TOTP secret for NAME; returns the otpauth:// URI to scan (shown once)."""
    with session_scope(settings, write=True) as session:
        account = _get(session, name)
        uri = _enrol(account)
        account.updated_at = utcnow()
        session.add(account)
        record(session, actor, "user.totp", f"account {account.name}")
    return uri


def accounts(settings: Settings) -> list[Account]:
    with session_scope(settings) as session:
        return list(session.exec(select(Account).order_by(col(Account.name_key))))


def listing(settings: Settings) -> list[tuple[Account, dt.datetime | None]]:
    """Every account by name, with the moment its log-in lock ends (None: not locked)."""
    now = utcnow()
    with session_scope(settings) as session:
        locks = {lock.name_key: lock.locked_until for lock in session.exec(select(LoginLock))
                 if lock.locked_until and lock.locked_until > now}
        return [(account, locks.get(account.name_key))
                for account in session.exec(select(Account).order_by(col(Account.name_key)))]


def account_document(account: Account, locked_until: dt.datetime | None) -> dict[str, Any]:
    """One account of `listing` as JSON-ready data (`mailer users list --json`): never its
    password hash, TOTP secret or set-up link, only whether it has them."""
    return {"id": stored_id(account), "name": account.name, "role": account.role,
            "regions": list(account.regions), "password_set": bool(account.password_hash),
            "totp": bool(account.totp_secret), "disabled_at": iso_utc(account.disabled_at),
            "locked_until": iso_utc(locked_until), "created_at": iso_utc(account.created_at)}


def _keep_an_admin(session: Session, account: Account, what: str) -> None:
    """Refuse to take away the last enabled admin: nobody could manage the accounts then."""
    if account.role != "admin" or account.disabled_at is not None:
        return
    others = session.exec(select(Account.id).where(
        Account.role == "admin", col(Account.disabled_at).is_(None),
        Account.id != account.id).limit(1)).first()
    if others is None:
        raise AccountError(f"{account.name} is the only admin: {what} would leave nobody to "
                           "manage the accounts (make someone else an admin first)")


def set_role(settings: Settings, actor: Actor, name: str, role: str,
             regions: Sequence[str] | None = None) -> Account:
    """Change NAME's role, and their regions when `regions` is given (empty: every region)."""
    with session_scope(settings, write=True) as session:
        account = _get(session, name)
        held = _checked_role(role, account.regions if regions is None else regions)
        if role != "admin":
            _keep_an_admin(session, account, f"making them a {role}")
        before = (account.role, list(account.regions))
        account.role, account.regions, account.updated_at = role, held, utcnow()
        session.add(account)
        record(session, actor, "user.role", f"account {account.name}", role=role, regions=held,
               was={"role": before[0], "regions": before[1]})
        return account


def _end_sessions(session: Session, account: Account) -> None:
    session.execute(delete(StaffSession).where(col(StaffSession.account_id) == account.id))


def disable(settings: Settings, actor: Actor, name: str) -> Account:
    """NAME can no longer log in and their studio sessions end; their history stays."""
    with session_scope(settings, write=True) as session:
        account = _get(session, name)
        _keep_an_admin(session, account, "disabling them")
        if account.disabled_at is None:
            account.disabled_at = account.updated_at = utcnow()
            session.add(account)
        _end_sessions(session, account)
        record(session, actor, "user.disabled", f"account {account.name}")
        return account


def reset(settings: Settings, actor: Actor, name: str) -> str:
    """Forget NAME's password, end their sessions and lift a lock; returns a new one-time link.
    A disabled account is enabled again by this."""
    now = utcnow()
    with session_scope(settings, write=True) as session:
        account = _get(session, name)
        account.password_hash, account.disabled_at, account.updated_at = "", None, now
        link = _new_link(settings, account, now)
        session.add(account)
        _end_sessions(session, account)
        session.execute(delete(LoginLock).where(col(LoginLock.name_key) == account.name_key))
        record(session, actor, "user.reset", f"account {account.name}")
    return link


def link_account(settings: Settings, token: str) -> Account:
    """The account a one-time link is for, while it is valid (it is not used up by looking)."""
    with session_scope(settings) as session:
        return _by_link(session, token)


def _by_link(session: Session, token: str) -> Account:
    account = session.exec(select(Account).where(Account.setup_hash == token_hash(token))).first() \
        if token else None
    if account is None or account.setup_expires_at is None or account.setup_expires_at < utcnow():
        raise AccountError("this link is not valid (any more): ask an admin for a new one "
                           "(`mailer users reset NAME`)")
    return account


def set_password(settings: Settings, token: str, password: str, origin: str) -> Account:
    """Set the password of the link's account; the link is then used up."""
    with session_scope(settings, write=True) as session:
        account = _by_link(session, token)
        if why := weakness(password, account.name):
            raise AccountError(why)
        account.password_hash, account.updated_at = hash_password(password), utcnow()
        account.setup_hash, account.setup_expires_at = "", None
        session.add(account)
        record(session, Actor(account.name, origin), "user.password", f"account {account.name}")
        return account
