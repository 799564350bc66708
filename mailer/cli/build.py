"""`mailer build` and `mailer preview`.

A build with nothing to do must start fast, so the content loader, the renderer and the preview
are imported only when they are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from mailer.builds.builder import build
from mailer.builds.result import BuildResult
from mailer.cli.common import settings
from mailer.errors import ContentError


@contextmanager
def build_errors(theme: str) -> Iterator[None]:
    """Say which theme failed to build, and how many problems its content has; every other
    failure goes on to the CLI's one handler as it is."""
    try:
        yield
    except ContentError as exc:
        problems = exc.problems
        if len(problems) > 1:
            lines = "\n".join(f"  {p}" for p in problems)
            raise ContentError(f"cannot build {theme!r}: {len(problems)} problems\n{lines}") from exc
        raise ContentError(f"cannot build {theme!r}: {exc}") from exc


def run_build(theme: str) -> BuildResult:
    with build_errors(theme):
        return build(settings(), theme)


def print_summary(result: BuildResult) -> None:
    click.echo(f"{result.theme}: {len(result.segments)} segments, "
               f"{len(result.variants)} distinct variants\n")
    click.echo(f"  {'variant':<12}  {'blocks':>6}  {'HTML KB':>7}  segments")
    for v in result.variants:
        click.echo(f"  {v.name:<12}  {len(v.blocks):>6}  {v.bytes / 1024:>7.1f}  "
                   f"{_segments_label(v.segments)}")
    click.echo()
    for warning in result.warnings:
        click.echo(f"{click.style('warning:', fg='yellow')} {warning}")
    done = "Unchanged since the last build:" if result.unchanged else "Wrote"
    click.echo(f"{done} {result.path} ({len(result.pages)} web pages) in {result.seconds:.2f} s")


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
    print_summary(run_build(theme))
    click.echo(f"To see a mail as its recipient will: mailer preview {theme} --open")


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
    from mailer.builds.preview import write_preview

    run_build(theme)
    written = write_preview(settings(), theme, region, audience, screenshot=screenshot)
    for path in written:
        click.echo(f"Wrote {path}")
    if open_browser:
        click.launch(str(written[0]))


COMMANDS = [build_command, preview_command]
