"""The privacy statement the sign-up page links to: `content/privacy.md` when the site wrote one.

Who is responsible, what is stored, for how long and how to withdraw differ per organisation
running the pages, so the text is content; without that file the page shows the built-in
statement, filled from the settings.
"""

from __future__ import annotations

from markupsafe import Markup

from mailer.config import Settings
from mailer.render.renderer import markdown_html


def privacy_statement(settings: Settings) -> Markup | None:
    """The site's own statement as HTML below the page's h1, or None for the built-in one."""
    path = settings.content / "privacy.md"
    if not path.is_file():
        return None
    return markdown_html(path.read_text(encoding="utf-8"), below=1)
