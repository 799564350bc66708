"""Backups and their restore on both databases: the drill (a backup in the middle of a send,
restored into an empty database, where `sends resume` finishes the send), a backup taken while
people sign up, and the refusals (a database that is not empty, a file of the other kind, a
missing or refusing pg_dump, a file that exists).

On PostgreSQL each test has a schema of its own (tests/conftest.py). Its backup is that schema
alone (`pg_dump --schema`, taken from the URL's search_path), restored into a scratch database
made for the test (`CREATE DATABASE … TEMPLATE template0`, dropped afterwards) under a URL with
the same search_path: an archive keeps its schema's name, and a restore wants a whole database
that is empty, as it would after `createdb` in production.
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, make_url
from sqlmodel import select

from mailer.backup import BackupError, backup, restore
from mailer.config import Settings
from mailer.db import engine_for, get_engine, session_scope
from mailer.models import Subscriber, Subscription
from mailer.schema import head_revision
from mailer.send import runner as sending
from tests.conftest import POSTGRES_URL, add_subscriber, bulk_subscribers
from tests.smtp_server import SMTPTestServer
from tests.test_send_processes import BATCH, finish, mailer

RECIPIENTS = 300
HOLD = 2 * BATCH + BATCH // 2  # messages accepted before the mail server hangs: mid-batch


def on_postgresql(settings: Settings) -> bool:
    return settings.database_url.startswith("postgresql")


@pytest.fixture
def empty_database(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """A URL to a new, empty database of the kind `settings` use, to restore into."""
    if not on_postgresql(settings):
        (tmp_path / "restored").mkdir()
        url = f"sqlite:///{tmp_path}/restored/mailer.db"
        yield url
        engine_for(url).dispose()
        return
    name = f"mailer_restore_{uuid.uuid4().hex[:12]}"
    admin = engine_for(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = make_url(settings.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def held_mid_send(server: SMTPTestServer, workers: list[subprocess.Popen], connections: int
                  ) -> None:
    """Wait until the server hangs with batches in flight: every connection of every worker
    held, or, when a connection finished its share of a batch before the hold (so it never
    hangs), no more connections held for a second."""
    deadline = time.monotonic() + 60
    held, since = 0, time.monotonic()
    while server.held < len(workers) * connections:
        assert all(w.poll() is None for w in workers), "a worker ended before the hold"
        assert time.monotonic() < deadline, f"only {server.held} connections held"
        if server.held != held:
            held, since = server.held, time.monotonic()
        elif held and time.monotonic() - since > 1.0:
            return
        time.sleep(0.01)


def test_drill_a_backup_mid_send_restored_and_resumed_loses_nobody(
        send_settings: Settings, empty_database: str, tmp_path: Path) -> None:
    postgres = on_postgresql(send_settings)
    bulk_subscribers(send_settings, RECIPIENTS)
    send_id = sending.create_send(send_settings, "stalking")
    sending.snapshot_send(send_settings, send_id)
    command = ("sends", "work" if postgres else "resume", str(send_id))
    file = tmp_path / "backups" / "mailer.backup"
    file.parent.mkdir()
    logs = tempfile.TemporaryFile()  # noqa: SIM115 - the workers write to it until killed
    with SMTPTestServer() as server:
        server.hold_after = HOLD
        workers = [mailer(send_settings, server, *command, output=logs)
                   for _ in range(2 if postgres else 1)]
        held_mid_send(server, workers, send_settings.smtp_connections)
        taken = finish(mailer(send_settings, server, "db", "backup", str(file)))
        for worker in workers:  # the machine is lost: only the backup is left
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        before = len(server.messages)
        server.release()
        restored = replace(send_settings, database_url=empty_database)
        back = finish(mailer(restored, server, "db", "restore", str(file), "--to", empty_database))
        finish(mailer(restored, server, "sends", "resume", str(send_id)))
        received = Counter(r.recipients[0] for r in server.messages)

    assert f"schema version {head_revision()} (current)" in back
    assert set(received) == {f"r{n}@example.org" for n in range(RECIPIENTS)}, "lost or strangers"
    doubles = sum(n - 1 for n in received.values())
    # what the killed workers had in flight, unrecorded, goes again: one batch per worker at most
    assert 0 < doubles <= len(workers) * BATCH
    summary = sending.summary(restored, send_id)
    assert (summary.status, summary.counts) == ("done", {"sent": RECIPIENTS})
    size, seconds = re.search(r": (.+) in (\S+) s$", taken.strip()).groups()  # type: ignore[union-attr]
    print(f"\ndrill {'postgresql' if postgres else 'sqlite'}, {len(workers)} worker(s), batch "
          f"{BATCH}: {RECIPIENTS} recipients, {before} delivered before the backup, all "
          f"{len(received)} reached after the resume, {doubles} twice; backup {size} in {seconds} s")


def test_a_backup_while_people_sign_up_is_one_moment(settings: Settings, empty_database: str,
                                                     tmp_path: Path) -> None:
    """Each sign-up writes a subscriber and their subscription in one transaction: a copy
    that mixed moments would hold one without the other."""
    get_engine(settings)
    signed_up = 0
    stop = threading.Event()

    def sign_ups() -> None:
        nonlocal signed_up
        while not stop.is_set():
            with session_scope(settings, write=True) as session:
                add_subscriber(session, f"p{signed_up}@example.org", topics=("updates",))
            signed_up += 1

    writer = threading.Thread(target=sign_ups)
    writer.start()
    try:
        while signed_up < 20:
            time.sleep(0.01)
        at_start = signed_up
        copy = backup(settings, tmp_path / "busy.backup")
        while signed_up < at_start + 20:  # and carries on
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join()
    restore(settings, copy.path, empty_database)
    restored = replace(settings, database_url=empty_database)
    with session_scope(restored) as session:
        people = session.exec(select(func.count()).select_from(Subscriber)).one()
        subscriptions = session.exec(select(func.count()).select_from(Subscription)
                                     .where(Subscription.status == "active")).one()
    assert at_start <= people == subscriptions < signed_up


def test_restore_refuses_a_database_that_is_not_empty(run, send_settings: Settings,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    file = tmp_path / "mailer.backup"
    made = run("db", "backup", str(file))
    assert made.exit_code == 0 and re.search(r"written to .*: [\d.]+ kB in [\d.]+ s", made.output)
    with session_scope(send_settings, write=True) as session:
        add_subscriber(session, "nieuw@example.org", topics=("verdiepingen",))
    refused = run("db", "restore", str(file), "--to", send_settings.database_url)
    assert refused.exit_code == 1
    assert "error: the database" in refused.output and "is not empty (it has tables: " in refused.output
    with session_scope(send_settings) as session:  # untouched: the newcomer is still there
        assert len(session.exec(select(Subscriber)).all()) == 3


def test_a_backup_does_not_replace_a_file_unless_forced(settings: Settings, tmp_path: Path) -> None:
    get_engine(settings)
    file = tmp_path / "mailer.backup"
    backup(settings, file)
    old = file.read_bytes()
    with pytest.raises(BackupError, match="exists; choose another name, or pass --force"):
        backup(settings, file)
    with session_scope(settings, write=True) as session:
        add_subscriber(session, "nieuw@example.org")
    backup(settings, file, force=True)
    assert file.read_bytes() != old
    assert file.stat().st_mode & 0o777 == 0o600  # personal data: the owner's only
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_a_file_of_the_other_kind_is_refused(settings: Settings, tmp_path: Path) -> None:
    get_engine(settings)
    file = backup(settings, tmp_path / "mailer.backup").path
    if on_postgresql(settings):
        other, told = f"sqlite:///{tmp_path}/other.db", "is a pg_dump custom archive (-Fc), but"
    else:  # refused before anything is opened: no PostgreSQL server is needed
        other, told = "postgresql+psycopg://nobody@127.0.0.1:9/none", "is a SQLite database file"
    with pytest.raises(BackupError, match=re.escape(told)):
        restore(settings, file, other)
    assert not (tmp_path / "other.db").exists()
    text = tmp_path / "dump.sql"
    text.write_text("-- PostgreSQL database dump\n", encoding="utf-8")
    with pytest.raises(BackupError, match="neither a SQLite database file nor a pg_dump custom"):
        restore(settings, text, f"sqlite:///{tmp_path}/third.db")


@pytest.fixture
def postgres_settings(plain_settings: Settings) -> Settings:
    """Settings naming a PostgreSQL database that these tests never reach."""
    return replace(plain_settings, database_url=POSTGRES_URL)


def test_a_missing_pg_dump_or_pg_restore_is_named(postgres_settings: Settings, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BackupError, match=r"pg_dump was not found on PATH \(.*/bin\).*client tools"):
        backup(postgres_settings, tmp_path / "mailer.backup")
    assert not (tmp_path / "mailer.backup").exists()
    archive = tmp_path / "old.backup"
    archive.write_bytes(b"PGDMP\x01\x0e\x00")
    with pytest.raises(BackupError, match="pg_restore was not found on PATH"):
        restore(postgres_settings, archive, POSTGRES_URL)


REFUSING_PG_DUMP = """#!/bin/sh
for arg in "$@"; do case "$arg" in --file=*) printf 'PGDMP half' > "${arg#--file=}";; esac; done
echo "pg_dump: error: aborting because of server version mismatch" >&2
echo "pg_dump: detail: server version: 17.2; pg_dump version: 15.20" >&2
exit 1
"""


def test_a_pg_dump_that_refuses_leaves_no_half_file(postgres_settings: Settings, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An older pg_dump than the server refuses after it began: its own words are passed on,
    and the part it wrote is gone. (A stand-in at the narrow seam of the external tool: the
    server of the tests and its pg_dump are of one version.)"""
    tool = tmp_path / "bin" / "pg_dump"
    tool.parent.mkdir()
    tool.write_text(REFUSING_PG_DUMP, encoding="utf-8")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tool.parent))
    (tmp_path / "backups").mkdir()
    with pytest.raises(BackupError) as refused:
        backup(postgres_settings, tmp_path / "backups" / "mailer.backup")
    assert str(refused.value) == (
        "pg_dump failed: pg_dump: error: aborting because of server version mismatch; "
        "pg_dump: detail: server version: 17.2; pg_dump version: 15.20 (install the PostgreSQL "
        "client tools of the server's major version or newer (Debian: postgresql-client))")
    assert list((tmp_path / "backups").iterdir()) == []
