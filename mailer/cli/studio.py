"""`mailer studio THEME`: the live preview and the staff's panel, in the browser."""

from __future__ import annotations

import secrets

import click

from mailer.accounts.users import any_accounts
from mailer.cli.common import database, recording_failed_start, settings
from mailer.content.loader import ContentError, load_mailing


@click.command("studio")
@click.argument("theme")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback requires the printed token.")
@click.option("--port", default=8025, show_default=True, help="Port to listen on (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the studio in the browser.")
def studio_command(theme: str, host: str, port: int, open_browser: bool) -> None:
    """Preview THEME as each reader gets it, live while you edit its files.

    Saving a block file rebuilds and updates the open page; an error shows in the page with
    its file and line. Also: the readiness checks, a test send to yourself, sends and
    schedules per region with their approval, send reports and partner suggestions.

    \b
    Example:
      mailer studio stalking --open
    """
    from mailer.web.studio import serve_studio

    with recording_failed_start("studio"):
        config = settings()
        database(config)
    try:
        load_mailing(config.content, theme, config.root)
    except ContentError:
        # A theme that exists but does not build opens anyway: the page shows its problems.
        if not (config.content / theme / "mailing.yaml").is_file():
            raise
    token = secrets.token_urlsafe(18)
    team = any_accounts(config)

    def started(url: str) -> None:
        click.echo(f"Studio for {theme}: {url}")
        if team:
            click.echo("Log in with your account (mailer has accounts: see `mailer users list`).")
        else:
            click.echo("Access token (needed for actions, and for every page off loopback): "
                       f"{token}")
        click.echo("Ctrl-C stops it.")
        if open_browser:
            click.launch(url)

    serve_studio(config, theme, host, port, token, started)


COMMANDS = [studio_command]
