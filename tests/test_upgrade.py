"""A database filled by the first schema versions upgrades to the newest with its rows intact."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlmodel import select

from mailer.db import _alembic_config, current_revision, engine_for, head_revision, migrate, session_scope
from mailer.errors import DatabaseError
from mailer.models import (
    Account,
    ApiToken,
    AuditEvent,
    Bounce,
    Delivery,
    LoginLock,
    PartnerFeed,
    PartnerPublication,
    RateLimit,
    Schedule,
    Send,
    SendVariant,
    StaffSession,
    Subscriber,
    Subscription,
    Suppression,
    WebhookEndpoint,
    WebhookMessage,
)

NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)

# The rows a database held at each revision, in that revision's columns (not today's models).
ROWS: dict[str, dict[str, list[dict]]] = {
    "0001": {
        "subscriber": [{"id": 1, "email": "anouk@example.org", "address_hash": "h1",
                        "name": "Anouk Jansen", "organisation": "Veilig Thuis", "region": "limburg",
                        "audience": "netwerk", "status": "active", "created_at": NOW,
                        "updated_at": NOW, "source": "lists/limburg.csv"}],
        "subscription": [{"id": 1, "subscriber_id": 1, "topic": "verdiepingen", "status": "active",
                          "consent_at": NOW, "consent_source": "import", "updated_at": NOW}],
        "suppression": [{"address_hash": "h2", "reason": "unsubscribed", "created_at": NOW}],
    },
    "0002": {
        "send": [{"id": 1, "theme": "stalking", "topic": "verdiepingen", "subject": "S",
                  "regions": "limburg,oost-nederland", "audiences": "", "status": "done",
                  "pause_reason": "", "source_hash": "abc", "greeting": "Beste lezer,",
                  "greeting_named": "Beste {naam},", "created_at": NOW}],
    },
    "0004": {
        "partner_publication": [{"id": 1, "url": "https://www.om.nl/x", "organisation": "OM",
                                 "title": "Aanpak stalking", "summary": "", "published": NOW.date(),
                                 "categories": "Huiselijk geweld|Stalking, belaging",
                                 "themes": "stalking", "regions": "", "source": "hand",
                                 "created_at": NOW, "updated_at": NOW}],
    },
    "0005": {
        "schedule": [{"id": 1, "theme": "stalking", "regions": "", "audiences": "netwerk,werkveld",
                      "due_at": NOW, "status": "done", "send_id": 1, "worker": "",
                      "created_at": NOW, "updated_at": NOW, "note": "met de hand"}],
    },
}


def scripts() -> ScriptDirectory:
    """The migrations as the library finds them (package data)."""
    return ScriptDirectory.from_config(_alembic_config(None))


def revisions() -> list[str]:
    return [r.revision for r in reversed(list(scripts().walk_revisions()))]


def fill_while_upgrading(engine: sa.Engine, until: str | None = None) -> None:
    """Upgrade one revision at a time (to head, or to `until`), adding each revision's rows as
    its code would have."""
    metadata = sa.MetaData()
    order = revisions()
    for revision in order[: order.index(until) + 1] if until else order:
        migrate(engine, revision)
        for table, rows in ROWS.get(revision, {}).items():
            with engine.begin() as conn:
                conn.execute(sa.Table(table, metadata, autoload_with=conn).insert(), rows)


def test_rows_written_at_every_old_revision_survive_the_upgrade_to_head(settings):
    assert set(ROWS) <= set(revisions())
    engine = engine_for(settings.resolved_database_url)
    fill_while_upgrading(engine)
    assert current_revision(engine) == head_revision()
    with session_scope(engine) as session:
        person = session.get(Subscriber, 1)
        assert (person.email, person.name, person.region, person.created_at) == (
            "anouk@example.org", "Anouk Jansen", "limburg", NOW)
        assert session.exec(select(Subscription.topic, Subscription.status)).all() == [
            ("verdiepingen", "active")]
        assert session.get(Suppression, "h2").reason == "unsubscribed"
        send = session.get(Send, 1)
        assert (send.regions, send.audiences, send.greeting_named, send.lease_holder) == (
            ["limburg", "oost-nederland"], [], "Beste {naam},", "")
        publication = session.get(PartnerPublication, 1)
        assert (publication.categories, publication.themes, publication.regions) == (
            ["Huiselijk geweld", "Stalking, belaging"], ["stalking"], [])
        schedule = session.get(Schedule, 1)
        assert (schedule.regions, schedule.audiences, schedule.note, schedule.send_id) == (
            [], ["netwerk", "werkveld"], "met de hand", 1)


def test_the_list_conversion_can_be_undone(settings):
    engine = engine_for(settings.resolved_database_url)
    list_change = next(r for r in scripts().walk_revisions()
                       if r.path.endswith("_json_lists.py"))
    fill_while_upgrading(engine, until=list_change.revision)
    migrate(engine, list_change.down_revision, down=True)
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT categories, themes FROM partner_publication")).all()
        send = conn.execute(sa.text("SELECT regions, audiences FROM send")).one()
    assert [tuple(r) for r in rows] == [("Huiselijk geweld|Stalking, belaging", "stalking")]
    assert tuple(send) == ("limburg,oost-nederland", "")


def fill_at_head(engine: sa.Engine) -> None:
    """One row or two in every table, linked as sending links them: a send with its variant,
    deliveries (one bounced), and the schedule that started it."""
    with session_scope(engine) as session:
        people = [Subscriber(email=f"{n}@example.org", address_hash=f"h-{n}", name=n.title(),
                             region="limburg", audience="netwerk", status="active",
                             created_at=NOW, updated_at=NOW) for n in ("anouk", "bram")]
        session.add_all(people)
        session.flush()
        session.add_all([Subscription(subscriber_id=p.id, topic="verdiepingen", status="active",
                                      consent_at=NOW, updated_at=NOW) for p in people])
        session.add(Suppression(address_hash="h-gone", reason="erased", created_at=NOW))
        session.add(RateLimit(key="ip:192.0.2.1", window_start=NOW, count=3))
        send = Send(theme="stalking", topic="verdiepingen", subject="Stalking", status="done",
                    regions=["limburg"], audiences=["netwerk", "werkveld"], source_hash="abc",
                    created_at=NOW, snapshot_at=NOW, finished_at=NOW, created_by="anouk",
                    approved_by="bram", approved_at=NOW, approved_hash="abc",
                    lease_holder="host:1:a", lease_since=NOW)
        session.add(send)
        session.flush()
        session.add(SendVariant(send_id=send.id, name="v1", html="<p>Hoi</p>", text="Hoi",
                                online_url="https://example.org/v1"))
        deliveries = [Delivery(send_id=send.id, subscriber_id=p.id, region="limburg",
                               audience="netwerk", variant="v1", status=status, sent_at=NOW,
                               code=code, answer_class=answer, enhanced_code=enhanced)
                      for p, status, code, answer, enhanced in (
                          (people[0], "sent", 250, "", ""), (people[1], "bounced", 550, "hard", "5.1.1"))]
        session.add_all(deliveries)
        session.flush()
        session.add(Bounce(key="b1", address_hash="h-bram", kind="blocked", status="5.7.1",
                           answer="user unknown", delivery_id=deliveries[1].id, created_at=NOW))
        session.add(Schedule(theme="stalking", audiences=["netwerk"], due_at=NOW, status="done",
                             send_id=send.id, calendar_key="stalking:2026-11-20", created_at=NOW,
                             updated_at=NOW, created_by="anouk", approved_by="bram"))
        session.add(PartnerPublication(url="https://www.om.nl/x", organisation="OM", title="Stalking",
                                       categories=["Huiselijk geweld", "Stalking, belaging"],
                                       themes=["stalking"], created_at=NOW, updated_at=NOW))
        session.add(PartnerFeed(url="https://www.om.nl/feed", organisation="OM", etag="e1"))
        account = Account(name="Bram", name_key="bram", role="editor", regions=["limburg"],
                          password_hash="$argon2id$x", created_at=NOW, updated_at=NOW)
        session.add(account)
        session.flush()
        session.add(StaffSession(token_hash="t" * 64, account_id=account.id, csrf="c",
                                 created_at=NOW, seen_at=NOW))
        session.add(LoginLock(name_key="anouk", failures=2, window_start=NOW))
        session.add(AuditEvent(id=1, at=NOW, actor="Bram", origin="studio 192.0.2.1",
                               action="login", hash="h" * 64))
        session.add(ApiToken(name="crm-noord", token_hash="a" * 64, scopes=["subscribers:read"],
                             created_by="Bram", created_at=NOW, last_used_at=NOW))
        hook = WebhookEndpoint(name="crm", url="https://crm.example.org/h", events=["bounce.hard"],
                               secret="whsec_c2VjcmV0", token="crm-noord", created_at=NOW)
        session.add(hook)
        session.flush()
        session.add(WebhookMessage(endpoint_id=hook.id, event="bounce.hard", msg_id="msg_1",
                                   payload='{"type":"bounce.hard"}', created_at=NOW, attempts=2,
                                   next_attempt_at=NOW, last_error="HTTP 503"))


def table_rows(engine: sa.Engine) -> dict[str, list[dict]]:
    """Every row of every table but Alembic's own, in primary key order, as the driver gives it."""
    inspector = sa.inspect(engine)
    found = {}
    with engine.connect() as conn:
        for table in set(inspector.get_table_names()) - {"alembic_version"}:
            key = ", ".join(inspector.get_pk_constraint(table)["constrained_columns"])
            found[table] = [dict(row._mapping) for row in
                            conn.exec_driver_sql(f'SELECT * FROM "{table}" ORDER BY {key}')]
    return found


