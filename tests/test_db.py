from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel, select

from mailer.db import (
    _alembic_config,
    current_revision,
    engine_for,
    get_engine,
    head_revision,
    session_scope,
)
from mailer.models import Subscriber, Topic
from mailer.partners.rows import read_publications
from mailer.schema import SchemaError
from mailer.taxonomy import TOPICS


def test_a_new_database_is_created_at_the_newest_revision(engine):
    assert current_revision(engine) == head_revision()


def test_migrations_match_the_models(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_topics_are_seeded(session):
    assert {t.slug: t.name for t in session.exec(select(Topic))} == TOPICS


def test_session_scope_rolls_back_on_error(engine):
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(Subscriber(email="a@example.org", address_hash="x", region="limburg",
                               audience="netwerk"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert session.exec(select(Subscriber)).all() == []


def test_an_outdated_database_asks_for_an_upgrade(settings):
    engine = engine_for(settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0000')"))
    with pytest.raises(SchemaError, match="mailer db upgrade"):
        get_engine(settings)
    with pytest.raises(SchemaError, match="at schema version 0000, this mailer needs"):
        read_publications(settings)  # the build's own read, without SQLAlchemy


def test_the_head_revision_is_alembics() -> None:
    scripts = ScriptDirectory.from_config(_alembic_config(None))
    assert head_revision() == scripts.get_current_head()


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
    engine.dispose()


def test_sqlite_writers_of_other_processes_wait_their_turn(tmp_path):
    import subprocess
    import sys

    from mailer.db import _writers

    engine = engine_for(f"sqlite:///{tmp_path}/x.db")
    probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except BlockingIOError: sys.exit(3)")
    lock_file = f"{tmp_path}/x.db-writers.lock"
    with _writers[id(engine)]:
        busy = subprocess.run([sys.executable, "-c", probe, lock_file])
    free = subprocess.run([sys.executable, "-c", probe, lock_file])
    assert (busy.returncode, free.returncode) == (3, 0)
    engine.dispose()
