"""What every command shares: the settings and the database of the current project.

The database layer is imported only by the commands that open the database, so that `mailer
build` starts without SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import click

from mailer import taxonomy
from mailer.config import Settings, load_settings, unchecked_settings
from mailer.errors import MailerError, SettingsError

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


def log_format_option(expose: bool = False, text_level: int = logging.INFO
                      ) -> Callable[[Any], Any]:
    """--log-format text|json (or MAILER_LOG_FORMAT) for the commands that run unattended.
    `text_level`: a command a person watches (send, with its progress bar) logs only its
    warnings as text; in JSON, for a collector, every command logs from INFO."""

    def configure(ctx: click.Context, param: click.Parameter, value: str) -> str:
        from mailer import logs

        logs.configure(value, logging.INFO if value == "json" else text_level)
        return value

    return click.option(
        "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
        envvar="MAILER_LOG_FORMAT", show_envvar=True, expose_value=expose, callback=configure,
        help="Log lines as readable text, or one JSON object per line (for a log collector).")


def json_option(what: str, always: bool = False) -> Callable[[Any], Any]:
    """--json: print `what` as one JSON document instead of the text for people; the shapes
    are in docs/json.md. `always`: the command prints JSON anyway, and takes --json so that
    every command that lists or shows does."""
    if always:
        return click.option("--json", "as_json", is_flag=True, expose_value=False,
                            help=f"Print {what} as one JSON document (shape: docs/json.md); "
                                 "also without --json.")
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {what} as one JSON document (shape: docs/json.md).")


def print_json(document: object) -> None:
    """One JSON document on standard output, and nothing else there: what a script reads."""
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


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


@contextlib.contextmanager
def recording_failed_start(command: str) -> Iterator[None]:
    """A settings check that fails while a long-running command starts (`mailer serve`,
    `scheduler`, `studio`): the settings file and variables, a DKIM key, the smtp settings.
    Besides the error, it goes into the audit trail as `settings.failed` when the configured
    database exists at the current schema; nothing is created to record it."""
    try:
        yield
    except SettingsError as exc:
        _record_failed_start(command, exc)
        raise


def _record_failed_start(command: str, failure: SettingsError) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from mailer.audit import command_line, os_user, record_now
    from mailer.db import reachable

    try:
        with warnings.catch_warnings():  # said once already, by the checked read
            warnings.simplefilter("ignore")
            config = unchecked_settings()
    except MailerError:  # a file that cannot be read at all names no database
        return
    if reachable(config):
        with contextlib.suppress(MailerError, SQLAlchemyError):  # the error itself matters more
            record_now(config, command_line(os_user()), "settings.failed", f"mailer {command}",
                       outcome=str(failure))
