"""Where templates are: the package's own, and a project's overrides of single ones.

The package carries every template (`mailer/templates/`, package data), so an installed mailer
builds in a folder that holds only `content/`. A project overrides single templates, as a theme
override does in a static site generator: `templates/mjml/mailing.mjml.j2` in the project folder
(the `templates_dir` setting) replaces the package's file of that name; the rest still come from
the package (`mailer.render.overrides` is the Jinja loader that does this). No Jinja here: the
stale-build check reads these without loading the renderer.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable

from mailer.config import Settings

PACKAGE_TEMPLATES = files("mailer") / "templates"


def _walk(folder: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, f"{name}/")
        elif entry.is_file():
            yield name, entry


def template_sources(settings: Settings) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every template a build may read: the package's and the project's
    overrides, each named by where it comes from, so editing either makes a build stale."""
    for name, entry in _walk(PACKAGE_TEMPLATES, "mailer/templates/"):
        yield name, entry.read_bytes()
    if settings.templates.is_dir():
        for name, entry in _walk(settings.templates, f"{settings.templates_dir}/"):
            yield name, entry.read_bytes()
