"""Posting the outbox: each event to its receiver, signed, with back-off, at least once.

A worker runs in every `mailer serve` process and every `mailer scheduler`. It claims due
messages in a short write transaction (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so workers
take different ones) by moving their next attempt on by the claim timeout: a message goes to one
worker at a time, and one whose worker died is taken again once the claim runs out. Nothing
lives only in memory, so a restart loses no event.

A post is signed by the Standard Webhooks specification (webhook-id, webhook-timestamp and
webhook-signature headers) with the `standardwebhooks` library, and any 2xx answer delivers it.
Anything else is tried again after FIRST_RETRY seconds, then twice as long each time up to
LONGEST_WAIT, until GIVE_UP_AFTER from the event: then it is given up. A receiver that fails
also holds back the rest of its messages in the batch until its retry, so a dead one costs one
timeout per retry, not one per message, and receivers are posted to side by side.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, and_, func, or_, update
from sqlalchemy import select as select_columns
from sqlmodel import col, delete, select
from standardwebhooks.webhooks import Webhook

from mailer import __version__
from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.models import WebhookEndpoint, WebhookMessage, utcnow

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds for each step of a post: connect, send, the answer's headers
FIRST_RETRY = 5.0  # seconds before the first retry; each next one waits twice as long …
LONGEST_WAIT = 3600.0  # … up to an hour
GIVE_UP_AFTER = dt.timedelta(hours=24)  # from the event: then the message is given up
CLAIM_FOR = dt.timedelta(seconds=60)  # a claimed message is taken again after this
BATCH = 20  # messages claimed at once
SIDE_BY_SIDE = 4  # receivers posted to at the same time
POLL = 1.0  # seconds between looks at the outbox while nothing is due
KEEP = dt.timedelta(days=7)  # delivered and given-up messages are deleted after this
PURGE_EVERY = 3600.0  # seconds; the first purge comes a minute after the start


@dataclass(frozen=True)
class Due:
    """A claimed message with what its post needs."""

    id: int
    msg_id: str
    endpoint_id: int
    url: str
    secret: str
    payload: str
    attempts: int
    created_at: dt.datetime


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt: 5 s, 10 s, 20 s, … at most an hour."""
    return dt.timedelta(seconds=min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT))


def signed_headers(secret: str, msg_id: str, payload: str, at: dt.datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one post."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, payload),
            "content-type": "application/json"}


def new_client() -> httpx.Client:
    """The HTTP client of a worker: short timeouts, no redirects followed."""
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False,
                        headers={"user-agent": f"mailer-webhooks/{__version__}"})


def post(client: httpx.Client, url: str, secret: str, msg_id: str, payload: str
         ) -> tuple[bool, str]:
    """Post one signed message: whether the receiver took it (a 2xx answer), and its answer's
    status or what went wrong. The answer's body is never read."""
    headers = signed_headers(secret, msg_id, payload, utcnow())
    try:
        with client.stream("POST", url, content=payload.encode(), headers=headers) as answer:
            return answer.is_success, f"HTTP {answer.status_code} {answer.reason_phrase}".strip()
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}".rstrip(": ")


def _due(now: dt.datetime) -> list:
    """The conditions of a message to post now: due, to a receiver that is not disabled."""
    return [col(WebhookMessage.next_attempt_at) <= now, col(WebhookEndpoint.disabled_at).is_(None)]


def next_due(engine: Engine) -> dt.datetime | None:
    """When the soonest message is due (the past: now), or None when none waits; read only."""
    with session_scope(engine) as session:
        return session.exec(
            select(func.min(WebhookMessage.next_attempt_at))
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookMessage.endpoint_id)
            .where(col(WebhookEndpoint.disabled_at).is_(None))).one()


def claim(engine: Engine, now: dt.datetime, claim_for: dt.timedelta = CLAIM_FOR,
          limit: int = BATCH) -> list[Due]:
    """Up to `limit` due messages, oldest due first, now held by this worker for `claim_for`."""
    with session_scope(engine, write=True) as session:
        ids = list(session.exec(
            select(WebhookMessage.id)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookMessage.endpoint_id)
            .where(*_due(now))
            .order_by(col(WebhookMessage.next_attempt_at), col(WebhookMessage.id)).limit(limit)
            .with_for_update(of=WebhookMessage, skip_locked=True)))
        if not ids:
            return []
        session.execute(update(WebhookMessage).where(col(WebhookMessage.id).in_(ids))
                        .values(next_attempt_at=now + claim_for))
        rows = session.execute(
            select_columns(col(WebhookMessage.id), col(WebhookMessage.msg_id),
                           col(WebhookMessage.endpoint_id), col(WebhookEndpoint.url),
                           col(WebhookEndpoint.secret), col(WebhookMessage.payload),
                           col(WebhookMessage.attempts), col(WebhookMessage.created_at))
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookMessage.endpoint_id)
            .where(col(WebhookMessage.id).in_(ids)).order_by(col(WebhookMessage.id)))
        return [Due(*row) for row in rows]


