"""`mailer check THEME`: the readiness checks, as a list to work through."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.console import Console
from rich.markup import escape

from mailer.check.gate import gate
from mailer.check.readiness import Readiness
from mailer.cli.build import build_errors
from mailer.cli.common import json_option, print_json, settings

MARKS = {"pass": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]",
         "skip": "[dim]–[/dim]"}


def print_readiness(readiness: Readiness, console: Console) -> None:
    for result in readiness.results:
        detail = result.skipped or result.note
        console.print(f"{MARKS[result.status]} {result.title}" + (f" [dim]({escape(detail)})[/dim]"
                                                                 if detail else ""))
        for finding in result.findings:
            colour = "yellow" if finding.warning else "red"
            console.print(f"    [{colour}]{escape(str(finding))}[/{colour}]", soft_wrap=True)


@click.command("check")
@click.argument("theme")
@click.option("--offline", is_flag=True, help="Do not ask the servers of the links.")
@json_option("the results")
def check_command(theme: str, offline: bool, as_json: bool) -> None:
    """Is THEME ready to send? Placeholder blocks, links, images, alt text, Gmail size,
    heading order, colour contrast and SpamAssassin (when installed).

    Builds first when the build is stale, and runs the preflight of `mailer send` before
    (the gate a real send passes). Exit code 1 when a check fails; a real `mailer send`
    refuses to start then (unless --force).

    \b
    Example:
      mailer check stalking --offline
    """
    with build_errors(theme):
        readiness = gate(settings(), theme, offline=offline).readiness
    if as_json:
        print_json({"theme": theme, "ok": readiness.ok, "results": [
            {**asdict(r), "status": r.status} for r in readiness.results]})
    else:
        console = Console()
        print_readiness(readiness, console)
        verdict = ("[green]ready to send[/green]" if readiness.ok else
                   f"[red]not ready: {len(readiness.failed)} check(s) fail[/red]")
        console.print(f"{theme}: {verdict}")
    if not readiness.ok:
        raise SystemExit(1)


COMMANDS = [check_command]
