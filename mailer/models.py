"""The tables: subscribers, topics, subscriptions, suppressions (hashed addresses), and sends.

Timestamps are aware UTC (`utcnow`); SQLModel's UTCDateTime returns them aware from SQLite too,
so both backends compare alike.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any, Protocol

from sqlalchemy import Index, Table, Text, UniqueConstraint, inspect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

EMAIL_MAX = 254


class TextList(TypeDecorator):
    """A list of strings as a JSON array in a text column: the one way lists are stored, the
    same on SQLite and PostgreSQL, and safe for any character a value may hold."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        return json.dumps(list(value or ()), ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: Any) -> list[str]:
        return json.loads(value) if value else []


def text_list() -> Any:
    """A TextList field, empty by default (for regions and audiences: empty means all)."""
    return Field(default_factory=list, sa_type=TextList)
TEXT_MAX = 200


def utcnow() -> dt.datetime:
    """The one clock every table uses."""
    return dt.datetime.now(dt.UTC)


def iso_utc(moment: dt.datetime | None) -> str | None:
    """A stored time for a JSON document: ISO 8601 in UTC with its offset (None stays None)."""
    return moment.astimezone(dt.UTC).isoformat() if moment else None


class _Row(Protocol):
    @property
    def id(self) -> int | None: ...


def stored_id(row: _Row) -> int:
    """The id of a row read from the database or flushed: SQLModel types every id as Optional
    because a row has none before its INSERT."""
    if row.id is None:
        raise ValueError(f"this {type(row).__name__} has no id yet: it was never flushed")
    return row.id


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core table: SQLModel sets `__table__` without declaring it to type checkers."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


def new_public_id() -> str:
    """128 random bits as 32 hex digits: names a person in links and never names another."""
    return secrets.token_hex(16)


# The same, made by the database, for set-based inserts (`INSERT … SELECT`).
PUBLIC_ID_SQL = {
    "sqlite": "lower(hex(randomblob(16)))",
    "postgresql": "replace(gen_random_uuid()::text, '-', '')",
}


class Subscriber(SQLModel, table=True):
    """One person on a list. `address_hash` lets SQL join against suppressions.

    Links and Message-IDs name a person by `public_id`, never by `id`: SQLite reuses the row id
    of a deleted newest row. `legacy_id` is the row id that links made before public ids carried;
    only rows that existed when public ids were introduced have one (migration 0007).
    """

    id: int | None = Field(default=None, primary_key=True)
    # The column default also covers bulk (Core) inserts that leave the field out.
    public_id: str = Field(default_factory=new_public_id, max_length=32, unique=True, index=True,
                           sa_column_kwargs={"default": new_public_id})
    legacy_id: int | None = Field(default=None, unique=True, index=True)
    email: str = Field(max_length=EMAIL_MAX, unique=True)
    address_hash: str = Field(max_length=64, index=True)
    name: str = Field(default="", max_length=TEXT_MAX)
    organisation: str = Field(default="", max_length=TEXT_MAX)
    region: str = Field(max_length=40, index=True)
    audience: str = Field(max_length=40, index=True)
    # active | pending | unsubscribed ("erased" people are deleted; only a Suppression remains)
    status: str = Field(default="pending", max_length=12, index=True)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    source: str = Field(default="", max_length=TEXT_MAX)
    # A web sign-up waiting for its double opt-in (JSON); applied only on confirmation, so a
    # stranger's form cannot change an existing subscriber's data.
    pending_request: str | None = Field(default=None, sa_type=Text)
    confirm_sent_at: dt.datetime | None = Field(default=None)


class Topic(SQLModel, table=True):
    """What a subscription is for; a mailing goes to exactly one topic."""

    slug: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=TEXT_MAX)


class Subscription(SQLModel, table=True):
    """A subscriber's consent for one topic."""

    __table_args__ = (UniqueConstraint("subscriber_id", "topic"),)

    id: int | None = Field(default=None, primary_key=True)
    # (no index of its own: UNIQUE (subscriber_id, topic) serves every look-up by person)
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    topic: str = Field(foreign_key="topic.slug", max_length=40, index=True)
    status: str = Field(default="pending", max_length=12)  # active | pending | unsubscribed
    consent_at: dt.datetime | None = Field(default=None)
    consent_source: str = Field(default="", max_length=TEXT_MAX)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    # How the person left, for the figures (/metrics): one-click, page, mail, staff; "" before 0015
    unsubscribed_via: str = Field(default="", max_length=12,
                                  sa_column_kwargs={"server_default": ""})


