"""`mailer subscribers`: look people up and remove them on request."""

from __future__ import annotations

import datetime as dt

import click

from mailer.audit import command_line, os_user
from mailer.cli.common import database_session, json_option, print_json, settings
from mailer.models import stored_id
from mailer.subscribers.subscriptions import (
    erase,
    find_by_email,
    find_subscribers,
    personal_data,
    purge_pending,
    summary_document,
    unsubscribe,
)


@click.group("subscribers")
def subscribers() -> None:
    """Show, find and remove subscribers.

    \b
    Example:
      mailer subscribers find "veilig thuis"
    """


@subscribers.command("show")
@click.argument("email")
@json_option("everything kept", always=True)
def show(email: str) -> None:
    """Show everything kept about one address (the same data the person can download), as
    JSON.

    \b
    Example:
      mailer subscribers show anouk.jansen@example.org
      mailer subscribers show anouk.jansen@example.org --json
    """
    with database_session() as session:
        data = personal_data(session, stored_id(find_by_email(session, email)))
    print_json(data)


@subscribers.command("find")
@click.argument("text")
@click.option("--limit", default=50, show_default=True, help="Show at most this many.")
@json_option("the subscribers found")
def find(text: str, limit: int, as_json: bool) -> None:
    """List subscribers whose address, name or organisation contains TEXT.

    \b
    Example:
      mailer subscribers find @example.org --limit 10
      mailer subscribers find "veilig thuis" --json
    """
    with database_session() as session:
        found = [summary_document(session, p) for p in find_subscribers(session, text, limit)]
    if as_json:
        print_json(found)
        return
    lines = [f"{p['email']}\t{p['name']}\t{p['organisation']}\t{p['region']}\t{p['audience']}\t"
             f"{p['status']}\t" + ",".join(p["topics"]) for p in found]
    click.echo("\n".join(lines) if lines else "no subscribers found")


@subscribers.command("remove")
@click.argument("email")
@click.option("--erase", "erase_all", is_flag=True,
              help="Erase everything about the person; only a hashed suppression entry stays.")
def remove(email: str, erase_all: bool) -> None:
    """Unsubscribe an address from everything, e.g. after a request by phone or mail.

    The address is suppressed: no import will add it again; only the person's own sign-up
    (double opt-in) can. An erasure is in the audit trail (`mailer audit`) by the person's
    opaque public id, never by the address.

    \b
    Examples:
      mailer subscribers remove anouk.jansen@example.org
      mailer subscribers remove anouk.jansen@example.org --erase
    """
    with database_session(write=True) as session:
        subscriber_id = stored_id(find_by_email(session, email))
        if erase_all:
            erase(session, subscriber_id, command_line(os_user()))
        else:
            unsubscribe(session, subscriber_id, None, via="staff")
    click.echo(f"{email}: {'erased' if erase_all else 'unsubscribed from every topic'}")


@subscribers.command("purge")
@click.option("--days", type=click.FloatRange(min=0), default=None,
              help="Age in days after which an unconfirmed sign-up goes [default: the "
                   "pending_days setting, 7].")
def purge(days: float | None) -> None:
    """Forget web sign-ups that were never confirmed.

    People who only ever were pending are deleted; others lose the change they asked for but
    never confirmed. `mailer serve` does the same every hour while it runs.

    \b
    Example:
      mailer subscribers purge --days 7
    """
    age = dt.timedelta(days=settings().pending_days if days is None else days)
    with database_session(write=True) as session:
        count = purge_pending(session, age)
    click.echo(f"{count} unconfirmed sign-ups older than {age / dt.timedelta(days=1):g} days purged")


COMMANDS = [subscribers]
