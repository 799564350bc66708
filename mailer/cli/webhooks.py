"""`mailer webhooks`: the receivers of signed events (Standard Webhooks)."""

from __future__ import annotations

import click

from mailer.cli.common import json_option, print_json, settings
from mailer.cli.identity import acting, by_option, password_stdin_option
from mailer.events import EVENTS
from mailer.webhooks import endpoints


@click.group("webhooks")
def webhooks() -> None:
    """Receivers of signed events: add, list, remove and test them.

    \b
    Example:
      mailer webhooks add https://crm.example.org/hooks/mailer --event subscriber.unsubscribed
    """


@webhooks.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True, type=click.Choice(list(EVENTS)),
              help="An event to send (repeatable).")
@click.option("--name", default="", help="The receiver's name [default: the URL's host].")
@click.option("--token", default="",
              help="The receiver's API token (`mailer tokens add`): with subscribers:read, "
                   "subscriber.confirmed carries the email address; other events never do.")
@by_option
@password_stdin_option
def add(url: str, events: tuple[str, ...], name: str, token: str, by: str | None,
        password_stdin: bool) -> None:
    """Add a receiver at URL (https://, or http:// to a loopback address) for the events.

    The signing secret is printed once, on the last line: give it to the receiver, which
    verifies each post with it. Once accounts exist this needs an admin.

    \b
    Example:
      mailer webhooks add https://crm.example.org/hooks/mailer --name crm \\
        --event subscriber.unsubscribed --event bounce.hard
    """
    config = settings()
    person = acting(config, by, password_stdin, "users")
    endpoint = endpoints.add(config, person, url, events, name, token)
    click.echo(f"Receiver {endpoint.name} added for {', '.join(endpoint.events)}"
               + (f" (as API token {token})" if token else "")
               + ". Its signing secret, shown only now:")
    click.echo(endpoint.secret)


@webhooks.command("list")
@json_option("the receivers")
def list_command(as_json: bool) -> None:
    """List the receivers, with their events waiting to be posted and given up.

    \b
    Example:
      mailer webhooks list --json
    """
    found = endpoints.listing(settings())
    if as_json:
        print_json([row.as_dict() for row in found])
        return
    if not found:
        click.echo("no receivers; `mailer webhooks add URL --event EVENT` adds one")
    for row in found:
        state = " (disabled)" if row.disabled_at else ""
        click.echo(f"{row.name}{state}\t{row.url}\t{','.join(row.events)}\t"
                   f"{row.pending} pending\t{row.failed} failed"
                   + (f"\tlast error: {row.last_error}" if row.last_error else ""))


@webhooks.command("remove")
@click.argument("name")
@by_option
@password_stdin_option
def remove(name: str, by: str | None, password_stdin: bool) -> None:
    """Remove the receiver NAME; events not yet posted to it are dropped.

    Once accounts exist this needs an admin.

    \b
    Example:
      mailer webhooks remove crm
    """
    config = settings()
    dropped = endpoints.remove(config, acting(config, by, password_stdin, "users"), name)
    click.echo(f"Receiver {name} removed" + (f"; {dropped} events not posted were dropped"
                                             if dropped else ""))


@webhooks.command("test")
@click.argument("name")
def test(name: str) -> None:
    """Post a signed webhook.test event to the receiver NAME now, and show its answer.

    Exit code 1 when it does not answer with a 2xx status.

    \b
    Example:
      mailer webhooks test crm
    """
    click.echo(endpoints.send_test(settings(), name))


COMMANDS = [webhooks]
