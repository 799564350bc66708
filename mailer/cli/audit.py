"""`mailer audit`: read and verify the audit trail."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import click

from mailer import audit
from mailer.cli.common import database, print_json, settings
from mailer.cli.identity import acting, by_option, password_stdin_option


def _since(text: str, timezone: str) -> dt.datetime:
    """A day (YYYY-MM-DD) or a moment (YYYY-MM-DD HH:MM) in `timezone`, unless it has an
    offset; as aware UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"cannot read {text!r}: write YYYY-MM-DD or YYYY-MM-DD HH:MM",
                                 param_hint="--since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(dt.UTC)


def _line(event: dict[str, object]) -> str:
    detail = event["detail"]
    extra = f"  {json.dumps(detail, ensure_ascii=False)}" if detail else ""
    when = dt.datetime.fromisoformat(str(event["at"]))
    return (f"{event['id']:>5}  {when:%Y-%m-%d %H:%M:%S} UTC  {event['actor']} "
            f"({event['origin']})  {event['action']}  {event['subject'] or '-'}  "
            f"{event['outcome']}{extra}")


@click.command("audit")
@click.option("--since", help="Only events from this day or moment on: YYYY-MM-DD or "
                              "YYYY-MM-DD HH:MM (the timezone setting unless an offset is given).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the events as one JSON array (id, at, actor, origin, action, subject, "
                   "outcome, detail, hash).")
@click.option("--verify", is_flag=True,
              help="Check the hash chain instead of listing: exit code 1 naming every row "
                   "changed or removed outside mailer.")
@by_option
@password_stdin_option
def audit_command(since: str | None, as_json: bool, verify: bool, by: str | None,
                  password_stdin: bool) -> None:
    """The audit trail: who did what, when, from where, and how it ended, oldest first.

    Log-ins (failed ones and locks too), account changes, sends and schedules created,
    approved, refused, forced, paused, resumed, cancelled and moved, what the scheduler did,
    list imports, erasures (by an opaque id only) and settings that failed at a start. Once
    accounts exist only an admin may read it: --by NAME and that admin's password.

    --verify checks that every row is as mailer wrote it and that none was taken out of the
    middle; it cannot notice the newest rows deleted, nor a trail rewritten with every hash
    recomputed (docs/team.md).

    \b
    Example:
      mailer audit --since 2026-12-01 --by anna
      mailer audit --json --by anna --password-stdin < password.txt
      mailer audit --verify --by anna
    """
    config = settings()
    database(config)
    acting(config, by, password_stdin, "audit", subject="audit trail")
    if verify:
        click.echo(f"{audit.verified(config)} rows, chain intact")
        return
    moment = _since(since, config.timezone) if since else None
    events = [audit.as_dict(row) for row in audit.events(config, moment)]
    if as_json:
        print_json(events)
    elif events:
        click.echo("\n".join(_line(event) for event in events))
    else:
        click.echo("No events" + (f" since {since}." if since else " yet."))


COMMANDS = [audit_command]
