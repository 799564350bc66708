"""The checks every setting passes at load, so a bad value stops the command before it runs.

A value that cannot work, or that would silently weaken security or delivery (plain-http links
that carry personal tokens, a guessable signing key, DKIM half configured), is a ConfigError that
names where the value came from. An unknown setting is a warning with the nearest known name: a
typo must not go unnoticed, but an old settings file must not stop a newer mailer.

A setting gets its checks in FIELD_CHECKS: a mode is `choice(...)`, a number a range, a URL a
parser. Checks that relate settings to each other are in `_together`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.errors import ConfigError, ConfigWarning

Check = Callable[[Any], str | None]  # why the value cannot be used, or None

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
KNOWN_DEFAULT_KEY = "not-secret-for-tests-only"  # Settings' placeholder, public in the source
SECRET_MIN = 16
DATABASES = ("sqlite", "postgresql")
SECURITY_MODES = ("starttls", "tls", "none")
_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]*")  # a name or an address; empty: the local outbox


def choice(*allowed: str) -> Check:
    """A mode: one of a few words."""
    return lambda value: None if value in allowed else f"must be one of {', '.join(allowed)}"


def at_least(low: float) -> Check:
    return lambda value: None if value >= low else f"must be at least {low}"


def above(low: float) -> Check:
    return lambda value: None if value > low else f"must be more than {low}"


def between(low: int, high: int) -> Check:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def public_url(value: str) -> str | None:
    """Links in mails carry personal tokens: https, except for a site on this machine."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be a full address such as https://nieuws.example.nl"
    if parts.query or parts.fragment:
        return "must not have a ?query or #fragment"
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        return ("must start with https://: the links in mails carry personal tokens "
                "(http:// only for localhost)")
    return None


def database_url(value: str) -> str | None:
    """The kind of database from the URL's scheme (`postgresql+psycopg` is PostgreSQL); read
    without SQLAlchemy, which commands that never open the database (`mailer build`) skip."""
    scheme, sep, rest = value.partition("://")
    if not sep or not rest or not scheme.replace("+", "").replace("_", "").isalnum():
        return ("cannot be read as a database URL; e.g. sqlite:///mailer.db or "
                "postgresql+psycopg://user@host/db")
    return None if scheme.split("+")[0] in DATABASES else f"must be a {' or '.join(DATABASES)} URL"


def host(value: str) -> str | None:
    return None if _HOST.fullmatch(value) else "must be a host name or address, such as smtp.example.nl"


@dataclass(frozen=True)
class MailboxAddress:
    """Where the bounce mailbox is: `[bounce] imap_url` read."""

    security: str  # tls | starttls | none
    host: str
    port: int
    user: str
    folder: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


IMAP_SCHEMES = {"imaps": ("tls", 993), "imap+starttls": ("starttls", 143), "imap": ("none", 143)}


