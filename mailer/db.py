"""Engines, sessions and schema migrations for SQLite (embedded default) and PostgreSQL.

SQLite gets WAL (readers never block the writer), a busy timeout and foreign keys. Sessions that
write can ask for `BEGIN IMMEDIATE` so two writers queue on the lock instead of failing with
"database is locked" when a read-then-write transaction is overtaken; they queue first on a
`WriterQueue`, which also lines up the writers of other processes (`mailer serve --workers`).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, TextClause, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from mailer.config import Settings
from mailer.errors import DatabaseError
from mailer.schema import check_revision, head_revision

MIGRATIONS = "mailer:migrations"  # package data, found through importlib.resources by Alembic

_engines: dict[str, Engine] = {}
_writers: dict[int, WriterQueue] = {}
_current: set[int] = set()
_lock = threading.Lock()


class WriterQueue:
    """Writers of a SQLite file take turns here before `BEGIN IMMEDIATE`.

    A thread lock lines up this process's threads; an flock on a file next to the database lines
    up processes, and the kernel wakes the next one the moment the lock is free. SQLite's own
    busy handler sleeps up to 100 ms between retries, which under load turns a 1 ms transaction
    into a long wait.
    """

    def __init__(self, database: str | None):
        self.threads = threading.Lock()
        self.path = f"{database}-writers.lock" if database else None
        self.fd: int | None = None

    def __enter__(self) -> None:
        self.threads.acquire()
        if self.path is None:
            return
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.threads.release()


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:  # the driver's own connection
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def engine_for(url: str) -> Engine:
    """One engine per URL for the life of the process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
            if engine.dialect.name == "sqlite":
                _sqlite_pragmas(engine)
                database = engine.url.database
                _writers[id(engine)] = WriterQueue(
                    database if database and database != ":memory:" else None)
            _engines[url] = engine
        return engine


class AsyncStatements:
    """PostgreSQL statements awaited on the event loop, for the hottest path of the web pages
    (the one-click unsubscribe, one statement).

    Every other database call of the pages runs in a thread with a session; for a single
    statement the hand-off and the session cost more CPU than the statement. Here it is one round
    trip on an autocommit connection from a small pool of psycopg's async connections: no
    thread, no BEGIN, COMMIT or liveness ping. A connection the server dropped since its last
    use (a restart) is discarded and the statement tried once more on a fresh one, so
    statements must be idempotent. Made and closed inside one event loop (the app's lifespan).
    """

    def __init__(self, engine: Engine, size: int = 10):
        self.dialect = engine.dialect
        self.args, self.kwargs = engine.dialect.create_connect_args(engine.url)
        self.slots = asyncio.Semaphore(size)  # at most `size` connections, the rest wait here
        self.idle: list[Any] = []
        self.compiled: dict[TextClause, tuple[str, dict[str, Callable[[Any], Any] | None]]] = {}

    async def scalar(self, statement: TextClause, params: dict[str, Any]) -> Any:
        """The first column of the first row the statement returns, or None."""
        import psycopg

        sql, processors = self._compile(statement)
        values = {key: process(params[key]) if process else params[key]
                  for key, process in processors.items()}
        async with self.slots:
            while True:
                reused = bool(self.idle)
                connection = self.idle.pop() if reused else await psycopg.AsyncConnection.connect(
                    *self.args, autocommit=True, **self.kwargs)
                try:
                    row = await (await connection.execute(sql, values)).fetchone()
                except psycopg.OperationalError:
                    await connection.close()
                    if reused and connection.broken:
                        continue
                    raise
                self.idle.append(connection)
                return row[0] if row else None

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()

    def _compile(self, statement: TextClause) -> tuple[str, dict[str, Callable[[Any], Any] | None]]:
        """The SQL as psycopg takes it, and each parameter's conversion (the models' types)."""
        found = self.compiled.get(statement)
        if found is None:
            compiled = statement.compile(dialect=self.dialect)
            found = self.compiled[statement] = (str(compiled), {
                key: bind.type.bind_processor(self.dialect) for key, bind in compiled.binds.items()})
        return found


def _alembic_config(connection: Connection) -> Config:
    """Alembic configured in code, so no alembic.ini is needed wherever the tool runs."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or downgrade) the database to `revision` in one transaction.

    On SQLite a batch migration copies a table, drops the original and renames the copy; with
    foreign keys on, that drop would delete the rows that cascade from it (deliveries) or be
    refused for those that may not (a schedule's send). So foreign keys are off while the
    migrations run, and every reference is checked before the commit instead.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:  # outside any transaction, where SQLite honours this pragma
            driver_connection(conn).execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                (command.downgrade if down else command.upgrade)(_alembic_config(conn), revision)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first() if sqlite else None
                if broken:
                    raise DatabaseError(f"migrating to {revision} left a row of table {broken[0]} "
                                        f"pointing at a missing row of {broken[2]}; nothing was changed")
        finally:
            if sqlite:
                driver_connection(conn).execute("PRAGMA foreign_keys=ON")


def driver_connection(conn: Connection) -> Any:
    """The database driver's own connection, for what SQLAlchemy does not offer (SQLite's
    pragmas outside a transaction, its limits)."""
    driver = conn.connection.driver_connection
    assert driver is not None  # an open connection always has one
    return driver


def ensure_schema(engine: Engine) -> str:
    """Upgrade the database to the newest migration (creating it when new); return the revision."""
    migrate(engine)
    _current.add(id(engine))
    return head_revision()


@contextmanager
def opening(url: str) -> Iterator[None]:
    """Turn a database that cannot be reached or a URL that cannot be used into a DatabaseError."""
    try:
        yield
    except (OperationalError, ArgumentError, ImportError) as exc:
        shown = make_url(url).render_as_string(hide_password=True) if "://" in url else url
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseError(f"cannot open the database {shown}: {reason}; check the database_url "
                            "setting (mailer.toml or MAILER_DATABASE_URL)") from exc


def get_engine(settings: Settings) -> Engine:
    """The engine for the configured database; a new database is created at the current version.

    An existing database at an older version is not changed behind the user's back: they are told
    to run `mailer db upgrade`.
    """
    url = settings.resolved_database_url
    with opening(url):
        engine = engine_for(url)
        if id(engine) in _current:
            return engine
        found = current_revision(engine)
        if found is None:
            ensure_schema(engine)
    check_revision(found)
    _current.add(id(engine))
    return engine


def reachable(settings: Settings) -> bool:
    """Whether the configured database exists and is at the schema this code needs, found
    without creating anything (a missing SQLite file stays missing): for recording a failure
    where the settings themselves may be what is wrong."""
    url = settings.resolved_database_url
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and not (
                parsed.database and parsed.database != ":memory:"
                and os.path.isfile(parsed.database)):
            return False
        return current_revision(engine_for(url)) == head_revision()
    except (SQLAlchemyError, ArgumentError, ImportError, ValueError):
        return False


def upgrade(settings: Settings) -> str:
    """`mailer db upgrade`: bring the configured database to the newest schema version."""
    url = settings.resolved_database_url
    with opening(url):
        return ensure_schema(engine_for(url))


@contextmanager
def session_scope(target: Settings | Engine, write: bool = False) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back on an error.

    `write=True` takes SQLite's write lock at the start, for read-then-write transactions that run
    concurrently (the web app); PostgreSQL ignores it. Such writers queue on the database's
    WriterQueue first.
    """
    engine = get_engine(target) if isinstance(target, Settings) else target
    queue = _writers.get(id(engine)) if write else None
    bind = engine.execution_options(immediate=True) if write else engine
    with queue or nullcontext(), Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
