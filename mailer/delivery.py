"""Where messages go: one narrow Transport seam with SMTP, a Maildir outbox, and memory.

Tests swap the transport; they never patch smtplib. The outbox is the default when no SMTP host is
configured, so a new user can run a whole send without a mail server.
"""

from __future__ import annotations

import contextlib
import mailbox
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from mailer.config import Settings


class DeliveryError(Exception):
    """A message could not be delivered. `permanent` says whether retrying can help."""

    def __init__(self, message: str, permanent: bool, code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class Transport(Protocol):
    """Deliver one finished message; raise DeliveryError when it did not leave."""

    name: str

    def send(self, message: EmailMessage) -> None: ...

    def close(self) -> None: ...


class MemoryTransport:
    """Keeps messages in a list; for unit tests only."""

    name = "memory"

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


class OutboxTransport:
    """Writes each message to a Maildir (default `out/outbox/`), readable by any mail client."""

    name = "outbox"

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(path, create=True)

    def send(self, message: EmailMessage) -> None:
        self.maildir.add(message)

    def close(self) -> None:
        pass


class SMTPTransport:
    """One persistent SMTP connection, opened on first use and reopened after a drop."""

    name = "smtp"

    def __init__(self, host: str, port: int, security: str = "starttls", user: str = "",
                 password: str = "", timeout: float = 30.0):
        self.host, self.port, self.security = host, port, security
        self.user, self.password, self.timeout = user, password, timeout
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
        if self.user:
            conn.login(self.user, self.password)
        return conn

    def send(self, message: EmailMessage) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            refused = self._conn.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()))
            detail = answer.decode(errors="replace")
            raise DeliveryError(f"{code} {detail}", code >= 500, code) from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            error = exc.smtp_error
            detail = error.decode(errors="replace") if isinstance(error, bytes) else error
            code = exc.smtp_code
            raise DeliveryError(f"{code} {detail}", code >= 500, code) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise DeliveryError(f"connection problem: {exc}", permanent=False) from exc
        if refused:
            code, answer = next(iter(refused.values()))
            raise DeliveryError(f"{code} {answer.decode(errors='replace')}", code >= 500, code)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._conn.quit()
            self._conn = None


def transport_from_settings(settings: Settings) -> Transport:
    """SMTP when a host is configured, otherwise the local outbox."""
    if settings.smtp_host:
        return SMTPTransport(settings.smtp_host, settings.smtp_port, settings.smtp_security,
                             settings.smtp_user, settings.smtp_password)
    return OutboxTransport(settings.out / "outbox")
