"""`mailer lists`: import and export the regional networks' CSV contact lists."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress

from mailer.cli.common import Term, database_session
from mailer.errors import user_file
from mailer.subscribers.lists import export_list, import_list

PROGRESS_FROM = 2000  # rows; smaller files finish before a bar would be worth drawing


@click.group("lists")
def lists() -> None:
    """Load and export the contact lists (CSV) of the regional networks.

    \b
    Example:
      mailer lists import lists/limburg.csv --topic updates
    """


def _count_rows(path: Path) -> int:
    with user_file(path), path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


@lists.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--region", type=Term("region"),
              help="Region for rows that leave it empty.")
@click.option("--audience", type=Term("audience"),
              help="Audience for rows that leave it empty.")
@click.option("--topic", type=Term("topic"), default="updates",
              show_default=True,
              help="Topic the rows are subscribed to (a 'topics' column overrides it per row).")
@click.option("--dry-run", is_flag=True, help="Check the file and report; change nothing.")
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows even when others are rejected.")
def import_(file: Path, region: str | None, audience: str | None, topic: str, dry_run: bool,
            skip_invalid: bool) -> None:
    """Import a CSV contact list (columns: email, name, organisation, region, audience).

    A file with a rejected row changes nothing (every bad row is listed) unless
    --skip-invalid is given. Importing never resubscribes anyone who unsubscribed or was
    erased, and re-importing the same file changes nothing.

    \b
    Example:
      mailer lists import lists/oost-nederland.csv --audience netwerk --dry-run
    """
    console = Console(stderr=True)
    total = _count_rows(file)
    with Progress(console=console, transient=True,
                  disable=not console.is_terminal or total < PROGRESS_FROM) as bar:
        task = bar.add_task(f"checking {file.name}", total=total)
        with database_session(write=True) as session:
            report = import_list(session, file, region, audience, topic, dry_run, skip_invalid,
                                 progress=lambda n: bar.advance(task, n))
    for line in report.rejected:
        click.echo(f"skipped {line}", err=True)
    click.echo(report.summary())


@lists.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of standard output.")
def export(output: Path | None) -> None:
    """Export the active subscribers as CSV, in the import format plus their topics.

    \b
    Example:
      mailer lists export --output subscribers.csv
    """
    with database_session() as session:
        if output is None:
            count = export_list(session, sys.stdout)
        else:
            with user_file(output, "write"), output.open("w", encoding="utf-8", newline="") as handle:
                count = export_list(session, handle)
    click.echo(f"exported {count} subscribers", err=True)


COMMANDS = [lists]
