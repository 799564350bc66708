"""A database filled by the first schema versions upgrades to the newest with its rows intact."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlmodel import select

from mailer.db import _alembic_config, current_revision, engine_for, head_revision, session_scope
from mailer.models import PartnerPublication, Schedule, Send, Subscriber, Subscription, Suppression

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


def upgrade(engine: sa.Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)


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
        upgrade(engine, revision)
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
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), list_change.down_revision)
        rows = conn.execute(sa.text("SELECT categories, themes FROM partner_publication")).all()
        send = conn.execute(sa.text("SELECT regions, audiences FROM send")).one()
    assert [tuple(r) for r in rows] == [("Huiselijk geweld|Stalking, belaging", "stalking")]
    assert tuple(send) == ("limburg,oost-nederland", "")
