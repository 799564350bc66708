"""The studio's log-in, once accounts exist: who is asking, the log-in and log-out, and the page
of a one-time link on which a person sets their password.

The session cookie holds a random token (only its hash is stored: mailer.accounts.sessions);
it is HttpOnly, SameSite=Strict, and Secure when the request came over https (seen directly,
or through X-Forwarded-Proto from a trusted proxy). Strict works here because the studio never
needs the cookie on a navigation from another site: the one-time link in a mail opens a page
that needs no log-in, and its form and the log-in form post from the studio itself, so the
redirect after a log-in is same-site and carries the new cookie.

The log-in and set-password forms are used before there is a session, so their CSRF token is
a random value in a cookie of its own that the form must repeat (double submit): another site
can neither read the cookie nor send it along (SameSite=Strict). A refused log-in answers 401
with the library's words, the same for a wrong name or password and a lock (the words say when
a lock ends); it never tells whether the name is an account.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from mailer import urls
from mailer.accounts import sessions
from mailer.accounts.logins import LoginRefused, log_in
from mailer.accounts.users import AccountError, any_accounts, link_account, set_password
from mailer.audit import record_now
from mailer.web.studio_state import (
    Access,
    Studio,
    access,
    form_token_ok,
    origin,
    render,
    say,
    studio,
)

SESSION_COOKIE = "mailer_session"
FORM_COOKIE = "mailer_form"  # the double-submit token of the forms used before a log-in
PUBLIC = (urls.LOGIN, urls.SET_PASSWORD.split("{")[0])  # open without a log-in
_LOCAL_PATH = re.compile(r"/(?![/\\])[^\s\\]*")


async def who_is_asking(here: Studio, request: Request) -> Access:
    """The logged-in person of the request's session cookie, or nobody; without accounts the
    studio's token. Accounts, once seen, are not asked about again (they are never deleted)."""
    if not here.accounts:
        here.accounts = await run_in_threadpool(any_accounts, here.settings)
    if not here.accounts:
        return Access(False, None, here.token)
    token = request.cookies.get(SESSION_COOKIE, "")
    found = (await run_in_threadpool(sessions.current, here.settings, token, origin(request))
             if token else None)
    if found is None:
        return Access(True, None, "")
    return Access(True, found[0], found[1], token)


def is_public(path: str) -> bool:
    return path == PUBLIC[0] or path.startswith(PUBLIC[1])


def log_in_first(here: Studio, request: Request) -> Response:
    """The answer to a request without a live session: a page is sent to the log-in (and back
    afterwards), anything else is refused."""
    if request.method in ("GET", "HEAD"):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{urls.LOGIN}?next={quote(wanted, safe='')}", 303)
    return PlainTextResponse(say(here, "log_in_first"), 401)


def _next(value: Any) -> str:
    """Where to go after a log-in: a path of the studio itself, never another site."""
    wanted = str(value or "")
    return wanted if _LOCAL_PATH.fullmatch(wanted) and not is_public(wanted) else "/"


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


async def _form(request: Request) -> FormData:
    """The posted form of a page used before a log-in, when it repeats its cookie's token."""
    form = await request.form(max_files=0, max_fields=10)
    expected = request.cookies.get(FORM_COOKIE, "")
    if not expected or not hmac.compare_digest(str(form.get("token", "")), expected):
        raise HTTPException(403, say(studio(request), "wrong_token"))
    return form


def _page(request: Request, page: str, status_code: int = 200, **context: Any) -> Response:
    """A page used before a log-in, with the token its form repeats (kept in FORM_COOKIE)."""
    token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, page, status_code, token=token, **context)
    set_cookie(response, request, FORM_COOKIE, token)
    return response


async def login_page(request: Request) -> Response:
    who = access(request)
    if not who.accounts or who.person is not None:
        return RedirectResponse(_next(request.query_params.get("next")), 303)
    return _page(request, "login", next=_next(request.query_params.get("next")),
                 done=request.query_params.get("password") == "set", message="", name="")


async def login(request: Request) -> Response:
    """Log in: a session cookie and back to the page asked for, or the form again with why not."""
    here = studio(request)
    form = await _form(request)
    name, code = str(form.get("name", "")), str(form.get("code", "")).strip()
    try:
        person = await run_in_threadpool(log_in, here.settings, name, str(form.get("password", "")),
                                         code or None, origin(request))
    except LoginRefused as exc:
        return _page(request, "login", 401, next=_next(form.get("next")), done=False,
                     message=str(exc), name=name)
    token, _ = await run_in_threadpool(sessions.start, here.settings, person)
    response = RedirectResponse(_next(form.get("next")), 303)
    set_cookie(response, request, SESSION_COOKIE, token)
    return response


async def logout(request: Request) -> Response:
    """End the session: its cookie opens nothing any more, in this browser or any other."""
    here, who = studio(request), access(request)
    if not form_token_ok(request, await request.form(max_files=0, max_fields=5)):
        raise HTTPException(403, say(here, "wrong_token"))
    if who.person is not None and who.session:
        await run_in_threadpool(sessions.end, here.settings, who.session)
        await run_in_threadpool(record_now, here.settings, who.person, "logout")
    response = RedirectResponse(urls.LOGIN, 303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


async def password_page(request: Request) -> Response:
    """The form of a one-time link; looking at it does not use the link up."""
    here = studio(request)
    try:
        account = await run_in_threadpool(link_account, here.settings,
                                          request.path_params["token"])
    except AccountError as exc:
        return render(request, "password", 404, account=None, message=str(exc))
    return _page(request, "password", account=account.name, message="")


async def set_password_form(request: Request) -> Response:
    """Set the password of a one-time link, which is then used up; on to the log-in."""
    here, link = studio(request), request.path_params["token"]
    form = await _form(request)
    try:
        account = await run_in_threadpool(link_account, here.settings, link)
    except AccountError as exc:
        return render(request, "password", 404, account=None, message=str(exc))
    password = str(form.get("password", ""))
    if password != str(form.get("again", "")):
        return _page(request, "password", 400, account=account.name,
                     message=say(here, "passwords_differ"))
    try:
        await run_in_threadpool(set_password, here.settings, link, password, origin(request))
    except AccountError as exc:
        return _page(request, "password", 400, account=account.name, message=str(exc))
    return RedirectResponse(f"{urls.LOGIN}?password=set", 303)
