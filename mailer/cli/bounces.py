"""`mailer bounces process PATH` and `mailer bounces fetch`: who bounced (hard, soft, blocked),
who unsubscribed by mail, and what was done about it."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from mailer.bounces.imap import fetch, fetch_document, report
from mailer.bounces.processing import process, process_document, summary
from mailer.cli.common import database, json_option, log_format_option, print_json, settings


@click.group()
def bounces() -> None:
    """Bounce handling.

    \b
    Example:
      mailer bounces process ~/Maildir/.Bounces --dry-run
      mailer bounces fetch
    """


@bounces.command("process")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report only; record nothing.")
@click.option("--soft-limit", type=int,
              help="Soft bounces after which an address is suppressed (default: the "
                   "bounce_soft_limit setting, 3).")
@json_option("every message and the counts")
def process_command(path: Path, dry_run: bool, soft_limit: int | None, as_json: bool) -> None:
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
      mailer bounces process ~/Maildir/.Bounces --json
    """
    config = settings()
    database(config)  # a clean message when the database is missing or outdated
    results = process(config, path, dry_run=dry_run, soft_limit=soft_limit)
    if as_json:
        print_json(process_document(results, dry_run))
        return
    for result in results:
        for line in result.lines():
            click.echo(line)
    click.echo(summary(results) + (" (dry run: nothing recorded)" if dry_run else ""))


@bounces.command("fetch")
@click.option("--dry-run", is_flag=True, help="Report only; record nothing and move nothing.")
@click.option("--soft-limit", type=int,
              help="Soft bounces after which an address is suppressed (default: the "
                   "bounce_soft_limit setting, 3).")
@json_option("every message and the counts")
@log_format_option(text_level=logging.WARNING)
def fetch_command(dry_run: bool, soft_limit: int | None, as_json: bool) -> None:
    """Read the bounce mailbox over IMAP once ([bounce] imap_url) and move what was handled.

    Each message is handled as `mailer bounces process` handles a file: bounces by class,
    unsubscribe mails by their token, anything else ignored. Then it is moved to the
    [bounce] imap_done_folder (default Verwerkt, created when missing). A message read again
    (after a crash before its move, or a copy) changes nothing. `mailer scheduler` does the
    same every [bounce] poll_seconds. With --json the lines about each message go to the
    standard error as they come, and the document to the standard output at the end.

    \b
    Example:
      mailer bounces fetch --dry-run
      mailer bounces fetch
      mailer bounces fetch --json
    """
    config = settings()
    database(config)
    results = fetch(config, dry_run=dry_run, soft_limit=soft_limit,
                    progress=lambda result: click.echo("\n".join(result.lines()), err=as_json))
    if as_json:
        print_json(fetch_document(results, config.bounce_imap_done_folder, dry_run))
        return
    click.echo(report(results, config.bounce_imap_done_folder, dry_run))

COMMANDS = [bounces]
