"""What every command shares: settings from the context, and errors that end with exit code 1."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from mailer.config import ConfigError, Settings, load_settings


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
