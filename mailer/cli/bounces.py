"""`mailer bounces process PATH`: who bounced (hard, soft, blocked), who unsubscribed by mail,
and what was done about it."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.bounces.processing import process
from mailer.cli.common import database, settings


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
    """Read bounces and unsubscribe mails from a Maildir, a folder of .eml files or an mbox.

    Bounces are classed by RFC 3463: hard (the address does not exist) suppresses it, soft
    suppresses after --soft-limit, blocked (policy, reputation: our problem) suppresses
    nobody. Only bounces of a message we sent to that address count
    (by the VERP bounce address or our Message-ID); others are reported as unmatched. Mails
    to the List-Unsubscribe mailto address unsubscribe the person whose token the subject
    carries. Reading the same mail again changes nothing.

    \b
    Example:
      mailer bounces process /var/mail/bounces.mbox --dry-run
    """
    config = settings()
    database(config)  # a clean message when the database is missing or outdated
    results = process(config, path, dry_run=dry_run, soft_limit=soft_limit)
    for result in results:
        if result.ignored:
            click.echo(f"{result.source}: ignored ({result.ignored})")
        elif not result.findings:
            click.echo(f"{result.source}: {'; '.join(result.actions)}")
        for finding, action in zip(result.findings, result.actions, strict=True):
            click.echo(f"{result.source}: {finding.address} {finding.kind} {finding.status}"
                       f" ({finding.reason}) -> {action}")
    kinds = [f.kind for r in results for f in r.findings]
    unmatched = sum(a.startswith("unmatched") for r in results for a in r.actions)
    mails = sum(not r.findings and not r.ignored for r in results)
    click.echo(f"{len(results)} messages: {kinds.count('hard')} hard, {kinds.count('soft')} soft,"
               f" {kinds.count('blocked')} blocked ({unmatched} unmatched),"
               f" {mails} unsubscribe mails, {sum(bool(r.ignored) for r in results)} ignored"
               + (" (dry run: nothing recorded)" if dry_run else ""))


COMMANDS = [bounces]
