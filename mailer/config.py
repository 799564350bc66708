"""One settings object for the whole tool: defaults, then `mailer.toml`, then environment.

Site-wide facts (sender, postal address, public URL) live here and never in templates, so a
regional network can run the same templates with its own settings file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mailer.config_checks import check_settings, warn_unknown
from mailer.errors import ConfigError

ENVIRONMENT_ONLY = ("MAILER_ROOT", "MAILER_CONFIG", "MAILER_LOG_FORMAT")


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Paths are resolved against `root`."""

    root: Path = field(default_factory=Path.cwd)
    content_dir: Path = Path("content")
    templates_dir: Path = Path("templates")
    out_dir: Path = Path("out")
    lists_dir: Path = Path("lists")
    database_url: str = "sqlite:///mailer.db"

    sender_name: str = "Landelijk Netwerk Zorg-Straf"
    # From is on the signing domain (DMARC alignment); replies go to the human reply box
    sender_email: str = "nieuws@veiligheidvoorop.nl"
    reply_to: str = "info@ovv.nl"
    public_base_url: str = "https://nieuws.veiligheidvoorop.nl"
    postal_address: str = "Landelijk Netwerk Zorg-Straf, Postbus 30435, 2500 GK Den Haag"
    list_domain: str = "veiligheidvoorop.nl"
    unsubscribe_mailto: str = ""  # empty = "afmelden@" + list_domain
    bounce_address: str = ""  # envelope sender; empty = "bounces@" + list_domain (VERP: bounces+…)
    # load_settings replaces this with a random key kept in .mailer-secret unless one is configured
    secret_key: str = "not-secret-for-tests-only"
    timezone: str = "Europe/Amsterdam"

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | tls | none (any case; checked at load)
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_connections: int = 2
    smtp_rate: float = 0.0  # messages per second; 0 = unlimited
    smtp_timeout: float = 30.0  # seconds for connecting and for each SMTP answer

    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_key_file: str = ""

    grace_period_hours: float = 6.0
    pending_days: float = 7.0  # unconfirmed web sign-ups are purged after this many days
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed ("*" = any, for a
    # proxy on a socket only it can reach); empty = none. See docs/production.md.
    trusted_proxies: str = ""
    # [metrics] token: a Bearer token that lets a scraper off this machine read /metrics;
    # empty: /metrics answers loopback only.
    metrics_token: str = ""
    feed_timeout: float = 10.0  # seconds per partner feed read (connecting, each chunk)
    feed_deadline: float = 20.0  # seconds for a whole partner feed request, however it trickles
    link_timeout: float = 10.0  # seconds per link asked by `mailer check`
    link_cache_hours: float = 24.0  # a link that answered is not asked again for this long

    # Four eyes: "required" = a real send or schedule needs approval by someone else first.
    approval_mode: str = "none"  # none | required
    approval_staff: str = ""  # names allowed to create and approve, comma-separated; "" = anyone

    # The team ([auth] in mailer.toml), once accounts exist (docs/team.md).
    studio_url: str = "http://127.0.0.1:8025"  # where the studio is reached: one-time password links
    auth_mfa: str = "none"  # none | admins: admins log in with a TOTP code as well
    auth_idle_hours: float = 8.0  # a studio log-in ends after this long without a request

    # The REST API under /api/v1 ([api] in mailer.toml; docs/api.md).
    # Sites whose forms may post to /api/v1/signup: https origins (http only for localhost),
    # comma-separated or a TOML list; empty = none.
    api_signup_origins: str = ""
    api_requests_per_minute: int = 600  # per token; more is answered 429

    # Sending: a batch is claimed, sent and recorded together, so after a crash at most one
    # batch per worker can go out twice.
    send_batch: int = 50
    send_max_attempts: int = 5  # temporary failures (4xx, dropped connections) per recipient
    send_retry_seconds: float = 60.0  # first back-off; it doubles with every attempt
    send_claim_timeout: float = 900.0  # a `sends work` worker takes over claims this old
    # Connection trouble (greeting, TLS, login, 421, drops) is nobody's attempt: the send waits,
    # doubling from this, and pauses when it lasts longer than the patience.
    send_connection_retry_seconds: float = 15.0
    send_connection_patience: float = 3600.0
    bounce_soft_limit: int = 3  # soft bounces after which an address is suppressed
    # The bounce mailbox on a mail server ([bounce] in mailer.toml): `mailer bounces fetch` and
    # the scheduler read it. imaps://user@host/INBOX (TLS), imap+starttls://… (STARTTLS), or
    # imap://… in plain text to this machine only; empty = no mailbox to fetch.
    bounce_imap_url: str = ""
    bounce_imap_password: str = ""  # best from MAILER_BOUNCE_IMAP_PASSWORD
    bounce_imap_done_folder: str = "Verwerkt"  # handled mail is moved here (created when missing)
    bounce_poll_seconds: float = 300.0  # how often `mailer scheduler` fetches the mailbox

    def path(self, name: str) -> Path:
        """Resolve a path setting (the *_dir ones, dkim_key_file) against the project root."""
        value = Path(getattr(self, name))
        return value if value.is_absolute() else self.root / value

    @property
    def content(self) -> Path:
        return self.path("content_dir")

    @property
    def templates(self) -> Path:
        return self.path("templates_dir")

    @property
    def out(self) -> Path:
        return self.path("out_dir")

    @property
    def lists(self) -> Path:
        return self.path("lists_dir")

    @property
    def unsubscribe_address(self) -> str:
        """The mailto target of List-Unsubscribe; follows list_domain unless set explicitly."""
        return self.unsubscribe_mailto or f"afmelden@{self.list_domain}"

    @property
    def envelope_sender(self) -> str:
        """The bounce address (MAIL FROM, Return-Path); never the human reply box."""
        return self.bounce_address or f"bounces@{self.list_domain}"

    @property
    def resolved_database_url(self) -> str:
        """SQLite paths in the URL are relative to the project root, not the shell's cwd."""
        url = self.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
            rest = url[len(prefix) :]
            if rest != ":memory:":
                return prefix + str(self.root / rest)
        return url


def _coerce(where: str, raw: Any, kind: type) -> Any:
    """A TOML value or an environment string as the setting's type (`kind`)."""
    try:
        if kind is Path:
            return Path(str(raw))
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if isinstance(raw, list):  # a TOML list for a comma-separated setting
            return ",".join(str(item).strip() for item in raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot use {raw!r} ({exc})") from exc


def load_settings(root: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read `mailer.toml` (or $MAILER_CONFIG) and MAILER_* environment overrides, and check them."""
    settings, origin = _read(root, environ)
    check_settings({f.name: getattr(settings, f.name) for f in fields(settings)}, origin)
    return settings


def unchecked_settings(root: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """The settings as they are, without their checks: only to find the database in which to
    record that the checks failed."""
    return _read(root, environ)[0]


def _read(root: Path | None, environ: dict[str, str] | None) -> tuple[Settings, dict[str, str]]:
    """The settings and where each came from (the file's key or the variable)."""
    env = dict(os.environ if environ is None else environ)
    root = Path(env.get("MAILER_ROOT", root or Path.cwd())).resolve()
    config_file = Path(env.get("MAILER_CONFIG", root / "mailer.toml"))
    types = {f.name: f.type for f in fields(Settings) if f.name != "root"}
    kinds = {
        name: {"Path": Path, "int": int, "float": float}.get(str(t), str)
        for name, t in types.items()
    }
    values: dict[str, Any] = {}  # field name → value of the field's type
    origin: dict[str, str] = {}  # where each value came from, for the error that names it
    if "MAILER_CONFIG" in env and not config_file.is_file():
        raise ConfigError(f"MAILER_CONFIG: there is no settings file {config_file}")
    if config_file.exists():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from exc
        flat = {**{k: v for k, v in data.items() if not isinstance(v, dict)}}
        for section, table in data.items():
            if isinstance(table, dict):
                flat.update({f"{section}_{k}": v for k, v in table.items()})
        for key, raw in flat.items():
            if key not in kinds:
                warn_unknown(key, str(config_file), kinds)
                continue
            origin[key] = f"{config_file}: {key}"
            values[key] = _coerce(origin[key], raw, kinds[key])
    for env_key in sorted(k for k in env if k.startswith("MAILER_") and k not in ENVIRONMENT_ONLY):
        key = env_key.removeprefix("MAILER_").lower()
        if key not in kinds:
            warn_unknown(env_key, "environment", [f"MAILER_{k.upper()}" for k in kinds])
            continue
        origin[key] = env_key
        values[key] = _coerce(env_key, env[env_key], kinds[key])
    if "smtp_security" in values:  # STARTTLS in capitals must not mean "no TLS"
        values["smtp_security"] = str(values["smtp_security"]).strip().lower()
    if "secret_key" not in values:
        values["secret_key"] = _local_secret(root)
    return replace(Settings(root=root), **values), origin


def _local_secret(root: Path) -> str:
    """A random signing key made once per project folder, so no two sites share a default key.

    Changing it breaks the links in mails already sent, so it is kept, not made anew per run.
    """
    path = root / ".mailer-secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    key = secrets.token_urlsafe(32)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
    return path.read_text(encoding="utf-8").strip()
