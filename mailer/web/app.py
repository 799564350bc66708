"""`mailer serve`: the subscription pages and the one-click unsubscribe as one ASGI app.

Starlette + uvicorn: a small ASGI app with no ORM or template magic of its own, served in-process
by tests (httpx) and by `mailer serve`. Database and SMTP work runs in the thread pool, so a slow
mail server never blocks the one-click unsubscribes that mail clients fire. The handlers live by
page family (subscription_pages, one_click) and share one `Site` (web.state) on `app.state`;
this module assembles them.

Every page a recipient sees is Dutch. Safety:
- forms carry a CSRF token that must match a SameSite=Strict cookie, and a foreign Origin is
  refused; only the one-click POST is exempt, as RFC 8058 requires (its URL's token is the secret);
- /aanmelden has a honeypot field and a per-IP limit (in the database, so it holds across
  workers), and an address gets at most one confirmation mail per CONFIRM_RESEND_AFTER; its
  answer is the same whether or not the address is known;
- nothing acts on a GET: confirming and erasing show a page whose button POSTs;
- behind https (seen directly, or through X-Forwarded-Proto from a trusted proxy) pages send HSTS;
- no page redirects, so there is nothing to redirect openly; token pages are never cached and
  send no Referer to other sites.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from sqlmodel import Session
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_exporter import PrometheusMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mailer import urls
from mailer.api.app import mount as api_mount
from mailer.config import Settings
from mailer.content.brand import load_brand
from mailer.db import AsyncStatements, get_engine
from mailer.message.signing import DkimSigner
from mailer.subscribers import subscriptions as subs
from mailer.transport.transports import Transport, transport_from_settings
from mailer.web import health, metrics, one_click, ratelimit, subscription_pages
from mailer.web.api_host import api_host
from mailer.web.pages import PageError, not_found, origin, page_error, unknown_subscriber
from mailer.web.state import Site, template_environment
from mailer.webhooks.delivery import Deliverer

HOUSEKEEPING_EVERY = 3600.0  # seconds between purges of old sign-ups and rate counters
HSTS = "max-age=31536000"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",  # the token in the URL never leaves the site
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
ROUTES = [
    Route(urls.HEALTH, health.healthz, methods=["GET"]),
    Route(urls.READY, health.readyz, methods=["GET"]),
    Route(urls.METRICS, metrics.metrics, methods=["GET"]),
    Route(urls.SIGNUP, subscription_pages.signup, methods=["GET", "POST"]),
    Route(urls.CONFIRM, subscription_pages.confirm, methods=["GET", "POST"]),
    Route(urls.UNSUBSCRIBE_HELP, subscription_pages.unsubscribe_help, methods=["GET"]),
    Route(urls.PRIVACY, subscription_pages.privacy, methods=["GET"]),
    Route(urls.UNSUBSCRIBE, one_click.unsubscribe, methods=["GET", "POST"]),
    Route(urls.PREFERENCES, subscription_pages.preferences, methods=["GET", "POST"]),
    Route(urls.MY_DATA, subscription_pages.my_data, methods=["GET"]),
    Route(urls.ERASE, subscription_pages.erase, methods=["GET", "POST"]),
]

# The REST API (mailer.api) under /api/v1: create_app lends it the site as `app.state.api`.
API_ROUTES = [api_mount()]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, error pages included, and HSTS over https.

    The headers are encoded once; each response only drops any of its own headers of the same
    names and appends them."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.plain = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        self.https = [*self.plain, (b"strict-transport-security", HSTS.encode())]
        self.names = {name for name, _ in self.https}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ours = self.https if scope.get("scheme") == "https" else self.plain

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", ())
                                      if k.lower() not in self.names] + ours
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def housekeeping(session: Session, settings: Settings) -> None:
    """What a running server purges every HOUSEKEEPING_EVERY: sign-ups never confirmed in
    `pending_days`, and rate counters whose window is over."""
    subs.purge_pending(session, dt.timedelta(days=settings.pending_days))
    ratelimit.purge(session, dt.timedelta(seconds=subscription_pages.SIGNUPS_PER_IP.seconds))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Housekeeping every hour, the webhook worker in a thread, and on PostgreSQL a connection
    for one-clicks without a thread."""
    site: Site = app.state.site

    async def every_hour() -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY)
            await site.db(housekeeping, site.settings, write=True)

    task = asyncio.create_task(every_hour())
    webhooks = Deliverer(site.engine)
    webhooks.start()
    if site.engine.dialect.name == "postgresql":
        site.on_loop = AsyncStatements(site.engine)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.to_thread(webhooks.close)
        if site.on_loop is not None:
            await site.on_loop.close()
            site.on_loop = None


def create_app(settings: Settings, transport: Transport | None = None) -> ASGIApp:
    """The ASGI app; `transport` defaults to the configured one (SMTP or the outbox)."""
    env = template_environment(settings)
    env.globals["brand"] = load_brand(settings.content, settings.root)
    env.globals["paths"] = urls  # not "urls": the page layout means a theme's links by that name
    app = Starlette(
        routes=[*ROUTES, *API_ROUTES],
        exception_handlers={
            PageError: page_error,
            HTTPException: not_found,
            subs.NotFound: unknown_subscriber,
        },
        lifespan=lifespan,
    )
    app.state.site = site = Site(settings, get_engine(settings), env,
                          transport or transport_from_settings(settings),
                          DkimSigner.from_settings(settings), {origin(settings.public_base_url)})
    app.state.api = api_host(app.state.site)
    app.state.figures = metrics.figures_registry(site.engine)
    # Request counts and latency per route template (never a path: paths hold tokens).
    measured = PrometheusMiddleware(app, app_name="mailer", prefix="mailer_http",
                                    group_paths=True, filter_unhandled_paths=True,
                                    skip_paths=[urls.HEALTH, urls.READY, urls.METRICS])
    secured = SecurityHeaders(measured)
    if not settings.trusted_proxies:
        return secured
    # Believe X-Forwarded-For/-Proto only from the configured proxies: the client address the
    # rate limit counts and the scheme that decides HSTS and secure cookies come from there.
    # uvicorn types ASGI with typed events, Starlette with plain mappings: one interface.
    return ProxyHeadersMiddleware(secured,  # type: ignore[arg-type,return-value]
                                  trusted_hosts=settings.trusted_proxies)
