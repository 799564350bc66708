"""`mailer bounces process PATH`: who bounced, hard or soft, and what was done about it."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.bounces.processing import DatabaseHandler, MemoryHandler, process
from mailer.cli.common import database, settings
from mailer.db import session_scope


@click.group()
def bounces() -> None:
    """Bounce handling.

    \b
    Example:
      mailer bounces process ~/Maildir/.Bounces --dry-run
    """


@bounces.command("process")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report only; record nothing.")
@click.option("--soft-limit", type=int,
              help="Soft bounces after which an address is suppressed (default: the "
                   "bounce_soft_limit setting, 3).")
def process_command(path: Path, dry_run: bool, soft_limit: int | None) -> None:
    """Read bounces from a Maildir, a folder of .eml files or an mbox file.

    Delivery status reports (RFC 3464) and common plain bounce texts are understood; 5.x.x is a
    hard bounce and suppresses the address (and marks its delivery bounced), 4.x.x is soft and
    suppresses after --soft-limit. Auto-replies are ignored. Reading the same bounces again
    changes nothing.

    \b
    Example:
      mailer bounces process /var/mail/bounces.mbox --dry-run
    """
    config = settings()
    limit = soft_limit or config.bounce_soft_limit
    if dry_run:
        results = process(path, MemoryHandler(limit))
    else:
        with session_scope(database(config), write=True) as session:
            results = process(path, DatabaseHandler(session, limit))
    for result in results:
        if result.ignored:
            click.echo(f"{result.source}: ignored ({result.ignored})")
        for finding, action in zip(result.findings, result.actions, strict=True):
            click.echo(f"{result.source}: {finding.address} {finding.kind} {finding.status}"
                       f" ({finding.reason}) -> {action}")
    kinds = [f.kind for r in results for f in r.findings]
    click.echo(f"{len(results)} messages: {kinds.count('hard')} hard, {kinds.count('soft')} soft,"
               f" {sum(bool(r.ignored) for r in results)} ignored"
               + (" (dry run: nothing recorded)" if dry_run else ""))


COMMANDS = [bounces]
