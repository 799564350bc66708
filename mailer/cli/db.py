"""`mailer db`: the database schema."""

from __future__ import annotations

import click

from mailer.cli.common import settings
from mailer.db import upgrade as upgrade_database


@click.group("db")
def db() -> None:
    """Manage the database schema (SQLite by default, PostgreSQL through a URL).

    \b
    Example:
      MAILER_DATABASE_URL=postgresql+psycopg://mailer@db/mailer mailer db upgrade
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


COMMANDS = [db]
