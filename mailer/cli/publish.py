"""`mailer publish THEME`: show a built mailing in the archive and the feed without sending it."""

from __future__ import annotations

import click

from mailer.builds.archive import publish
from mailer.cli.common import settings
from mailer.errors import user_file


@click.command("publish")
@click.argument("theme")
def publish_command(theme: str) -> None:
    """Add the built mailing THEME to the archive and the feed without sending it.

    It then appears in out/index.html, out/archief/ and out/feed.xml. A real send does this by
    itself when it starts; a build alone never does, so the feed
    never announces a mailing that has not gone out. Use this for a mailing that is only put
    online.

    \b
    Example:
      mailer build stalking && mailer publish stalking
    """
    config = settings()
    with user_file(config.out, "write"):
        done = publish(config, theme, "published by hand")
    click.echo(f"{theme} is now in the archive and the feed." if done
               else f"{theme} was already published.")


COMMANDS = [publish_command]
