"""A copy of the database while sends run (`mailer db backup`), and its restore into an empty
database (`mailer db restore`).

A backup is consistent however busy the database is, because each engine takes its own
snapshot: SQLite's online backup API copies every page in one step inside one read transaction
(in WAL mode writers carry on meanwhile), and `pg_dump` reads everything inside one
repeatable-read transaction. The copy is written beside FILE under a temporary name and renamed
when complete, so a failed backup leaves no half file; it holds personal data and is readable
by its owner only.

A restore goes into an empty database only, so a backup is never mixed with live data, and the
kind of the file (a SQLite database, or a `pg_dump` custom archive) must match the target URL's.
On PostgreSQL a database URL whose `options` set a `search_path` (one installation in its own
schema) is backed up as that schema alone (`pg_dump --schema`), and must be restored to a URL
with the same `search_path`: an archive keeps its schema's name.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import URL, make_url, text
from sqlalchemy.exc import ArgumentError, OperationalError

from mailer.config import Settings
from mailer.db import current_revision, engine_for
from mailer.errors import DataError, user_file
from mailer.schema import head_revision

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"  # the start of every pg_dump custom-format archive (-Fc)
KINDS = {"sqlite": "a SQLite database file", "postgresql": "a pg_dump custom archive (-Fc)"}
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
TOOLS_HINT = ("install the PostgreSQL client tools of the server's major version or newer "
              "(Debian: postgresql-client)")
# A table anywhere but in PostgreSQL's own schemas: the target database is not empty.
_PG_TABLE = text("SELECT n.nspname || '.' || c.relname FROM pg_class c "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
                 "'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
                 "ORDER BY 1 LIMIT 3")
_ARCHIVE_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) \S+", re.M)  # a line of `pg_restore -l`


class BackupError(DataError):
    """A backup or restore that cannot be made as asked."""


@dataclass(frozen=True)
class Copy:
    """What a backup wrote or a restore read: its kind, file, size and the time it took."""

    kind: str  # "sqlite" or "postgresql"
    path: Path
    size: int
    seconds: float
    revision: str | None = None  # a restore: the schema version found in the restored database

    @property
    def current(self) -> bool:
        """Whether the restored database is at the schema version this code needs."""
        return self.revision == head_revision()


def shown(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def backup(settings: Settings, target: Path, force: bool = False) -> Copy:
    """Copy the configured database to `target`, consistently while it is in use; an existing
    `target` is replaced only when `force`."""
    url = settings.resolved_database_url
    kind = _kind_of_url(url, "database_url")
    target = target.absolute()
    if target.is_dir():
        raise BackupError(f"{target} is a folder; name the backup file")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; choose another name, or pass --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist; create it first")
    started = time.monotonic()
    with _beside(target) as partial:
        if kind == "sqlite":
            _sqlite_backup(_sqlite_path(url), partial)
        else:
            _pg_dump(make_url(url), partial)
    return Copy(kind, target, target.stat().st_size, time.monotonic() - started)


def restore(settings: Settings, source: Path, to: str) -> Copy:
    """Restore the backup `source` into the empty database at `to` (a relative SQLite path is
    taken from the project root, as `database_url` is) and read its schema version."""
    kind = kind_of_file(source)
    url = replace(settings, database_url=to).resolved_database_url
    target = _kind_of_url(url, "--to")
    if kind != target:
        raise BackupError(f"{source} is {KINDS[kind]}, but --to {shown(url)} is a "
                          f"{NAMES[target]} database; restore it into a {NAMES[kind]} database")
    started = time.monotonic()
    if kind == "sqlite":
        _sqlite_restore(source, _sqlite_path(url))
    else:
        _pg_restore(source, make_url(url))
    with _reaching(url):
        engine = engine_for(url)
        try:
            revision = current_revision(engine)
        finally:
            engine.dispose()
    if revision is None:
        raise BackupError(f"{source} was restored into {shown(url)}, but it holds no mailer "
                          "schema (no alembic_version table): was it a backup of mailer?")
    return Copy(kind, source, source.stat().st_size, time.monotonic() - started, revision)


def kind_of_file(path: Path) -> str:
    """"sqlite" or "postgresql", by the file's first bytes."""
    with user_file(path), path.open("rb") as file:
        head = file.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_MAGIC):
        return "postgresql"
    raise BackupError(f"{path} is neither {KINDS['sqlite']} nor {KINDS['postgresql']}; "
                      "restore a file written by `mailer db backup`")


