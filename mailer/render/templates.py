"""Where templates come from: the project's own `templates/` folder first, then the package.

The package carries every template (`mailer/templates/`, package data), so an installed mailer
builds in a folder that holds only `content/`. A project overrides single templates, as a theme
override does in a static site generator: `templates/mjml/mailing.mjml.j2` in the project folder
(the `templates_dir` setting) replaces the package's file of that name; the rest still come from
the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from jinja2 import BaseLoader, Environment, FileSystemLoader, PackageLoader, TemplateNotFound

from mailer.config import Settings

PACKAGE_TEMPLATES = files("mailer") / "templates"


class OverridableLoader(BaseLoader):
    """The project's templates folder first, then the package's templates.

    Unlike a plain ChoiceLoader, a package template is out of date as soon as an override of it
    appears, so a long-running process (the studio) picks up a newly saved override at once.
    """

    def __init__(self, project_templates: Path):
        self.folder = project_templates
        self.project = FileSystemLoader(project_templates)
        self.package = PackageLoader("mailer", "templates")

    def get_source(self, environment: Environment, template: str
                   ) -> tuple[str, str | None, Callable[[], bool] | None]:
        try:
            return self.project.get_source(environment, template)
        except TemplateNotFound:
            source, filename, uptodate = self.package.get_source(environment, template)
        override = self.folder.joinpath(*template.split("/"))
        return source, filename, lambda: not override.exists() and (uptodate is None or uptodate())

    def list_templates(self) -> list[str]:
        found = set(self.package.list_templates())
        if self.folder.is_dir():
            found.update(self.project.list_templates())
        return sorted(found)


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
