"""Signed, opaque tokens for the links in a mail: bound to one subscriber and one purpose.

A token carries only the subscriber's id, signed with `settings.secret_key` and a salt per
purpose, so an unsubscribe token cannot open the preferences page and no address is in a URL.
Confirmation tokens expire; unsubscribe and preference tokens do not, because the mails that
carry them are read months later.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from mailer.clock import SYSTEM, Clock
from mailer.config import Settings

PURPOSES = ("confirm", "unsubscribe", "preferences")
CONFIRM_MAX_AGE = 48 * 3600


class TokenError(Exception):
    """A token that cannot be used; the web app shows one page for every kind."""


class BadToken(TokenError):
    """Tampered, malformed, or signed for another purpose or key."""


class ExpiredToken(TokenError):
    """Genuine but older than allowed."""


class _ClockSigner(TimestampSigner):
    """itsdangerous' timestamp signer, reading the time from our Clock."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock.now().timestamp())


def _serializer(settings: Settings, purpose: str, clock: Clock) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return URLSafeTimedSerializer(settings.secret_key, salt=f"mailer.{purpose}",
                                  signer=_ClockSigner, signer_kwargs={"clock": clock})


def make_token(settings: Settings, subscriber_id: int, purpose: str, clock: Clock = SYSTEM) -> str:
    return _serializer(settings, purpose, clock).dumps(subscriber_id)


def read_token(settings: Settings, token: str, purpose: str, clock: Clock = SYSTEM) -> int:
    """The subscriber id in a token; confirm tokens expire after 48 hours."""
    max_age = CONFIRM_MAX_AGE if purpose == "confirm" else None
    try:
        value = _serializer(settings, purpose, clock).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise ExpiredToken("the link has expired") from exc
    except BadSignature as exc:
        raise BadToken("the link is not valid") from exc
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadToken("the link is not valid")
    return value


def _url(settings: Settings, path: str) -> str:
    return settings.public_base_url.rstrip("/") + path


def confirm_url(settings: Settings, subscriber_id: int) -> str:
    return _url(settings, f"/bevestig/{make_token(settings, subscriber_id, 'confirm')}")


def unsubscribe_url(settings: Settings, subscriber_id: int, topic: str | None = None) -> str:
    """The page and RFC 8058 one-click target; with a topic it leaves only that topic."""
    url = _url(settings, f"/afmelden/{make_token(settings, subscriber_id, 'unsubscribe')}")
    return f"{url}?onderwerp={quote(topic)}" if topic else url


def preferences_url(settings: Settings, subscriber_id: int) -> str:
    return _url(settings, f"/voorkeuren/{make_token(settings, subscriber_id, 'preferences')}")