def record(engine: Engine, due: Due, error: str, now: dt.datetime) -> dt.datetime | None:
    """The outcome of one post; returns when the message is tried again (None: delivered or
    given up). A failure gives up every message of that receiver older than GIVE_UP_AFTER."""
    done = {"attempts": WebhookMessage.attempts + 1, "last_error": error}
    mine = update(WebhookMessage).where(col(WebhookMessage.id) == due.id)
    with session_scope(engine, write=True) as session:
        if not error:
            session.execute(mine.values(**done, delivered_at=now, next_attempt_at=None,
                                        gave_up_at=None))
            return None
        retry = now + backoff(due.attempts + 1)
        session.execute(mine.values(**done, next_attempt_at=retry))
        session.execute(
            update(WebhookMessage)
            .where(col(WebhookMessage.endpoint_id) == due.endpoint_id,
                   col(WebhookMessage.next_attempt_at).is_not(None),
                   col(WebhookMessage.created_at) <= now - GIVE_UP_AFTER)
            .values(gave_up_at=now, next_attempt_at=None,
                    last_error=func.coalesce(func.nullif(WebhookMessage.last_error, ""),
                                             "never tried: the receiver kept failing")))
        return None if due.created_at <= now - GIVE_UP_AFTER else retry


def postpone(engine: Engine, ids: Sequence[int], until: dt.datetime) -> None:
    """Hand claimed messages back untried, due at `until`."""
    if ids:
        with session_scope(engine, write=True) as session:
            session.execute(update(WebhookMessage).where(
                col(WebhookMessage.id).in_(list(ids)), col(WebhookMessage.next_attempt_at).is_not(None),
            ).values(next_attempt_at=until))


def _post_in_order(engine: Engine, client: httpx.Client, messages: Sequence[Due],
                   deadline: float) -> None:
    """One receiver's messages, one after the other; after a failure, or (the first one
    aside) near the end of the claim, the rest go back untried."""
    for n, due in enumerate(messages):
        if n and time.monotonic() > deadline:
            postpone(engine, [m.id for m in messages[n:]], utcnow())
            return
        took, answer = post(client, due.url, due.secret, due.msg_id, due.payload)
        error = "" if took else answer
        now = utcnow()
        retry = record(engine, due, error, now)
        if error:
            log.info("webhook %s to %s failed: %s", due.msg_id, due.url, error)
            postpone(engine, [m.id for m in messages[n + 1:]], retry or now)
            return


def deliver_due(engine: Engine, client: httpx.Client, claim_for: dt.timedelta = CLAIM_FOR) -> int:
    """One pass: claim due messages and post them, receivers side by side; how many were claimed."""
    batch = claim(engine, utcnow(), claim_for)
    by_receiver: dict[int, list[Due]] = {}
    for due in batch:
        by_receiver.setdefault(due.endpoint_id, []).append(due)
    # Stop starting posts while a claim could run out under the last one.
    deadline = time.monotonic() + max(claim_for.total_seconds() - 2 * TIMEOUT, 0.0)
    groups = list(by_receiver.values())
    if len(groups) == 1:
        _post_in_order(engine, client, groups[0], deadline)
    elif groups:
        with ThreadPoolExecutor(min(len(groups), SIDE_BY_SIDE),
                                thread_name_prefix="webhooks") as pool:
            list(pool.map(lambda group: _post_in_order(engine, client, group, deadline), groups))
    return len(batch)


def purge(engine: Engine, before: dt.datetime) -> int:
    """Delete messages delivered or given up before `before`; how many."""
    with session_scope(engine, write=True) as session:
        return session.exec(delete(WebhookMessage).where(
            col(WebhookMessage.next_attempt_at).is_(None),
            or_(col(WebhookMessage.delivered_at) < before,
                and_(col(WebhookMessage.delivered_at).is_(None),
                     col(WebhookMessage.gave_up_at) < before)))).rowcount


class Deliverer:
    """The loop of one process's worker: posts what is due, waits for the next due message
    (at most POLL seconds, so new events go out within a second or so), until `stop` is set."""

    def __init__(self, target: Settings | Engine, stop: threading.Event | None = None, *,
                 claim_for: dt.timedelta = CLAIM_FOR, poll: float = POLL):
        self.target, self.stop = target, stop or threading.Event()
        self.claim_for, self.poll = claim_for, poll
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        """Look at the outbox every POLL seconds at most, from one POLL after the start, and
        post what is due, until `stop` is set."""
        engine = get_engine(self.target) if isinstance(self.target, Settings) else self.target
        purged_at = time.monotonic() - PURGE_EVERY + 60
        client: httpx.Client | None = None  # made on the first post: its TLS set-up costs
        wait = self.poll
        try:
            while not self.stop.wait(wait):
                try:
                    if time.monotonic() - purged_at >= PURGE_EVERY:
                        purge(engine, utcnow() - KEEP)
                        purged_at = time.monotonic()
                    if (wait := self._until_due(engine)) == 0:
                        client = client or new_client()
                        wait = 0.0 if deliver_due(engine, client, self.claim_for) else self.poll
                except Exception:  # the database away a moment, say: log it, try again
                    log.exception("webhook delivery failed; trying again")
                    wait = self.poll * 5
        finally:
            if client is not None:
                client.close()

    def _until_due(self, engine: Engine) -> float:
        """Seconds until the soonest message is due, at most `poll`; 0 when one is due now."""
        soonest = next_due(engine)
        if soonest is None:
            return self.poll
        return min(max((soonest - utcnow()).total_seconds(), 0.0), self.poll)

    def start(self) -> threading.Thread:
        """Run in a thread of its own."""
        self.thread = threading.Thread(target=self.run, name="webhooks", daemon=True)
        self.thread.start()
        return self.thread

    def close(self, timeout: float = TIMEOUT + 2) -> None:
        """Stop, letting a post in flight finish."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
