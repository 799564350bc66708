"""What every command shares: the settings and the database of the current project."""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import Engine
from sqlmodel import Session

from mailer.config import Settings, load_settings
from mailer.db import get_engine, session_scope


def settings() -> Settings:
    return load_settings()


def database(config: Settings) -> Engine:
    """The configured database, created at the current schema when new."""
    return get_engine(config)


def database_session(write: bool = False) -> AbstractContextManager[Session]:
    """A session on the configured database, committed when the command's block ends."""
    return session_scope(database(settings()), write=write)
