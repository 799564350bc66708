"""Everything a send needs, checked before anything is written: one clear line on failure.

`mailer send`, `--dry-run`, `--test` and the scheduler all pass through `preflight` before a
Send row exists, so a bad DKIM key, a bad smtp setting or a header with a line break stops the
send instead of leaving it half-started. A check is a function of the settings and the fresh
manifest that raises PreflightError; add one by appending it to CHECKS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from mailer import taxonomy
from mailer.build.builder import build
from mailer.build.manifest import Manifest
from mailer.config import Settings
from mailer.errors import MailerError
from mailer.send.messages import DkimSigner, MessageAssembler, MessageError

SECURITIES = ("starttls", "tls", "none")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")  # line breaks and control characters
_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]+")


class PreflightError(MailerError):
    """A send that cannot start as configured; the message says what to fix, in one line."""


Check = Callable[[Settings, Manifest], None]


def current_manifest(settings: Settings, theme: str) -> Manifest:
    """The manifest of `out/<theme>`, built first when missing or older than what it reads
    (content, templates, settings, partner publications)."""
    return build(settings, theme).manifest


def header_values(settings: Settings, manifest: Manifest) -> None:
    """Every value that goes into a header is one line: a line break would start a new header."""
    values = {"subject": manifest.subject, "preheader": manifest.preheader,
              "sender_name": settings.sender_name, "sender_email": settings.sender_email,
              "reply_to": settings.reply_to, "list_domain": settings.list_domain,
              "unsubscribe_mailto": settings.unsubscribe_address}
    for name, value in values.items():
        if not value.strip():
            raise PreflightError(f"{name} is empty")
        if _BREAKS.search(value):
            raise PreflightError(f"{name} contains a line break or control character: {value!r}")


def transport_settings(settings: Settings, manifest: Manifest) -> None:
    """The smtp settings make sense (whether the server agrees shows when the send connects)."""
    if not settings.smtp_host:
        return  # the local outbox
    problems = {
        "smtp_host": not _HOST.fullmatch(settings.smtp_host),
        "smtp_port": not 0 < settings.smtp_port < 65536,
        "smtp_security": settings.smtp_security not in SECURITIES,
        "smtp_connections": settings.smtp_connections < 1,
        "smtp_rate": settings.smtp_rate < 0,
        "smtp_timeout": settings.smtp_timeout <= 0,
        "smtp_user": bool(settings.smtp_password) and not settings.smtp_user,
    }
    wrong = next((name for name, bad in problems.items() if bad), None)
    if wrong:
        hint = {"smtp_security": f" (one of {', '.join(SECURITIES)})",
                "smtp_user": " (smtp_password is set without it)"}.get(wrong, "")
        raise PreflightError(f"setting {wrong} = {getattr(settings, wrong)!r} is not usable{hint}")


def sample_message(settings: Settings, manifest: Manifest) -> None:
    """A message of this mailing builds, and is DKIM-signed when DKIM is configured."""
    dkim = {"dkim_selector": settings.dkim_selector, "dkim_domain": settings.dkim_domain,
            "dkim_key_file": settings.dkim_key_file}
    if any(dkim.values()) and not all(dkim.values()):
        missing = ", ".join(name for name, value in dkim.items() if not value)
        raise PreflightError(f"DKIM is half configured: {missing} not set (set all three, or none)")
    key_file = settings.path("dkim_key_file") if settings.dkim_key_file else None
    try:
        assembler = MessageAssembler(settings, subject=manifest.subject, list_slug=manifest.topic,
                                     list_name=taxonomy.TOPICS[manifest.topic], send_id=0,
                                     install="preflight")
    except OSError as exc:
        raise PreflightError(f"dkim_key_file {key_file}: cannot read it: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:  # what cryptography raises on a key it cannot load
        reason = " ".join(str(exc).split())
        raise PreflightError(f"dkim_key_file {key_file}: cannot sign with it: "
                             f"{type(exc).__name__}: {reason}") from exc
    try:
        assembler.build(address="preflight@example.org", name="Anna de Vries", html="<p>x</p>",
                        text="x", unsubscribe_url=f"{settings.public_base_url}/afmelden/x",
                        recipient_id="preflight")
    except MessageError as exc:
        raise PreflightError(f"a message cannot be built: {exc} (check public_base_url, "
                             "sender_email and reply_to)") from exc
    except Exception as exc:  # whatever the signer raises on a key it cannot use
        if not isinstance(assembler.signer, DkimSigner):
            raise
        reason = " ".join(str(exc).split())  # one line, whatever the library wrote
        raise PreflightError(f"dkim_key_file {key_file}: cannot sign with it: "
                             f"{type(exc).__name__}: {reason}") from exc


CHECKS: list[Check] = [header_values, transport_settings, sample_message]


def preflight(settings: Settings, theme: str, checks: Sequence[Check] | None = None
              ) -> Manifest:
    """The fresh manifest of THEME (built first when stale) once every check passed."""
    manifest = current_manifest(settings, theme)
    for check in CHECKS if checks is None else checks:
        check(settings, manifest)
    return manifest
