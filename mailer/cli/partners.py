"""`mailer partners`: partner publications in (feeds, by hand) and suggestions for a mailing."""

from __future__ import annotations

import datetime as dt

import click
from rich.console import Console
from rich.table import Table

from mailer.cli.common import Term, json_option, print_json, settings
from mailer.content.loader import load_mailing
from mailer.errors import MailerError
from mailer.partners.publications import FetchReport, add_publication, fetch_all, suggest


@click.group("partners")
def partners() -> None:
    """Partner publications that our mailings point to ("Van onze partners").

    \b
    Example:
      mailer partners suggest stalking
    """


def _print_report(report: FetchReport) -> None:
    if report.status == "error":
        click.echo(f"{report.organisation}: {report.url}: skipped: {report.error}", err=True)
    elif report.status == "not-modified":
        click.echo(f"{report.organisation}: not modified since the last fetch")
    else:
        click.echo(f"{report.organisation}: {report.new} new, {report.updated} updated")


@partners.command("fetch")
def fetch_command() -> None:
    """Read every feed listed in content/partners.yaml into the database.

    Reads several feeds at once with conditional requests (ETag / Last-Modified), each within
    the `feed_deadline` setting and a size limit; a feed that fails or times out is reported and
    skipped, the others still load. Exit code 1 when any feed failed.

    \b
    Example:
      mailer partners fetch
    """
    reports = fetch_all(settings(), on_report=_print_report)
    if not reports:
        click.echo("No partner in content/partners.yaml has a feed.")
    failed = [r for r in reports if r.status == "error"]
    if failed:
        raise MailerError(f"{len(failed)} of {len(reports)} feed(s) failed")


@partners.command("add")
@click.option("--organisation", required=True, help="Partner name as in content/partners.yaml.")
@click.option("--title", required=True, help="Title of the publication.")
@click.option("--url", required=True, help="Address of the publication on the partner's site.")
@click.option("--date", "published", type=click.DateTime(["%Y-%m-%d"]), help="Publication date.")
@click.option("--theme", "themes", multiple=True, help="Theme it belongs to (repeatable).")
@click.option("--region", "regions", multiple=True, type=Term("region"),
              help="Only of interest to this region (repeatable); none = every region.")
def add_command(organisation: str, title: str, url: str, published: dt.datetime | None,
                themes: tuple[str, ...], regions: tuple[str, ...]) -> None:
    """Record a partner publication by hand, for partners without a feed.

    \b
    Example:
      mailer partners add --organisation "Openbaar Ministerie" \\
        --title "Aanpak stalking" --url https://www.om.nl/onderwerpen/stalking \\
        --date 2026-11-02 --theme stalking --region oost-nederland
    """
    outcome = add_publication(settings(), organisation, title, url,
                              published.date() if published else None, themes, regions)
    click.echo(f"{outcome}: {organisation}: {title}")


@partners.command("suggest")
@click.argument("theme")
@click.option("--limit", default=10, show_default=True, help="How many to show.")
@json_option("the suggestions")
def suggest_command(theme: str, limit: int, as_json: bool) -> None:
    """List recent partner publications that fit THEME, best first, with why they match.

    Matches on the theme's `keywords` in mailing.yaml, on themes given by hand and on the
    feeds' categories; regional publications say for which region.

    \b
    Example:
      mailer partners suggest stalking --limit 5
      mailer partners suggest stalking --json
    """
    config = settings()
    mailing = load_mailing(config.content, theme, config.root)
    found = suggest(config, mailing, limit=limit)
    if as_json:
        print_json([s.document() for s in found])
        return
    if not found:
        click.echo(f"No partner publication matches {theme!r} yet.")
        return
    table = Table(title=f"Partner publications for {theme}")
    for column in ("score", "organisation", "title", "date", "why"):
        table.add_column(column)
    for s in found:
        table.add_row(f"{s.score:.1f}", s.organisation, f"{s.title}\n{s.url}",
                      s.published.isoformat() if s.published else "", "; ".join(s.reasons))
    Console(width=160).print(table)


COMMANDS = [partners]
