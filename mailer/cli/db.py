"""`mailer db`: the database schema."""

from __future__ import annotations

import click

from mailer.cli.common import UserError, settings
from mailer.db import engine_for, ensure_schema


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
    try:
        revision = ensure_schema(engine_for(config.resolved_database_url))
    except Exception as exc:  # a driver or connection error: say which database and why
        raise UserError(f"cannot upgrade {config.database_url}: {exc}") from exc
    click.echo(f"database {config.database_url} is at schema version {revision}")


COMMANDS = [db]
