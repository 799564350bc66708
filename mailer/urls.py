"""Every public path mailer links to, and the one place the base URL is joined to a path.

`mailer serve` declares its routes from these paths (mailer.web), and the links in mails, pages,
the feed, the doctor and the preflight are built from them, so a route renamed here moves the
links with it. Mails already sent keep their links for good: a path renamed here must go on
answering at its old address too.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# Pages of `mailer serve`; {token} is a signed token (mailer.subscribers.tokens).
SIGNUP = "/aanmelden"
CONFIRM = "/bevestig/{token}"
UNSUBSCRIBE_HELP = "/afmelden"
UNSUBSCRIBE = "/afmelden/{token}"
PREFERENCES = "/voorkeuren/{token}"
MY_DATA = "/voorkeuren/{token}/gegevens"
ERASE = "/voorkeuren/{token}/wissen"
PRIVACY = "/privacy"

# What operators and their monitoring ask `mailer serve` (not linked from any mail).
HEALTH = "/healthz"
READY = "/readyz"
METRICS = "/metrics"

# The REST API of `mailer serve` (mailer.api): its paths are relative to API.
API = "/api/v1"
API_SIGNUP = "/api/v1/signup"
API_DOCS = "/api/v1/docs"
API_OPENAPI = "/api/v1/openapi.json"

# Pages of `mailer studio` (staff only; at settings.studio_url). {token}: a one-time link's.
LOGIN = "/login"
LOGOUT = "/logout"
SET_PASSWORD = "/password/{token}"

# The published site: out/ behind the web server at the same base URL.
ARCHIVE = "/index.html"
FEED = "/feed.xml"
THEME_PAGE = "/{theme}/{page}"

# Sample token for previews: it fills the place of a person's token and opens no page.
SAMPLE_TOKEN = "voorbeeld"


_UNRESERVED = re.compile(r"[A-Za-z0-9._~/-]*")  # needs no quoting, as signed tokens never do


def _quoted(value: str) -> str:
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="/")


def path(template: str, **values: str) -> str:
    """A path with its {names} filled in, each value quoted for use in a path segment.

    Two links of every message are made here, so a value that needs no quoting (a token) is
    only matched, not run through `quote`."""
    return template.format(**{name: _quoted(value) for name, value in values.items()})


def absolute(base_url: str, template: str, **values: str) -> str:
    """The address a recipient opens: the public base URL joined to a filled-in path."""
    return base_url.rstrip("/") + path(template, **values)


def shown(base_url: str, template: str) -> str:
    """The address pattern as a person reads it in a report: {token} left in place."""
    return base_url.rstrip("/") + template


def theme_page(base_url: str, theme: str, page: str) -> str:
    """A page of a built theme on the published site, e.g. its index.html or bundel.html#id."""
    return base_url.rstrip("/") + f"/{theme}/{page}"


def site_path(base_url: str, url: str) -> str | None:
    """The path below the base URL an address of our own site stands for, or None for others."""
    base = base_url.rstrip("/") + "/"
    return url[len(base) - 1:] if url.startswith(base) else None