class Suppression(SQLModel, table=True):
    """An address that must not be mailed; kept as a keyed hash so erasure leaves no address."""

    address_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=12)  # unsubscribed | bounced | complaint | erased
    created_at: dt.datetime = Field(default_factory=utcnow)


class RateLimit(SQLModel, table=True):
    """A counter per key (e.g. a client address) and window, in the database so that every web
    worker sees the same count."""

    __tablename__ = "rate_limit"

    key: str = Field(primary_key=True, max_length=TEXT_MAX)
    window_start: dt.datetime = Field(index=True)
    count: int = Field(default=0)


# --- sending tables follow (delivery) ---

class Approval(SQLModel):
    """Four eyes: who asked for a send or schedule and who approved it, when, for which build
    (`approved_hash` is the build's source hash: content edited since makes it stale)."""

    created_by: str = Field(default="", max_length=TEXT_MAX)
    approved_by: str = Field(default="", max_length=TEXT_MAX)
    approved_at: dt.datetime | None = Field(default=None)
    approved_hash: str = Field(default="", max_length=64)



class Send(Approval, table=True):
    """One mailing sent to one segment. Status: planned → running → done, or paused/cancelled.

    `snapshot_at` is set in the same transaction that writes the Delivery rows, so a crash
    either leaves no recipients or all of them.
    """

    id: int | None = Field(default=None, primary_key=True)
    theme: str = Field(max_length=80)
    topic: str = Field(max_length=40)
    subject: str = Field(sa_type=Text)
    regions: list[str] = text_list()  # slugs; empty = all
    audiences: list[str] = text_list()
    status: str = Field(default="planned", max_length=12, index=True)
    pause_reason: str = Field(default="", sa_type=Text)
    source_hash: str = Field(default="", max_length=64)
    greeting: str = Field(default="", sa_type=Text)
    greeting_named: str = Field(default="", sa_type=Text)
    planned_for: dt.datetime | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=utcnow)
    snapshot_at: dt.datetime | None = Field(default=None)
    finished_at: dt.datetime | None = Field(default=None)
    # The worker holding the send on SQLite (host:pid:tag), since when, and its last sign of life.
    lease_holder: str = Field(default="", max_length=TEXT_MAX)
    lease_since: dt.datetime | None = Field(default=None)
    lease_renewed_at: dt.datetime | None = Field(default=None)
    # A real send that started although readiness checks failed: who forced it, why, and what failed
    forced_by: str = Field(default="", max_length=TEXT_MAX)
    forced_reason: str = Field(default="", sa_type=Text)
    forced_checks: str = Field(default="", sa_type=Text)


class SendVariant(SQLModel, table=True):
    """A compiled variant frozen at snapshot time: a resume sends what the send started with,
    even when the theme was rebuilt since, and workers on other machines need no out/ folder."""

    send_id: int = Field(foreign_key="send.id", ondelete="CASCADE", primary_key=True)
    name: str = Field(max_length=40, primary_key=True)
    html: str = Field(sa_type=Text)
    text: str = Field(sa_type=Text)
    online_url: str = Field(sa_type=Text)


class Delivery(SQLModel, table=True):
    """One recipient of one send: pending → sending (claimed) → sent | failed | skipped | bounced.

    No address is stored: it is read from the subscriber at delivery time, and erasing a person
    leaves the row without a subscriber (skipped, "erased").
    """

    __table_args__ = (UniqueConstraint("send_id", "subscriber_id"),
                      Index("ix_delivery_send_status", "send_id", "status"))

    id: int | None = Field(default=None, primary_key=True)
    send_id: int = Field(foreign_key="send.id", ondelete="CASCADE")
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id",
                                      ondelete="SET NULL", index=True)
    region: str = Field(max_length=40)
    audience: str = Field(max_length=40)
    variant: str = Field(max_length=40)
    status: str = Field(default="pending", max_length=12)
    attempts: int = Field(default=0)
    next_attempt_at: dt.datetime | None = Field(default=None)
    claimed_at: dt.datetime | None = Field(default=None)
    worker: str = Field(default="", max_length=80)
    sent_at: dt.datetime | None = Field(default=None)
    code: int | None = Field(default=None)
    error: str = Field(default="", sa_type=Text)  # the server's answer, or why it was skipped
    answer_class: str = Field(default="", max_length=8)  # hard | soft | blocked (RFC 3463)
    enhanced_code: str = Field(default="", max_length=12)  # e.g. 5.1.1


