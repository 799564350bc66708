"""What every command shares: settings from the context, and errors that end with exit code 1.

The database layer is imported only by the commands that open the database, so that `mailer
build` starts without SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import wraps
from typing import TYPE_CHECKING, Any

import click

from mailer.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session


class UserError(click.ClickException):
    """An error the user can fix; printed without a traceback, exit code 1."""


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def friendly(*errors: type[Exception]) -> Callable:
    """Turn the given library exceptions into a clean message and exit code 1."""

    def wrap(func: Callable) -> Callable:
        @wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except errors as exc:
                raise UserError(str(exc)) from exc

        return run

    return wrap


def database(config: Settings) -> Engine:
    """The configured database, created at the current schema when new."""
    from sqlalchemy.exc import OperationalError

    from mailer.db import SchemaError, get_engine

    try:
        return get_engine(config)
    except SchemaError as exc:
        raise UserError(str(exc)) from exc
    except OperationalError as exc:
        raise UserError(f"cannot open the database {config.database_url}: {exc.orig}") from exc


def database_session(write: bool = False) -> AbstractContextManager[Session]:
    """A session on the configured database, committed when the command's block ends."""
    from mailer.db import session_scope

    return session_scope(database(settings()), write=write)
