"""Bearer tokens: who calls, whether the token may do this, and how often it has lately.

One short write transaction per request finds the token by its hash, notes its use and counts
it against its rate limit; a token that is unknown or revoked gets 401, one over its limit 429
(with Retry-After), one without the scope 403. The limit is per token, in the database (the
subscription pages' RateLimiter), so it holds across web workers.
"""

from __future__ import annotations

import math

from sqlmodel import Session
from starlette.requests import Request

from mailer.accounts.api_tokens import authenticate
from mailer.api.host import Host, Limiter
from mailer.api.problems import Problem
from mailer.models import ApiToken

CHALLENGE = 'Bearer realm="mailer"'


def bearer(request: Request) -> str:
    """The token of an `Authorization: Bearer …` header, or ""."""
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _check(session: Session, secret: str, limiter: Limiter) -> tuple[ApiToken | None, bool]:
    token = authenticate(session, secret)
    if token is None:
        return None, False
    return token, limiter.allow(session, f"token:{token.id}")


async def authorized(request: Request, host: Host, scope: str) -> ApiToken:
    """The request's live token, if it may use `scope` now; else the Problem to answer."""
    secret = bearer(request)
    if not secret:
        raise Problem(401, "no token: send Authorization: Bearer TOKEN (`mailer tokens add`)",
                      headers={"WWW-Authenticate": CHALLENGE})
    limiter = host.token_limiter
    token, allowed = await host.db(_check, secret, limiter, write=True)
    if token is None:
        raise Problem(401, "this token is unknown or revoked",
                      headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})
    if not allowed:
        raise Problem(429, f"token {token.name} made too many requests; wait and try again",
                      headers={"Retry-After": str(math.ceil(limiter.seconds))})
    if scope not in token.scopes:
        raise Problem(403, f"token {token.name} lacks the scope {scope} "
                           f"(it has: {', '.join(token.scopes) or 'none'})")
    return token