class Bounce(SQLModel, table=True):
    """One recorded bounce finding; `key` makes re-reading the same bounces change nothing.

    Soft bounces are counted per address from these rows; the address is kept only as a hash.
    """

    key: str = Field(primary_key=True, max_length=64)
    address_hash: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=8)  # hard | soft | blocked
    status: str = Field(max_length=12)  # the enhanced status code, e.g. 5.1.1
    answer: str = Field(default="", sa_type=Text)  # the server's answer as the bounce quotes it
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id", ondelete="SET NULL")
    created_at: dt.datetime = Field(default_factory=utcnow)


class Installation(SQLModel, table=True):
    """One row: this database's random install id, part of every Message-ID we send."""

    id: str = Field(primary_key=True, max_length=32)
    created_at: dt.datetime = Field(default_factory=utcnow)


# --- partner publications (cross-references) ---


class PartnerPublication(SQLModel, table=True):
    """A partner's publication our mailings can point to; from a feed or added by hand.

    Lists (categories, themes, regions) are only ever read whole: TextList columns.
    """

    __tablename__ = "partner_publication"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=1000, unique=True)
    organisation: str = Field(max_length=TEXT_MAX, index=True)
    title: str = Field(max_length=500)
    summary: str = Field(default="", sa_type=Text)
    published: dt.date | None = Field(default=None, index=True)
    categories: list[str] = text_list()
    themes: list[str] = text_list()
    regions: list[str] = text_list()
    source: str = Field(default="hand", max_length=1000)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class PartnerFeed(SQLModel, table=True):
    """What the last fetch of a feed saw, for conditional requests and for reporting."""

    __tablename__ = "partner_feed"

    url: str = Field(primary_key=True, max_length=1000)
    organisation: str = Field(max_length=TEXT_MAX)
    etag: str = Field(default="", max_length=500)
    last_modified: str = Field(default="", max_length=100)
    fetched_at: dt.datetime | None = Field(default=None)
    status: str = Field(default="", max_length=20)
    error: str = Field(default="", sa_type=Text)


# --- scheduling ---


class Schedule(Approval, table=True):
    """A send planned for a moment: the only record of it, which the scheduler reads on every pass.

    `worker` and `heartbeat_at` are the lease of the scheduler process running the send, so a
    send whose process died is resumed by another and a live one is left alone.
    """

    id: int | None = Field(default=None, primary_key=True)
    theme: str = Field(max_length=80)
    regions: list[str] = text_list()  # slugs; empty = every region
    audiences: list[str] = text_list()  # slugs; empty = every audience
    due_at: dt.datetime = Field(index=True)
    # planned | started | missed | cancelled | done | failed
    status: str = Field(default="planned", max_length=12, index=True)
    send_id: int | None = Field(default=None, foreign_key="send.id")
    calendar_key: str | None = Field(default=None, max_length=TEXT_MAX, unique=True)
    worker: str = Field(default="", max_length=TEXT_MAX)
    heartbeat_at: dt.datetime | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    note: str = Field(default="", sa_type=Text)
    hold_reason: str = Field(default="", sa_type=Text)  # why a due send did not start (approval, send checks)


# --- the team: accounts, their log-in sessions and locks, and the audit trail ---


