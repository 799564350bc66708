"""Migration 0007: existing people get public ids, and the links they already have keep
working for them and for nobody else."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner
from sqlmodel import select
from starlette.testclient import TestClient

from mailer.db import engine_for, ensure_schema, migrate, session_scope
from mailer.models import Subscriber, utcnow
from mailer.subscribers.subscriptions import erase, hash_address
from mailer.web.app import create_app
from tests.conftest import add_subscriber

LONG_AGO = utcnow() - dt.timedelta(days=30)
# The subscriber table as it was before public ids.
OLD_SUBSCRIBER = sa.table("subscriber", *(
    sa.column(c.name, c.type) for c in Subscriber.__table__.columns  # type: ignore[attr-defined]
    if c.name not in ("id", "public_id", "legacy_id")))


def old_link(settings, row_id: int, purpose: str = "preferences") -> str:
    """A link as mails carried it before public ids: the row id, signed per purpose."""
    token = URLSafeTimedSerializer(settings.secret_key, salt=f"mailer.{purpose}").dumps(row_id)
    return f"/{'voorkeuren' if purpose == 'preferences' else 'afmelden'}/{token}"


def person_row(email: str) -> dict:
    return {"email": email, "address_hash": hash_address(email), "name": email.split("@")[0],
            "organisation": "", "region": "limburg", "audience": "netwerk", "status": "active",
            "created_at": LONG_AGO, "updated_at": LONG_AGO, "source": "test",
            "pending_request": None, "confirm_sent_at": None}


@pytest.fixture
def engine(settings):
    """A database with two people made before public ids, then upgraded to the newest schema."""
    engine = engine_for(settings.resolved_database_url)
    migrate(engine, "0006")
    with engine.begin() as conn:
        conn.execute(sa.insert(OLD_SUBSCRIBER), [person_row("anouk@example.org"),
                                                 person_row("bram@example.org")])
    ensure_schema(engine)
    return engine


@pytest.fixture
def client(settings, engine, transport):
    with TestClient(create_app(settings, transport), follow_redirects=False) as client:
        yield client


def people(engine) -> dict[str, Subscriber]:
    with session_scope(engine) as session:
        return {p.email: p for p in session.exec(select(Subscriber))}


def test_the_migration_gives_everyone_a_public_id_and_keeps_the_row_id(engine):
    found = people(engine)
    ids = {p.public_id for p in found.values()}
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(p.legacy_id == p.id for p in found.values())


def test_links_from_before_keep_working_for_their_person(client, settings, engine):
    anouk = people(engine)["anouk@example.org"]
    page = client.get(old_link(settings, anouk.id))
    assert page.status_code == 200 and "anouk@example.org" in page.text
    data = client.get(old_link(settings, anouk.id) + "/gegevens")
    assert data.status_code == 200 and data.json()["email"] == "anouk@example.org"
    one_click = client.post(old_link(settings, anouk.id, "unsubscribe"),
                            data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert people(engine)["anouk@example.org"].status == "unsubscribed"
    assert people(engine)["bram@example.org"].status == "active"


def test_an_erased_persons_old_links_reach_nobody_else(client, settings, engine):
    """The reproduction on old links: the newcomer gets the erased person's row id on SQLite."""
    bram = people(engine)["bram@example.org"]
    with session_scope(engine, write=True) as session:
        erase(session, bram.id)
    with session_scope(engine, write=True) as session:
        carla = add_subscriber(session, "carla@example.org", name="Carla")
    if settings.database_url.startswith("sqlite"):
        assert carla == bram.id
    for path in (old_link(settings, bram.id), old_link(settings, bram.id) + "/gegevens",
                 old_link(settings, bram.id, "unsubscribe")):
        response = client.get(path)
        assert response.status_code == 400 and "carla" not in response.text.lower()
    client.post(old_link(settings, bram.id, "unsubscribe"), data={"List-Unsubscribe": "One-Click"})
    assert people(engine)["carla@example.org"].status == "active"
    assert people(engine)["carla@example.org"].legacy_id is None


def test_an_old_link_made_before_its_row_was_names_someone_else(client, settings, engine,
                                                                monkeypatch):
    """Row ids were reused before the migration too: a link older than the row it names was
    made for the person who had that id before."""
    anouk = people(engine)["anouk@example.org"]
    earlier = int(time.time()) - 60 * 24 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: earlier)
    path = old_link(settings, anouk.id)
    monkeypatch.undo()
    response = client.get(path)
    assert response.status_code == 400 and "anouk" not in response.text


def test_the_database_fills_in_a_public_id_an_insert_left_out(engine):
    with engine.begin() as conn:
        conn.execute(sa.insert(OLD_SUBSCRIBER), [person_row("dirk@example.org")])
        conn.execute(sa.insert(OLD_SUBSCRIBER), [person_row("eva@example.org")])
    found = people(engine)
    assert re.fullmatch(r"[0-9a-f]{32}", found["dirk@example.org"].public_id)
    assert found["dirk@example.org"].public_id != found["eva@example.org"].public_id
    assert found["dirk@example.org"].legacy_id is None
