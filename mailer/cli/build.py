"""`mailer build` and `mailer preview`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from rich.table import Table

from mailer.build.builder import BuildError, BuildResult, build
from mailer.build.preview import PreviewError, write_preview
from mailer.cli.common import UserError, settings
from mailer.content.loader import ContentError
from mailer.partners.publications import PartnerError
from mailer.render.renderer import RenderError


@contextmanager
def build_errors(theme: str) -> Iterator[None]:
    """Turn every content or build problem of a theme into one clean error."""
    try:
        yield
    except ContentError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise UserError(f"cannot build {theme!r}: {len(exc.problems)} problem(s)\n{lines}") from exc
    except (BuildError, RenderError, PartnerError) as exc:
        raise UserError(f"cannot build {theme!r}: {exc}") from exc


def run_build(theme: str) -> BuildResult:
    with build_errors(theme):
        return build(settings(), theme)


def print_summary(result: BuildResult, console: Console) -> None:
    table = Table(title=f"{result.theme}: {len(result.segments)} segments, "
                        f"{len(result.variants)} distinct variants")
    for column in ("variant", "blocks", "HTML KB", "segments"):
        table.add_column(column, justify="right" if column == "HTML KB" else "left")
    for v in result.variants:
        table.add_row(v.name, str(len(v.blocks)), f"{v.bytes / 1024:.1f}", _segments_label(v.segments))
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"Wrote {result.path} ({len(result.pages)} web pages) in {result.seconds:.2f} s")


def _segments_label(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{len(keys)} segments"


@click.command("build")
@click.argument("theme")
def build_command(theme: str) -> None:
    """Build every region × audience variant of THEME into out/THEME/.

    Writes the compiled mails (HTML and text with per-recipient slots), the web pages
    ("Los artikel", the bundle, an index) and out/THEME/manifest.json. A failed check
    writes nothing.

    \b
    Example:
      mailer build stalking
    """
    console = Console()
    print_summary(run_build(theme), console)
    console.print(f"To see a mail as its recipient will: mailer preview {theme} --open",
                  highlight=False)


@click.command("preview")
@click.argument("theme")
@click.option("--region", help="Region slug of the variant to show first, e.g. oost-nederland.")
@click.option("--audience", help="Audience slug of the variant to show first, e.g. beleidsmakers.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in a browser.")
@click.option("--screenshot", is_flag=True,
              help="Also write PNG screenshots at 600 and 375 px wide (needs chromium).")
def preview_command(theme: str, region: str | None, audience: str | None, open_browser: bool,
                    screenshot: bool) -> None:
    """Write a local preview page of THEME: a variant beside its text part, with a segment picker.

    Builds the theme first.

    \b
    Example:
      mailer preview stalking --region rotterdam-zuid-holland-zuid --audience beleidsmakers --open
    """
    run_build(theme)
    try:
        written = write_preview(settings(), theme, region, audience, screenshot=screenshot)
    except PreviewError as exc:
        raise UserError(str(exc)) from exc
    for path in written:
        click.echo(f"Wrote {path}")
    if open_browser:
        click.launch(str(written[0]))


COMMANDS = [build_command, preview_command]
