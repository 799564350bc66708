"""What every command shares: the settings and the database of the current project.

The database layer is imported only by the commands that open the database, so that `mailer
build` starts without SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import click

from mailer import taxonomy
from mailer.config import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session


class Term(click.Choice):
    """A region, audience or topic slug: `--help` lists the choices as click.Choice does, and
    the one taxonomy check judges the value, suggesting the slug that was probably meant."""

    def __init__(self, what: str):
        super().__init__(list(taxonomy.VOCABULARIES[what]))
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = taxonomy.problem(self.what, value)
        if problem:
            self.fail(problem, param, ctx)
        return value


def _configure_logs(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from mailer import logs

    logs.configure(value)
    return value


def log_format_option(expose: bool = False) -> Callable[[Any], Any]:
    """--log-format text|json (or MAILER_LOG_FORMAT) for the commands that run unattended."""
    return click.option(
        "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
        envvar="MAILER_LOG_FORMAT", show_envvar=True, expose_value=expose,
        callback=_configure_logs,
        help="Log lines as readable text, or one JSON object per line (for a log collector).")


def settings() -> Settings:
    return load_settings()


def database(config: Settings) -> Engine:
    """The configured database, created at the current schema when new."""
    from mailer.db import get_engine

    return get_engine(config)


def database_session(write: bool = False) -> AbstractContextManager[Session]:
    """A session on the configured database, committed when the command's block ends."""
    from mailer.db import session_scope

    return session_scope(database(settings()), write=write)