def only(rows: dict[str, list[dict]], shape: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`rows` cut down to the tables and columns that `shape` has."""
    return {table: [{c: row[c] for c in shape[table][0]} for row in rows[table]]
            for table in shape if shape[table]}


def test_a_database_filled_at_head_goes_down_to_every_revision_and_back_with_its_rows(settings):
    engine = engine_for(settings.resolved_database_url)
    migrate(engine)
    fill_at_head(engine)
    before = table_rows(engine)
    assert all(before.values())
    for revision in reversed(revisions()[:-1]):  # ends at the first revision
        migrate(engine, revision, down=True)
        kept = table_rows(engine)
        # a table that head no longer has (apscheduler_jobs) comes back empty
        assert {t: len(rows) for t, rows in kept.items()} == {t: len(before.get(t, [])) for t in kept}
        migrate(engine)
        assert only(table_rows(engine), kept) == only(before, kept), f"down to {revision} and back"
    assert set(kept) == {"subscriber", "subscription", "suppression", "topic"}


def test_a_migration_that_would_leave_a_broken_reference_on_sqlite_changes_nothing(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path}/mailer.db")
    migrate(engine)
    with engine.connect() as conn:  # a delivery of a send that is gone, as foreign keys off allow
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        conn.exec_driver_sql("INSERT INTO delivery (send_id, region, audience, variant, status, "
                             "attempts, worker, error) VALUES (7, 'limburg', 'netwerk', 'v1', "
                             "'pending', 0, '', '')")
        conn.commit()
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(DatabaseError, match="table delivery pointing at a missing row of send"):
        migrate(engine, revisions()[-2], down=True)
    assert current_revision(engine) == head_revision()
