"""Webhook receivers: add, list, remove and test them.

A receiver's URL is https://, or http:// only to a loopback address (a receiver on the same
machine): events name people, and only TLS keeps them private on the way. Each receiver gets
its own signing secret (`whsec_` and 32 random bytes in base64), shown once, when it is added;
mailer keeps it, since signing needs it. Adding and removing are recorded in the audit trail.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import Session, col, select

from mailer.audit import Actor, record
from mailer.config import Settings
from mailer.db import session_scope
from mailer.errors import DataError, DeliveryError
from mailer.events import EVENTS, TEST_EVENT, body
from mailer.models import ApiToken, WebhookEndpoint, WebhookMessage, stored_id, utcnow
from mailer.webhooks.delivery import new_client, post

_NAME = re.compile(r"[\w.@-]{1,80}")


class WebhookError(DataError):
    """A receiver that cannot be added as asked, or one that does not exist."""


class WebhookTestFailed(DeliveryError):
    """`mailer webhooks test`: the receiver did not take the test event."""


@dataclass(frozen=True)
class Listing:
    """One receiver for `mailer webhooks list`: never its secret."""

    name: str
    url: str
    events: list[str]
    token: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    pending: int  # waiting to be posted, retries included
    failed: int  # given up
    last_error: str  # of its newest message tried and not delivered, "" when none

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "url": self.url, "events": self.events,
                "token": self.token, "created_at": self.created_at.isoformat(),
                "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
                "pending": self.pending, "failed": self.failed, "last_error": self.last_error}


def url_problem(url: str) -> str:
    """Why `url` cannot receive webhooks, or ""."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if parts.scheme not in ("https", "http") or not host:
        return f"{url!r} is not an https:// URL"
    if parts.scheme == "http" and not _loopback(host):
        return (f"{url!r} is plain http to another machine: events name people, so a receiver "
                "elsewhere needs https://; plain http:// is only for a loopback address "
                "(127.0.0.1, [::1], localhost)")
    return ""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_secret() -> str:
    """A Standard Webhooks signing secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _checked(url: str, events: Sequence[str], name: str) -> list[str]:
    """The events, each once, after the checks of a new receiver."""
    problems = [p for p in (url_problem(url),) if p]
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        problems.append(f"unknown event {', '.join(unknown)}; the events are {', '.join(EVENTS)}")
    if not events:
        problems.append(f"name at least one event with --event ({', '.join(EVENTS)})")
    if not _NAME.fullmatch(name):
        problems.append(f"{name!r} cannot be a receiver's name: give one with --name, of 1 to "
                        "80 letters, digits and . _ - @")
    if problems:
        raise WebhookError("; ".join(problems))
    return list(dict.fromkeys(events))


def add(settings: Settings, actor: Actor, url: str, events: Sequence[str], name: str = "",
        token: str = "") -> WebhookEndpoint:
    """Add a receiver of `events` (named after its host unless `name`), acting as API token
    `token` (its scopes decide whether it may see addresses); it carries its new secret."""
    name = name.strip() or (urlsplit(url).hostname or "")
    chosen = _checked(url, events, name)
    with session_scope(settings, write=True) as session:
        if session.exec(select(WebhookEndpoint.id).where(WebhookEndpoint.name == name)).first():
            raise WebhookError(f"there is already a receiver {name!r}; choose another with "
                               "--name, or remove that one first")
        if token and not session.exec(select(ApiToken.id).where(
                ApiToken.name == token, col(ApiToken.revoked_at).is_(None))).first():
            raise WebhookError(f"there is no API token {token!r} (or it was revoked): see "
                               "`mailer tokens list`")
        endpoint = WebhookEndpoint(name=name, url=url, events=chosen, secret=new_secret(),
                                   token=token)
        session.add(endpoint)
        session.flush()
        record(session, actor, "webhook.added", f"webhook {name}", url=url, events=chosen,
               token=token)
    return endpoint


def remove(settings: Settings, actor: Actor, name: str) -> int:
    """Remove a receiver and its messages not yet posted; returns how many of those went."""
    with session_scope(settings, write=True) as session:
        endpoint = _named(session, name)
        waiting = session.exec(select(func.count()).where(
            WebhookMessage.endpoint_id == endpoint.id,
            col(WebhookMessage.next_attempt_at).is_not(None))).one()
        session.delete(endpoint)
        session.flush()
        record(session, actor, "webhook.removed", f"webhook {name}", url=endpoint.url,
               dropped=waiting)
    return waiting


def _named(session: Session, name: str) -> WebhookEndpoint:
    found = session.exec(select(WebhookEndpoint).where(WebhookEndpoint.name == name)).first()
    if found is None:
        raise WebhookError(f"there is no receiver {name!r}; `mailer webhooks list` shows them")
    return found


def listing(settings: Settings) -> list[Listing]:
    """Every receiver with its counts of messages waiting and given up, by name."""
    waiting = func.count().filter(col(WebhookMessage.next_attempt_at).is_not(None))
    failed = func.count().filter(col(WebhookMessage.gave_up_at).is_not(None))
    with session_scope(settings) as session:
        counts = {endpoint_id: (p, f) for endpoint_id, p, f in session.exec(
            select(WebhookMessage.endpoint_id, waiting, failed)
            .group_by(col(WebhookMessage.endpoint_id)))}
        found = []
        for endpoint in session.exec(select(WebhookEndpoint).order_by(col(WebhookEndpoint.name))):
            last = session.exec(select(WebhookMessage.last_error).where(
                WebhookMessage.endpoint_id == endpoint.id, WebhookMessage.attempts > 0,
                col(WebhookMessage.delivered_at).is_(None),
            ).order_by(col(WebhookMessage.id).desc()).limit(1)).first()
            pending, gave_up = counts.get(stored_id(endpoint), (0, 0))
            found.append(Listing(endpoint.name, endpoint.url, endpoint.events,
                                 endpoint.token, endpoint.created_at,
                                 endpoint.disabled_at, pending, gave_up, last or ""))
    return found


def send_test(settings: Settings, name: str) -> str:
    """Post a signed webhook.test event to the receiver now, outside the outbox; returns its
    answer's status. Raises WebhookTestFailed when it did not take it."""
    with session_scope(settings) as session:
        endpoint = _named(session, name)
    payload = body(TEST_EVENT, {"name": endpoint.name}, utcnow())
    msg_id = "msg_" + secrets.token_hex(16)
    with new_client() as client:
        took, answer = post(client, endpoint.url, endpoint.secret, msg_id, payload)
    if not took:
        raise WebhookTestFailed(f"{endpoint.url} did not take the test event: {answer}")
    return f"{endpoint.url} answered {answer}"
