"""`mailer bounces process PATH`: who bounced, hard or soft, and what was done about it."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.bounces import MemoryHandler, process
from mailer.commands.common import UserError, friendly


@click.group()
def bounces() -> None:
    """Bounce handling.

    \b
    Example:
      mailer bounces process ~/Maildir/.Bounces --dry-run
    """


@bounces.command("process")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report only; record nothing.")
@click.option("--soft-limit", default=3, show_default=True,
              help="Soft bounces after which an address is suppressed.")
@friendly(OSError)
def process_command(path: Path, dry_run: bool, soft_limit: int) -> None:
    """Read bounces from a Maildir, a folder of .eml files or an mbox file.

    Delivery status reports (RFC 3464) and common plain bounce texts are understood; 5.x.x is a
    hard bounce and suppresses the address, 4.x.x is soft and suppresses after --soft-limit.
    Auto-replies are ignored.

    \b
    Example:
      mailer bounces process /var/mail/bounces.mbox --dry-run
    """
    if not dry_run:
        raise UserError("recording bounces needs the database, which is not wired in yet; "
                        "use --dry-run")
    results = process(path, MemoryHandler(soft_limit))
    for result in results:
        if result.ignored:
            click.echo(f"{result.source}: ignored ({result.ignored})")
        for finding, action in zip(result.findings, result.actions, strict=True):
            click.echo(f"{result.source}: {finding.address} {finding.kind} {finding.status}"
                       f" ({finding.reason}) -> {action}")
    kinds = [f.kind for r in results for f in r.findings]
    click.echo(f"{len(results)} messages: {kinds.count('hard')} hard, {kinds.count('soft')} soft,"
               f" {sum(bool(r.ignored) for r in results)} ignored (dry run: nothing recorded)")


COMMANDS = [bounces]