def _kind_of_url(url: str, where: str) -> str:
    try:
        kind = make_url(url).get_backend_name()
    except ArgumentError:
        kind = ""
    if kind not in KINDS:
        raise BackupError(f"{where} {shown(url)} is not a SQLite or PostgreSQL database URL")
    return kind


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A database named by --to that cannot be opened: one BackupError naming it."""
    try:
        yield
    except (OperationalError, ArgumentError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BackupError(f"cannot open the database {shown(url)}: {reason}") from exc


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url} is not a database file; only a file can be backed up "
                          "or restored")
    return Path(database)


@contextmanager
def _beside(target: Path) -> Iterator[Path]:
    """A temporary file next to `target`, only readable by its owner, that becomes `target`
    when the block succeeds and is removed when it fails."""
    with user_file(target.parent, "write in"):
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial",
                                        dir=target.parent)
        os.close(handle)
    partial = Path(name)
    try:
        yield partial
        with user_file(target, "write"):
            os.replace(partial, target)
            folder = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(folder)  # the rename itself survives a crash
            finally:
                os.close(folder)
    finally:
        partial.unlink(missing_ok=True)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)


def _sqlite_backup(path: Path, partial: Path) -> None:
    """Every page of the database at `path` into `partial`, in one step (one snapshot)."""
    if not path.is_file():
        raise BackupError(f"there is no database at {path}; check the database_url setting")
    try:
        with closing(_read_only(path)) as source, closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)  # pages=-1: all at once, inside one read transaction
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {path}: {exc}") from exc


def _sqlite_restore(source: Path, path: Path) -> None:
    """The backup `source` into the database file at `path`, which must be new or empty."""
    if not path.parent.is_dir():
        raise BackupError(f"the folder {path.parent} does not exist; create it first")
    existed = path.exists()
    try:
        with closing(sqlite3.connect(path, timeout=30)) as target:
            tables = [row[0] for row in target.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 3")]
            if tables:
                raise BackupError(_not_empty(str(path), tables))
            with closing(_read_only(source)) as backup_file:
                backup_file.backup(target)
    except BaseException as exc:
        if not existed:  # leave no database behind that was not there before
            for suffix in ("", "-wal", "-shm", "-journal"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise BackupError(f"cannot restore {source} into {path}: {exc}") from exc
        raise


def _not_empty(where: str, tables: list[str]) -> str:
    return (f"the database {where} is not empty (it has tables: {', '.join(tables)}); a backup "
            "is restored only into an empty database, so it never mixes with data already "
            "there: create a new database (PostgreSQL: createdb) or name a new file")


# --- PostgreSQL: pg_dump and pg_restore ----------------------------------------------------


def _schema(url: URL) -> str | None:
    """The first schema of the search_path the URL's `options` set, if any."""
    options = url.query.get("options", "")
    found = re.search(r"-c\s*search_path\s*=\s*(\S+)",
                      " ".join(options) if isinstance(options, tuple) else options)
    if found is None:
        return None
    return found[1].split(",")[0].strip("\"'") or None


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} was not found on PATH ({os.environ.get('PATH', '')}); a "
                          f"PostgreSQL backup or restore runs it: {TOOLS_HINT}")
    return found


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The URL as libpq takes it, and the environment that gives it the password (kept off
    the command line, where other users of the machine could read it)."""
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(
        hide_password=False)
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return conninfo, env


def _run(command: list[str], env: dict[str, str] | None = None) -> str:
    """Run a PostgreSQL tool; its failure becomes one BackupError with its own words."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return done.stdout
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    said = "; ".join([*lines[:1], *[line for line in lines[1:] if "detail:" in line][:1]])
    hint = f" ({TOOLS_HINT})" if "version mismatch" in done.stderr else ""
    raise BackupError(f"{Path(command[0]).name} failed: {said or f'exit code {done.returncode}'}"
                      f"{hint}")


def _pg_dump(url: URL, partial: Path) -> None:
    tool = _tool("pg_dump")
    conninfo, env = _libpq(url)
    schema = _schema(url)
    _run([tool, "--format=custom", f"--file={partial}",
          *([f"--schema={schema}"] if schema else []), f"--dbname={conninfo}"], env)


def _pg_restore(source: Path, url: URL) -> None:
    """pg_restore the archive into the empty database at `url`, in one transaction."""
    tool = _tool("pg_restore")
    schemas = sorted(set(_ARCHIVE_TABLE.findall(_run([tool, "--list", str(source)]))))
    schema = _schema(url) or "public"
    if schema not in schemas:
        held = f"schema {', '.join(schemas)}" if schemas else "no tables"
        raise BackupError(f"{source} holds {held}, but --to {shown(str(url))} uses schema "
                          f"{schema}; an archive keeps its schema's name: add "
                          f"options=-csearch_path%3D{schemas[0] if schemas else '…'} to the URL")
    rendered = url.render_as_string(hide_password=False)
    with _reaching(rendered):
        engine = engine_for(rendered)
        try:
            with engine.connect() as conn:
                tables = list(conn.execute(_PG_TABLE).scalars())
        finally:
            engine.dispose()
    if tables:
        raise BackupError(_not_empty(shown(rendered), tables))
    conninfo, env = _libpq(url)
    _run([tool, "--no-owner", "--exit-on-error", "--single-transaction",
          f"--dbname={conninfo}", str(source)], env)
