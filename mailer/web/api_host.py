"""What the site lends the REST API (mailer.api.host.Host): its database in the thread pool,
a rate limiter per token, and the sign-up and confirmation mail of /aanmelden, whose page
errors become the API's problem details."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailer.api.host import Host
from mailer.api.problems import Problem
from mailer.config import Settings
from mailer.subscribers.subscriptions import Profile, SignUp
from mailer.web import subscription_pages
from mailer.web.pages import PageError, message_page
from mailer.web.ratelimit import RateLimiter
from mailer.web.state import Site

TOKEN_WINDOW = 60.0  # seconds; `api_requests_per_minute` per token in each


def _problem(exc: PageError) -> Problem:
    if exc.status == 429:
        return Problem(429, "too many sign-ups from this address; wait and try again",
                       headers={"Retry-After": str(math.ceil(
                           subscription_pages.SIGNUPS_PER_IP.seconds))})
    return Problem(503, "the confirmation mail could not be handed to the mail server; try "
                        "again later")


@dataclass
class ApiHost:
    site: Site

    @property
    def settings(self) -> Settings:
        return self.site.settings

    @property
    def token_limiter(self) -> RateLimiter:
        return RateLimiter("api-token", self.site.settings.api_requests_per_minute, TOKEN_WINDOW)

    async def db(self, func: Callable[..., Any], *args: Any, write: bool = False) -> Any:
        return await self.site.db(func, *args, write=write)

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(func, *args)

    async def sign_up(self, client: str, email: str, profile: Profile, source: str) -> None:
        try:
            await subscription_pages.sign_up(self.site, client, email, profile, source)
        except PageError as exc:
            raise _problem(exc) from exc

    async def send_confirmation(self, email: str, profile: Profile, sign_up: SignUp) -> None:
        try:
            await subscription_pages.send_confirmation(self.site, email, profile, sign_up)
        except PageError as exc:
            raise _problem(exc) from exc

    def thanks_page(self, request: Request, email: str) -> Response:
        return message_page(request, "kijk-in-je-mail", email=email)


def api_host(site: Site) -> Host:
    """The Host the API's handlers find on `app.state.api`."""
    return ApiHost(site)
