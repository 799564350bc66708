"""Events for webhook receivers: what happened, written to the outbox in the act's transaction.

`emit` adds one webhook_message row per receiver of the event, in the caller's transaction, so
an event is kept exactly when its cause is committed, and a receiver that is slow or gone
never holds the act up: mailer.webhooks posts the rows later. It is one `INSERT … SELECT` from
webhook_endpoint, with no query before it, so an act pays next to nothing while nobody listens.

Bodies follow the Standard Webhooks shape, `{"type", "timestamp", "data"}`. They name a person
by the public id, never by the email address; the one exception is subscriber.confirmed to a
receiver allowed to see it (`GETS_ADDRESS`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import TextClause, bindparam, delete, text
from sqlmodel import Session, col

from mailer.models import PUBLIC_ID_SQL, WebhookMessage, table_of, utcnow

EVENTS: dict[str, str] = {
    "subscriber.confirmed": "a person confirmed a sign-up (double opt-in)",
    "subscriber.unsubscribed": "a person left one topic, or every topic",
    "subscriber.erased": "everything about a person was erased",
    "bounce.hard": "a message bounced hard: the address does not exist and is suppressed",
    "send.started": "a send started, or carried on after a pause",
    "send.finished": "a send reached every recipient",
    "send.paused": "a send was paused, by hand or by its alarms",
}
TEST_EVENT = "webhook.test"  # `mailer webhooks test`: posted at once, never through the outbox

# Who may see the email address: on these events, the receivers for which GETS_ADDRESS holds,
# SQL over the receiver's row `e`: it names an API token, not revoked, that may read subscribers
# (the same right that would let it ask /api/v1/subscribers for the address).
ADDRESS_EVENTS = frozenset({"subscriber.confirmed"})
READ_SCOPE = "subscribers:read"
GETS_ADDRESS = ("EXISTS (SELECT 1 FROM api_token t WHERE t.name = e.token AND t.revoked_at IS "
                "NULL AND t.scopes LIKE :read_scope)")

_OUTBOX = (
    "INSERT INTO webhook_message (endpoint_id, event, msg_id, payload, created_at, attempts, "
    "next_attempt_at, last_error) "
    "SELECT e.id, :event, 'msg_' || {random}, "
    f"CASE WHEN {GETS_ADDRESS} THEN :payload_with_address ELSE :payload END, :now, 0, :now, '' "
    # events is a JSON array of strings (TextList), and event names hold no LIKE wildcards
    "FROM webhook_endpoint e WHERE e.disabled_at IS NULL AND e.events LIKE :pattern")
_TIME = table_of(WebhookMessage).c.created_at.type


def timestamp(at: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z, as Standard Webhooks' examples write it."""
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def body(event: str, data: dict[str, Any], at: dt.datetime) -> str:
    """One event as the JSON text that is signed and posted."""
    return json.dumps({"type": event, "timestamp": timestamp(at), "data": data},
                      ensure_ascii=False, separators=(",", ":"))


def payloads(event: str, data: dict[str, Any], address: str | None, at: dt.datetime
             ) -> tuple[str, str]:
    """The body for every receiver, and the body for receivers that may see the address."""
    plain = body(event, data, at)
    if address is None or event not in ADDRESS_EVENTS:
        return plain, plain
    return plain, body(event, {**data, "email": address}, at)


def outbox_sql(dialect: str) -> str:
    """The `INSERT … SELECT` that writes an event for its receivers, as SQL text for `dialect`;
    a caller may add conditions (`AND …`) to its WHERE."""
    return _OUTBOX.format(random=PUBLIC_ID_SQL[dialect])


def timed(sql: str) -> TextClause:
    """A statement whose `:now` is stored like the models' timestamps."""
    return text(sql).bindparams(bindparam("now", type_=_TIME))


_STATEMENTS = {dialect: timed(outbox_sql(dialect)) for dialect in PUBLIC_ID_SQL}


def outbox_params(event: str, data: dict[str, Any], address: str | None = None,
                  now: dt.datetime | None = None) -> dict[str, Any]:
    """The parameters of `outbox_sql` for one event."""
    at = now or utcnow()
    plain, with_address = payloads(event, data, address, at)
    return {"event": event, "pattern": f'%"{event}"%', "payload": plain,
            "payload_with_address": with_address, "now": at, "read_scope": f'%"{READ_SCOPE}"%'}


def emit(session: Session, event: str, data: dict[str, Any], address: str | None = None) -> None:
    """Write `event` for each receiver that takes it, in `session`'s transaction. `address` goes
    only to receivers that may see it, and only on ADDRESS_EVENTS."""
    assert event in EVENTS, event
    session.execute(_STATEMENTS[session.get_bind().dialect.name],
                    outbox_params(event, data, address))


def forget(session: Session, public_id: str) -> None:
    """An erased person: drop the outbox rows that hold their address (posted or not), so that
    only the suppression's hash stays. The others name them by a public id that now names
    nobody."""
    payload = col(WebhookMessage.payload)
    session.execute(delete(WebhookMessage).where(
        col(WebhookMessage.event).in_(ADDRESS_EVENTS), payload.contains('"email":'),
        payload.contains(json.dumps({"public_id": public_id}, separators=(",", ":"))[1:-1])))
