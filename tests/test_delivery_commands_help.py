"""Every delivery command explains itself with an example (as the CLI guide asks)."""

from __future__ import annotations

import click
import pytest

from mailer.commands import bounces, dkim


def walk(command: click.Command, path: str = "mailer") -> list[tuple[str, click.Command]]:
    found = [(f"{path} {command.name}", command)]
    for sub in getattr(command, "commands", {}).values():
        found += walk(sub, f"{path} {command.name}")
    return found


@pytest.mark.parametrize(("path", "command"),
                         [pair for module in (bounces, dkim) for group in module.COMMANDS
                          for pair in walk(group)])
def test_help_has_an_example(path: str, command: click.Command) -> None:
    assert "Example:" in (command.help or ""), f"{path} has no example in its help"
