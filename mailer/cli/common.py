"""What every command shares: the settings and the database of the current project.

The database layer is imported only by the commands that open the database, so that `mailer
build` starts without SQLAlchemy.
"""

from __future__ import annotations

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
