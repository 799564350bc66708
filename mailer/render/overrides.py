"""The Jinja loader of every environment: the project's templates folder, then the package's.

See `mailer.render.templates` for where the templates are and how a project overrides them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jinja2 import BaseLoader, Environment, FileSystemLoader, PackageLoader, TemplateNotFound


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