class Account(SQLModel, table=True):
    """A person of the team. `name_key` (the name in lower case) is what log-ins match.

    No password is stored, only its argon2id hash; a new or reset account has none until its
    owner sets one through the one-time link (`setup_hash` is the SHA-256 of that link's token).
    A disabled account cannot log in; its rows in the audit trail and on sends stay.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    name_key: str = Field(max_length=80, unique=True)
    role: str = Field(max_length=12)  # writer | editor | admin
    regions: list[str] = text_list()  # slugs; empty = every region
    password_hash: str = Field(default="", sa_type=Text)
    totp_secret: str = Field(default="", max_length=64)
    setup_hash: str = Field(default="", max_length=64)
    setup_expires_at: dt.datetime | None = Field(default=None)
    disabled_at: dt.datetime | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_at: dt.datetime = Field(default_factory=utcnow)


class LoginLock(SQLModel, table=True):
    """Failed log-ins per name (whether or not it is an account's), in the database so that
    every worker counts the same and a lock holds in all of them."""

    __tablename__ = "login_lock"

    name_key: str = Field(primary_key=True, max_length=80)
    failures: int = Field(default=0)
    window_start: dt.datetime = Field(default_factory=utcnow)
    locked_until: dt.datetime | None = Field(default=None)


class StaffSession(SQLModel, table=True):
    """A logged-in browser. The cookie holds a random token; only its SHA-256 is kept here, so
    reading this table does not let anyone log in."""

    __tablename__ = "staff_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    account_id: int = Field(foreign_key="account.id", ondelete="CASCADE", index=True)
    csrf: str = Field(max_length=64)
    origin: str = Field(default="", max_length=TEXT_MAX)
    created_at: dt.datetime = Field(default_factory=utcnow)
    seen_at: dt.datetime = Field(default_factory=utcnow, index=True)


class AuditEvent(SQLModel, table=True):
    """One line of the audit trail: appended, never updated or deleted by mailer. `hash` covers
    the row and the previous row's hash, so a row edited or removed behind mailer's back breaks
    the chain (see mailer.audit)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(default="", max_length=TEXT_MAX)  # the account, or the typed name
    origin: str = Field(default="", max_length=TEXT_MAX)  # "studio 192.0.2.7", "command line (os user x)"
    action: str = Field(max_length=40)  # e.g. login, login.failed, send.approved
    subject: str = Field(default="", max_length=TEXT_MAX)  # e.g. "send 12", "account anna"
    outcome: str = Field(default="ok", sa_type=Text)  # ok, or why it was refused
    detail: str = Field(default="{}", sa_type=Text)  # JSON
    prev_hash: str = Field(default="", max_length=64)
    hash: str = Field(max_length=64)


# --- the REST API ---


class ApiToken(SQLModel, table=True):
    """A token for the REST API (/api/v1), by name, with the scopes it carries.

    Only the SHA-256 of the token is kept, so reading this table does not let anyone call the
    API; the token itself is shown once, when it is made. A revoked token stays, for the record.
    """

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    scopes: list[str] = text_list()
    created_by: str = Field(default="", max_length=TEXT_MAX)
    created_at: dt.datetime = Field(default_factory=utcnow)
    revoked_at: dt.datetime | None = Field(default=None)
    last_used_at: dt.datetime | None = Field(default=None)
# --- webhooks: receivers and the outbox of their events ---


class WebhookEndpoint(SQLModel, table=True):
    """A receiver of events, signed by the Standard Webhooks specification.

    `secret` is the signing secret (`whsec_…`) itself, not a hash of it: signing needs the key,
    as an HMAC does. Whoever reads this table can sign as mailer, so it is kept like the DKIM key.
    `token` names the API token whose scopes say what the receiver may see: with
    subscribers:read, subscriber.confirmed carries the email address (mailer.events).
    """

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    url: str = Field(max_length=2000)
    events: list[str] = text_list()
    secret: str = Field(max_length=80)
    token: str = Field(default="", max_length=80)  # an api_token's name, or ""
    created_at: dt.datetime = Field(default_factory=utcnow)
    disabled_at: dt.datetime | None = Field(default=None)  # a disabled receiver gets no events


class WebhookMessage(SQLModel, table=True):
    """One event for one receiver: written in the transaction of its cause, posted later.

    `next_attempt_at` is when a worker may take it; a worker that takes it moves it on by the
    claim timeout, so a worker that dies leaves it to be taken again. It is None once the
    message was delivered or given up, so the due ones are found through its index alone.
    """

    __tablename__ = "webhook_message"

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="webhook_endpoint.id", ondelete="CASCADE", index=True)
    event: str = Field(max_length=40)
    msg_id: str = Field(max_length=40, unique=True)  # the webhook-id header, the same on each attempt
    payload: str = Field(sa_type=Text)  # the body, exactly as signed and sent
    created_at: dt.datetime = Field(default_factory=utcnow)
    attempts: int = Field(default=0)
    next_attempt_at: dt.datetime | None = Field(default=None, index=True)
    delivered_at: dt.datetime | None = Field(default=None)
    last_error: str = Field(default="", sa_type=Text)
    gave_up_at: dt.datetime | None = Field(default=None)
