"""The `mailer` command: a thin click group over the library.

Each area keeps its commands in `mailer/cli/<area>.py`; this module only gathers them, lazily:
a command's module is imported when that command runs, so `mailer build` does not pay for the
database or HTTP libraries.
"""

from __future__ import annotations

import importlib

import click

from mailer import __version__
from mailer.cli import COMMANDS


class LazyGroup(click.Group):
    """A group that knows its commands' names and summaries, and imports a command on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"mailer.cli.{COMMANDS[cmd_name][0]}")
        return next(c for c in module.COMMANDS if c.name == cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailer")
def main() -> None:
    """Build, schedule and send the mailings of the Ontwikkelagenda Veiligheid Voorop.

    \b
    Example:
      mailer build stalking
    """
