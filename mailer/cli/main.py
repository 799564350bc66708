"""The `mailer` command: a thin click group over the library.

Each area keeps its commands in `mailer/cli/<area>.py`; this module only gathers them.
"""

from __future__ import annotations

import importlib

import click

from mailer import __version__
from mailer.cli import COMMAND_MODULES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailer")
def main() -> None:
    """Build, schedule and send the mailings of the Ontwikkelagenda Veiligheid Voorop.

    \b
    Example:
      mailer build stalking
    """


for _name in COMMAND_MODULES:
    for _command in importlib.import_module(f"mailer.cli.{_name}").COMMANDS:
        main.add_command(_command)
