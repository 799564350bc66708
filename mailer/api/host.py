"""What the web app serving the API lends it: the database in the thread pool, the rate limiter
for tokens, and the sign-up of /aanmelden with its confirmation mail.

The API sits below mailer.web, so it names these as a protocol; mailer.web.api_host hands in
the site's own (the same Site, RateLimiter and sign-up code as the subscription pages).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response

from mailer.config import Settings
from mailer.subscribers.subscriptions import Profile, SignUp


class Limiter(Protocol):
    """At most so many events per key in a window of `seconds` (mailer.web.ratelimit)."""

    @property
    def seconds(self) -> float: ...

    def allow(self, session: Session, key: str) -> bool: ...


class Host(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def token_limiter(self) -> Limiter: ...

    async def db(self, func: Callable[..., Any], *args: Any, write: bool = False) -> Any:
        """Run `func(session, *args)` in a transaction of its own, in the thread pool."""

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking call (files, a report) in the thread pool."""

    async def sign_up(self, client: str, email: str, profile: Profile, source: str) -> None:
        """/aanmelden's sign-up: the per-address limit, the request awaiting double opt-in and
        its confirmation mail; raises Problem 429 or 503."""

    async def send_confirmation(self, email: str, profile: Profile, sign_up: SignUp) -> None:
        """Mail the confirmation link of a recorded sign-up; raises Problem 503."""

    def thanks_page(self, request: Request, email: str) -> Response:
        """The Dutch "look in your mail" page of /aanmelden, for a browser's form post."""