def read_imap_url(value: str) -> MailboxAddress:
    """`imaps://user@host[:port]/FOLDER` (TLS), `imap+starttls://…` (STARTTLS on the plain
    port) or `imap://…` (no encryption: only to this machine). The user is percent-encoded
    (`bounces%40example.org@mail.example.org`); the folder defaults to INBOX. Raises
    ValueError saying what is wrong."""
    parts = urlsplit(value.strip())
    example = "such as imaps://bounces@mail.example.org/INBOX"
    scheme = parts.scheme.lower()
    if scheme not in IMAP_SCHEMES or not parts.hostname:
        raise ValueError(f"must be an imaps://, imap+starttls:// or imap:// address, {example}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"has a port that is not a number from 1 to 65535, {example}") from None
    if not parts.username:
        raise ValueError(f"must name the mailbox's user before the host, {example}")
    if parts.password is not None:
        raise ValueError("must not hold the password: set [bounce] imap_password or "
                         "MAILER_BOUNCE_IMAP_PASSWORD")
    if parts.query or parts.fragment:
        raise ValueError("must not have a ?query or #fragment (for STARTTLS write imap+starttls://)")
    security, default_port = IMAP_SCHEMES[scheme]
    if security == "none" and not _loopback(parts.hostname):
        raise ValueError("must use imaps:// (TLS) or imap+starttls:// (STARTTLS): with imap:// "
                         "the log-in and the bounces would cross the network unencrypted "
                         "(plain imap:// only to this machine, e.g. 127.0.0.1)")
    return MailboxAddress(security, parts.hostname, port or default_port, unquote(parts.username),
                          unquote(parts.path.strip("/")) or "INBOX")


def _loopback(hostname: str) -> bool:
    try:
        return hostname == "localhost" or ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def imap_url(value: str) -> str | None:
    """Empty: no bounce mailbox to fetch."""
    if not value:
        return None
    try:
        read_imap_url(value)
    except ValueError as exc:
        return str(exc)
    return None


def folder_name(value: str) -> str | None:
    return None if value.strip() else "must name a folder, such as Verwerkt"


def timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "must be a time zone name such as Europe/Amsterdam"
    return None


def origins(value: str) -> str | None:
    """Sites allowed to post the sign-up form: each an origin (scheme://host[:port]), https
    except on this machine, since the form carries a person's address."""
    for item in filter(None, (part.strip() for part in value.split(","))):
        parts = urlsplit(item)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.path.strip("/") \
                or parts.query or parts.fragment or parts.username:
            return (f"{item!r} is not an origin: write scheme://host[:port] without a path, "
                    "such as https://www.veiligthuis.nl")
        if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            return f"{item!r} must start with https:// (http:// only for localhost)"
    return None


def secret(value: str) -> str | None:
    """Anyone who knows or guesses the key can forge every unsubscribe and erase link."""
    if value == KNOWN_DEFAULT_KEY or len(value) < SECRET_MIN:
        return (f"must be a random text of at least {SECRET_MIN} characters; leave it unset to use "
                "a random key kept in .mailer-secret")
    return None


FIELD_CHECKS: dict[str, tuple[Check, ...]] = {
    "database_url": (database_url,),
    "public_base_url": (public_url,),
    "studio_url": (public_url,),
    "auth_mfa": (choice("none", "admins"),),
    "auth_idle_hours": (above(0),),
    "api_signup_origins": (origins,),
    "api_requests_per_minute": (at_least(1),),
    "secret_key": (secret,),
    "metrics_token": (lambda v: None if not v or len(v) >= SECRET_MIN else
                      f"must be at least {SECRET_MIN} characters (or empty: loopback only)",),
    "timezone": (timezone,),
    "smtp_host": (host,),
    "smtp_port": (between(1, 65535),),
    "smtp_security": (choice(*SECURITY_MODES),),  # a typo must not send in plain text
    "smtp_connections": (at_least(1),),
    "smtp_rate": (at_least(0),),
    "smtp_timeout": (above(0),),
    "grace_period_hours": (at_least(0),),
    "feed_timeout": (above(0),),
    "feed_deadline": (above(0),),
    "link_timeout": (above(0),),
    "link_cache_hours": (at_least(0),),
    "approval_mode": (choice("none", "required"),),  # a typo must not switch four eyes off
    "send_batch": (at_least(1),),
    "send_max_attempts": (at_least(1),),
    "send_retry_seconds": (at_least(0),),
    "send_claim_timeout": (above(0),),
    "bounce_soft_limit": (at_least(1),),
    "bounce_imap_url": (imap_url,),
    "bounce_imap_done_folder": (folder_name,),
    "bounce_poll_seconds": (above(0),),
}

DKIM = ("dkim_selector", "dkim_domain", "dkim_key_file")


def _together(values: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(setting, problem) for settings that only work together."""
    dkim = [name for name in DKIM if values[name]]
    if dkim and len(dkim) < len(DKIM):
        missing = ", ".join(n for n in DKIM if n not in dkim)
        yield dkim[0], (f"DKIM needs {', '.join(DKIM)} together; without {missing} mail would "
                        "go out unsigned")
    if values["smtp_password"] and not values["smtp_user"]:
        yield "smtp_password", "is set without smtp_user; set both, or neither"
    if values["bounce_imap_url"] and imap_url(values["bounce_imap_url"]) is None and (
            read_imap_url(values["bounce_imap_url"]).folder == values["bounce_imap_done_folder"]):
        yield "bounce_imap_url", (f"reads the folder bounce_imap_done_folder names "
                                  f"({values['bounce_imap_done_folder']}): handled mail must move "
                                  "out of the folder read, so name two different folders")


def check_settings(values: Mapping[str, Any], origin: Mapping[str, str]) -> None:
    """Raise one ConfigError listing every setting that cannot be used, each with its source.

    `origin` names where a setting came from (`mailer.toml: smtp_port`, `MAILER_SMTP_PORT`);
    defaults need no check, but settings that only work together are checked whatever their
    source. Values are not repeated: they may be secret.
    """
    problems = [(name, problem) for name, checks in FIELD_CHECKS.items() if name in origin
                for check in checks if (problem := check(values[name]))]
    problems += list(_together(values))
    if problems:
        raise ConfigError("\n".join(f"{origin.get(name, name)}: {problem}" for name, problem in problems))


def warn_unknown(name: str, where: str, known: Iterable[str]) -> None:
    """An unknown setting is ignored, with a warning that names the closest known one."""
    near = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    warnings.warn(f"{where}: unknown setting {name!r}{hint}; ignored", ConfigWarning, stacklevel=3)
