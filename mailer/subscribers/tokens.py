"""Signed, opaque tokens for the links in a mail: bound to one person and one purpose.

A token carries the subscriber's random public id (never a row id, which SQLite reuses), signed
with `settings.secret_key` and a salt per purpose, so an unsubscribe token cannot open the
preferences page and no address is in a URL. A confirmation token also carries the nonce of the
one sign-up it was mailed for, and expires; unsubscribe and preference tokens do not, because
the mails that carry them are read months later. Erasing a person deletes their public id, which
makes every token of theirs useless.

Links made before public ids carried the row id (an int); they are read as a `Claim` with
`legacy_id` set, and `subscriptions.get_subscriber` decides whom, if anyone, they still name.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from mailer import urls
from mailer.clock import SYSTEM, Clock
from mailer.config import Settings
from mailer.errors import AccessError

PURPOSES = ("confirm", "unsubscribe", "preferences")
CONFIRM_MAX_AGE = 48 * 3600
PUBLIC_ID = re.compile(r"[0-9a-f]{32}")
NONCE = re.compile(r"[0-9a-f]{16}")


class TokenError(AccessError):
    """A token that cannot be used; the web app shows one page for every kind."""


class BadToken(TokenError):
    """Tampered, malformed, or signed for another purpose or key."""


class ExpiredToken(TokenError):
    """Genuine but older than allowed."""


@dataclass(frozen=True)
class Claim:
    """Whom a genuine token names: a public id, or (links made before public ids) a row id."""

    issued_at: dt.datetime
    public_id: str | None = None
    legacy_id: int | None = None
    nonce: str | None = None  # confirm tokens: the sign-up they were mailed for


class _ClockSigner(TimestampSigner):
    """itsdangerous' timestamp signer, reading the time from our Clock."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock.now().timestamp())


@cache
def _serializer(secret_key: str, purpose: str, clock: Clock) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(secret_key, salt=f"mailer.{purpose}", signer=_ClockSigner,
                                  signer_kwargs={"clock": clock})


def make_token(settings: Settings, public_id: str, purpose: str, nonce: str | None = None,
               clock: Clock = SYSTEM) -> str:
    """A token naming `public_id`; confirm tokens need the pending sign-up's `nonce`."""
    if not PUBLIC_ID.fullmatch(public_id):
        raise ValueError(f"not a public id: {public_id!r}")
    if (purpose == "confirm") != (nonce is not None):
        raise ValueError("a confirm token needs a nonce, and only a confirm token has one")
    payload = [public_id, nonce] if nonce is not None else public_id
    return _serializer(settings.secret_key, purpose, clock).dumps(payload)


def read_token(settings: Settings, token: str, purpose: str, clock: Clock = SYSTEM) -> Claim:
    """Whom a token names; confirm tokens expire after 48 hours and must name their sign-up."""
    max_age = CONFIRM_MAX_AGE if purpose == "confirm" else None
    try:
        value, signed = _serializer(settings.secret_key, purpose, clock).loads(
            token, max_age=max_age, return_timestamp=True)
    except SignatureExpired as exc:
        raise ExpiredToken("the link has expired") from exc
    except BadSignature as exc:
        raise BadToken("the link is not valid") from exc
    if purpose == "confirm":
        if (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
                and PUBLIC_ID.fullmatch(value[0]) and NONCE.fullmatch(value[1])):
            return Claim(signed, public_id=value[0], nonce=value[1])
    elif isinstance(value, str) and PUBLIC_ID.fullmatch(value):
        return Claim(signed, public_id=value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return Claim(signed, legacy_id=value)
    raise BadToken("the link is not valid")


def confirm_url(settings: Settings, public_id: str, nonce: str) -> str:
    return urls.absolute(settings.public_base_url, urls.CONFIRM,
                         token=make_token(settings, public_id, "confirm", nonce))


def unsubscribe_url(settings: Settings, public_id: str, topic: str | None = None,
                    token: str = "") -> str:
    """The page and RFC 8058 one-click target; with a topic it leaves only that topic.
    `token` is the person's unsubscribe token when the caller made it already."""
    token = token or make_token(settings, public_id, "unsubscribe")
    url = urls.absolute(settings.public_base_url, urls.UNSUBSCRIBE, token=token)
    return f"{url}?onderwerp={quote(topic)}" if topic else url


def preferences_url(settings: Settings, public_id: str) -> str:
    return urls.absolute(settings.public_base_url, urls.PREFERENCES,
                         token=make_token(settings, public_id, "preferences"))
