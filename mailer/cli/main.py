"""The `mailer` command: a thin click group over the library.

Each area keeps its commands in `mailer/cli/<area>.py`; this module gathers them, lazily (a
command's module is imported when that command runs, so `mailer build` does not pay for the
database or HTTP libraries), and is the one place where errors are shown: a MailerError as
`error: …` with exit code 1, anything else as a bug with its traceback.
"""

from __future__ import annotations

import importlib
import os
import select
import sys
import warnings
from typing import Any

import click

from mailer import __version__
from mailer.cli import COMMANDS
from mailer.errors import BUG_REPORT, ConfigWarning, MailerError


class MailerGroup(click.Group):
    """Knows its commands' names and summaries and imports a command on use; shows a user's
    mistake as one clean message and an unexpected exception as a bug."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)  # one added with @main.command()
        module = importlib.import_module(f"mailer.cli.{COMMANDS[cmd_name][0]}")
        return next(c for c in module.COMMANDS if c.name == cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MailerError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
                # Whoever read the output stopped reading (`mailer … | head`): stop, as Unix
                # tools do, without a traceback or another error when Python flushes at exit.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                ctx.exit(1)
            click.echo(f"mailer: unexpected error; {BUG_REPORT}", err=True)
            raise


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe nobody reads any more (its write end reports POLLERR),
    as opposed to a broken pipe elsewhere, such as a mail server's socket, which is a bug here."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no file behind stdout
        return False


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """A settings warning reads like an error: `warning: …`, without Python's source line."""
    if issubclass(category, ConfigWarning):
        return f"warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


_python_format = warnings.formatwarning
warnings.formatwarning = _format_warning


@click.group(cls=MailerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailer")
def main() -> None:
    """Build, schedule and send the mailings of the Ontwikkelagenda Veiligheid Voorop.

    \b
    Example:
      mailer build stalking
    """
