"""What every subscription page shares: rendering with the CSRF cookie, reading a posted form
within its limits and checking its CSRF token and origin, signed links, and the message and
error pages."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mailer import urls
from mailer.errors import AccessError
from mailer.subscribers.tokens import Claim, TokenError, read_token
from mailer.taxonomy import AUDIENCES, REGIONS, TOPICS
from mailer.web.state import site

CSRF_COOKIE = "mailer_csrf"
MAX_BODY = 64 * 1024
MAX_FIELDS = 30
TOO_LONG = (413, "te-veel-tekst")
URLENCODED = "application/x-www-form-urlencoded"
BROKEN_LINK = "link-werkt-niet"


class PageError(AccessError):
    """Ends a request with a message page of templates/web/subscriptions/berichten/."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page of templates/web/subscriptions/; sets the CSRF cookie its forms carry."""
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    html = site(request).env.get_template(f"web/subscriptions/{name}.html.j2").render(
        settings=site(request).settings, home_url=urls.SIGNUP, csrf=csrf, regions=REGIONS,
        audiences=AUDIENCES, topic_names=TOPICS, **context,
    )
    response = HTMLResponse(html, status_code=status)
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
    return response


def message_page(request: Request, message: str, status: int = 200, tone: str = "notice",
                 **context: Any) -> HTMLResponse:
    """A short message page, templates/web/subscriptions/berichten/<message>.html.j2."""
    return page(request, f"berichten/{message}", status, tone=tone, **context)


def safe(request: Request) -> bool:
    """GET and HEAD (which link scanners send) only ever show a page."""
    return request.method in ("GET", "HEAD")


def claim(request: Request, purpose: str) -> Claim:
    """The signed token in the path, or the broken-link page."""
    try:
        return read_token(site(request).settings, request.path_params["token"], purpose)
    except TokenError as exc:
        raise PageError(400, BROKEN_LINK) from exc


async def read_form(request: Request, csrf: bool = True) -> FormData:
    """The posted form, refused when too large and, with `csrf`, without a valid token."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise PageError(*TOO_LONG)
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() == URLENCODED:
        form = await _urlencoded_form(request)
    else:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_BODY)
    if csrf:
        check_csrf(request, form)
    return form


def check_csrf(request: Request, form: FormData) -> None:
    if not _csrf_ok(request, form, site(request).own_origins):
        raise PageError(403, "formulier-verlopen")


async def _urlencoded_form(request: Request) -> FormData:
    """An urlencoded body (our forms, and mail providers' one-click POSTs) parsed in one call:
    Starlette's streaming form parser took about a seventh of a one-click request's CPU."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:  # sent without a Content-Length, or with a false one
            raise PageError(*TOO_LONG)
    try:
        fields: list[tuple[str, str | UploadFile]] = [
            *parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FIELDS)]
        return FormData(fields)
    except ValueError as exc:  # too many fields: what Starlette's parser answers too
        raise HTTPException(400) from exc


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _csrf_ok(request: Request, form: FormData, own_origins: set[str]) -> bool:
    """Double-submit check, plus a same-origin check when the browser says where it posts from.

    An Origin of "null" (privacy settings, some redirects) proves nothing either way; the token
    still has to match.
    """
    sent_from = request.headers.get("origin", "null").lower()
    if sent_from != "null" and sent_from not in own_origins | {origin(str(request.base_url))}:
        return False
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = str(form.get("csrf", ""))
    return bool(cookie) and secrets.compare_digest(cookie.encode(), sent.encode())


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return message_page(request, exc.message, exc.status, tone="error")


async def not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return message_page(request, BROKEN_LINK, status, tone="error")


async def unknown_subscriber(request: Request, exc: Exception) -> Response:
    """A genuine link of someone who is gone (erased, never confirmed): the same page as a
    broken link, so nobody learns whether a person existed."""
    return message_page(request, BROKEN_LINK, 400, tone="error")
