"""The `mailer` command: a thin click group over the library.

Each area keeps its commands in `mailer/commands/<area>.py`; this module only gathers them.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from mailer import __version__
from mailer.commands import COMMAND_MODULES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailer")
def main() -> None:
    """Build, schedule and send the mailings of the Ontwikkelagenda Veiligheid Voorop.

    \b
    Example:
      mailer build stalking
    """


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(f"mailer.commands.{_name}") is None:
        continue  # an area developed on another branch that this checkout does not have yet
    for _command in importlib.import_module(f"mailer.commands.{_name}").COMMANDS:
        main.add_command(_command)
