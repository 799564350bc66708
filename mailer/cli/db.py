"""`mailer db`: the database schema, backups and their restore."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.backup import backup, restore, shown
from mailer.cli.common import settings
from mailer.db import upgrade as upgrade_database
from mailer.schema import head_revision


@click.group("db")
def db() -> None:
    """Manage the database schema (SQLite by default, PostgreSQL through a URL).

    \b
    Examples:
      MAILER_DATABASE_URL=postgresql+psycopg://mailer@db/mailer mailer db upgrade
      mailer db backup /var/backups/mailer/mailer.dump
    """


@db.command("upgrade")
def upgrade() -> None:
    """Create the database or bring it to the newest schema version.

    Other commands create a new database themselves, but never change an existing one: after
    installing a new version of the mailer, run this once.

    \b
    Example:
      mailer db upgrade
    """
    config = settings()
    revision = upgrade_database(config)
    click.echo(f"database {config.database_url} is at schema version {revision}")


def _size(size: int) -> str:
    value, unit = float(size), "bytes"
    for larger in ("kB", "MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, larger
    return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


@db.command("backup")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE when it exists.")
def backup_command(file: Path, force: bool) -> None:
    """Write a consistent copy of the database to FILE, also while sends run.

    SQLite: SQLite's online backup API, into a SQLite file. PostgreSQL: `pg_dump -Fc` (the
    PostgreSQL client tools, of the server's major version or newer), into a custom-format
    archive; a database URL whose options set a search_path is backed up as that schema. FILE
    is written under a temporary name beside it and renamed when complete; it holds personal
    data and is readable by its owner only.

    \b
    Example:
      mailer db backup /var/backups/mailer/mailer-$(date +%F).dump
    """
    config = settings()
    copy = backup(config, file, force)
    click.echo(f"backup of {shown(config.resolved_database_url)} written to {copy.path}: "
               f"{_size(copy.size)} in {copy.seconds:.2f} s")


@db.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "to", required=True, metavar="DATABASE_URL",
              help="The empty database to restore into (a SQLite URL for a SQLite backup, a "
                   "PostgreSQL URL for a pg_dump archive).")
def restore_command(file: Path, to: str) -> None:
    """Restore a backup made by `mailer db backup` into an empty database.

    A database that has any table is refused. Afterwards the schema version is read: point
    database_url at the restored database (and run `mailer db upgrade` when it is older than
    this mailer), then `mailer sends resume ID` carries on an interrupted send.

    \b
    Example:
      createdb mailer_restored
      mailer db restore mailer.dump --to postgresql+psycopg://mailer@db/mailer_restored
    """
    copy = restore(settings(), file, to)
    state = ("current" if copy.current
             else f"this mailer needs {head_revision()}: run `mailer db upgrade` on it")
    click.echo(f"restored {copy.path} ({_size(copy.size)}) into {shown(to)} in "
               f"{copy.seconds:.2f} s; schema version {copy.revision} ({state})")


COMMANDS = [db]
