"""`mailer studio`: the staff's view of a mailing while they write it.

A view over the library and nothing more: the live build (mailer.builds.live) for the preview,
`check_theme` for the readiness panel, `send_test`, the schedule overview, approvals, send
reports and partner suggestions. Saving a file rebuilds; the open pages hear of it through
server-sent events. The handlers live by page family (studio_preview, studio_sends,
studio_partners) and share one `Studio` (web.studio_state) on `app.state`; this module
assembles them behind the access rules below.

Access: on a loopback address only this machine can connect; the Host header must name it
(no DNS rebinding).

- Without accounts (one writer on a laptop): bound anywhere but loopback, every request needs
  the access token printed at the start (once given in the URL it is kept in a cookie). Every
  POST carries the token, so another site open in the same browser cannot make the studio act.
- Once any account exists, on loopback too: every page but the log-in and the one-time
  password link needs a log-in (web.studio_login); every POST carries the session's CSRF token
  instead of the studio's. Each page offers only what the person's role allows, and each
  action is checked again on the server, which answers 403 with the reason.

With `trusted_proxies` set, the client address (for the audit trail) and the scheme (for a
Secure cookie) are taken from that proxy's X-Forwarded-For and X-Forwarded-Proto.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mailer import urls
from mailer.builds.live import SITE_PREFIX, LiveBuild
from mailer.config import Settings
from mailer.web import studio_audit, studio_login, studio_partners, studio_preview, studio_sends
from mailer.web.state import template_environment
from mailer.web.studio_state import Studio, say

TOKEN_COOKIE = "mailer_studio"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    return False


class Guard:
    """The access rules of the module docstring, for every request."""

    def __init__(self, app: ASGIApp, studio: Studio, loopback: bool):
        self.app, self.studio, self.token, self.loopback = app, studio, studio.token, loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token", "")
        refused = await self.refusal(request, given)
        if refused is not None:
            await refused(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in PAGE_HEADERS.items():
                    headers.setdefault(key, value)
                if self.valid(given) and not self.studio.accounts:
                    headers.append("Set-Cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; "
                                                 "SameSite=Strict; Path=/")
            await send(message)

        await self.app(scope, receive, with_headers)

    async def refusal(self, request: Request, given: str) -> Response | None:
        """The answer to a request that may not go on, else None; who is asking is put on
        `request.state.access` for the handlers."""
        if self.loopback and not is_loopback(request.url.hostname or ""):
            return PlainTextResponse(say(self.studio, "unknown_host"), 400)
        who = await studio_login.who_is_asking(self.studio, request)
        request.state.access = who
        if not who.accounts:
            if self.loopback or self.valid(given) or \
                    self.valid(request.cookies.get(TOKEN_COOKIE, "")):
                return None
            return PlainTextResponse(say(self.studio, "token_needed"), 403)
        if who.person is None and not studio_login.is_public(request.url.path):
            return studio_login.log_in_first(self.studio, request)
        return None

    def valid(self, value: str) -> bool:
        return bool(value) and hmac.compare_digest(value, self.token)


async def _watch(here: Studio, stop: asyncio.Event) -> None:
    async for _ in here.live.changes(stop):
        state = await run_in_threadpool(here.live.rebuild)
        here.hub.publish(state.as_json())


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Build once at the start, then rebuild on every saved change until the studio stops."""
    here: Studio = app.state.studio
    await run_in_threadpool(here.live.rebuild)
    stop = asyncio.Event()
    task = asyncio.create_task(_watch(here, stop))
    yield
    stop.set()
    here.hub.publish(None)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


ROUTES = [
    Route("/", studio_preview.home),
    Route("/studio.js", studio_preview.script),
    Route("/mail.html", studio_preview.mail),
    Route("/mail.txt", studio_preview.mail),
    Route("/readers", studio_preview.readers_json),
    Route("/events", studio_preview.events),
    Route("/readiness", studio_preview.readiness),
    Route("/test-send", studio_preview.test_send, methods=["POST"]),
    Route("/sends", studio_sends.sends_page),
    Route("/sends/approve", studio_sends.approve, methods=["POST"]),
    Route("/sends/{send_id:int}", studio_sends.report),
    Route("/partners", studio_partners.partners_page),
    Route("/partners/block", studio_partners.make_block, methods=["POST"]),
    Route("/audit", studio_audit.audit_page),
    Route(urls.LOGIN, studio_login.login_page),
    Route(urls.LOGIN, studio_login.login, methods=["POST"]),
    Route(urls.LOGOUT, studio_login.logout, methods=["POST"]),
    Route(urls.SET_PASSWORD, studio_login.password_page),
    Route(urls.SET_PASSWORD, studio_login.set_password_form, methods=["POST"]),
]


def create_studio(settings: Settings, theme: str, token: str, loopback: bool = True) -> ASGIApp:
    """The studio app for THEME; `token` guards it as the module docstring says."""
    live = LiveBuild(settings, theme)
    app = Starlette(routes=[
        *ROUTES, Mount(SITE_PREFIX, StaticFiles(directory=live.folder, check_dir=False)),
    ], lifespan=lifespan)
    app.state.studio = Studio(settings, theme, token, live, template_environment(settings))
    guarded = Guard(app, app.state.studio, loopback)
    if not settings.trusted_proxies:
        return guarded
    # uvicorn types ASGI with typed events, Starlette with plain mappings: one interface.
    return ProxyHeadersMiddleware(guarded,  # type: ignore[arg-type,return-value]
                                  trusted_hosts=settings.trusted_proxies)


def serve_studio(settings: Settings, theme: str, host: str, port: int, token: str,
                 started: Callable[[str], None] | None = None) -> None:
    """Run the studio with uvicorn until Ctrl-C; `started` gets the address to open."""
    import uvicorn

    loopback = is_loopback(host)
    app = create_studio(settings, theme, token, loopback)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and started is not None:
            bound = server.servers[0].sockets[0].getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            started(f"http://{shown}:{bound}/" + ("" if loopback else f"?token={token}"))
        await task

    asyncio.run(run())

