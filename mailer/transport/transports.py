"""Where messages go: one narrow Transport seam with SMTP, a Maildir outbox, and memory.

Tests swap the transport; they never patch smtplib. The outbox is the default when no SMTP host is
configured, so a new user can run a whole send without a mail server.

A transport takes finished bytes plus the envelope (`OutgoingMessage`), not an EmailMessage: the
bytes are what DKIM signed, so no transport may serialise the message again.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import ipaddress
import mailbox
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

from mailer.config import Settings
from mailer.config_checks import SECURITY_MODES
from mailer.errors import ConfigError, DeliveryError


class InsecureServer(DeliveryError):
    """The server cannot give the transport security asked for; nothing is sent in plain text.

    A refusal of the session like a "530 STARTTLS required", not a settings error: no recipient
    is at fault and no retry can help, so a send pauses until someone fixes the server or the
    smtp settings.
    """

    def __init__(self, message: str):
        super().__init__(message, permanent=True, connection=True)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One finished message: the envelope and the exact bytes (CRLF line ends) to transmit."""

    sender: str
    recipient: str
    data: bytes
    message_id: str

    @classmethod
    def from_email(cls, message: EmailMessage, sender: str,
                   sign: Callable[[bytes], bytes] | None = None) -> OutgoingMessage:
        """Wrap a one-recipient EmailMessage (a confirmation mail, say) as mailings go out: the
        envelope sender given (the bounce address, never From), the recipient from To, bytes
        serialised once with CRLF line ends and, with `sign`, its DKIM-Signature in front."""
        data = message.as_bytes(policy=email.policy.SMTP)
        return cls(sender, parseaddr(str(message["To"]))[1], (sign(data) if sign else b"") + data,
                   str(message["Message-ID"] or ""))

    def email(self) -> EmailMessage:
        """Parse the bytes back, for tests and for tools that inspect what was sent."""
        return email.message_from_bytes(self.data, policy=email.policy.default)


class Transport(Protocol):
    """Deliver one finished message; raise DeliveryError when it did not leave.

    `send` may be called from several threads at once.
    """

    def send(self, message: OutgoingMessage) -> None: ...

    def close(self) -> None: ...


class MemoryTransport:
    """Keeps messages in a list; for unit tests only."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


class OutboxTransport:
    """Writes each message to a Maildir (default `out/outbox/`), readable by any mail client."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(path, create=True)
        self._lock = threading.Lock()  # Maildir's unique-name counter is not thread-safe

    def send(self, message: OutgoingMessage) -> None:
        with self._lock:
            self.maildir.add(message.data.replace(b"\r\n", b"\n"))

    def close(self) -> None:
        pass


def _answer(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


# Answers about the session whatever command they come at: the server is closing (421), or it
# wants a login or TLS first (530).
SESSION_CODES = frozenset({421, 530})


def _refusal(code: int, answer: bytes | str) -> DeliveryError:
    """An answer to one recipient's RCPT or DATA: 5xx is final; 4xx and odd codes may work on
    a later try; a session answer is about the connection."""
    if code in SESSION_CODES:
        return _session_refusal(code, answer)
    return DeliveryError(f"{code} {_answer(answer)}", permanent=500 <= code < 600, code=code)


def _session_refusal(code: int, answer: bytes | str) -> DeliveryError:
    """An answer about the connection (greeting, STARTTLS, login, MAIL FROM): 5xx needs a
    person (wrong password, TLS required, we are refused), 4xx passes with time."""
    return DeliveryError(f"{code} {_answer(answer)}", permanent=500 <= code < 600, code=code,
                         connection=True)


class SMTPTransport:
    """One persistent SMTP connection, opened on first use, reused, and reopened after a drop.

    Not thread-safe on its own: SMTPPool gives each thread its own connection.
    """

    def __init__(self, host: str, port: int, security: str = "starttls", user: str = "",
                 password: str = "", timeout: float = 30.0):
        if security.lower() not in SECURITY_MODES:  # before any connection is made
            raise ConfigError(f"smtp security must be one of {', '.join(SECURITY_MODES)}, "
                              f"not {security!r}")
        self.host, self.port, self.security = host, port, security.lower()
        self.user, self.password, self.timeout = user, password, timeout
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        """A ready session: greeted, encrypted as configured, logged in. Whatever fails here is
        about the connection, never about a recipient."""
        conn: smtplib.SMTP | None = None
        try:
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.security == "starttls":
                    conn.ehlo()
                    if not conn.has_extn("starttls"):
                        conn.close()
                        raise InsecureServer(
                            f"{self.host}:{self.port} does not offer STARTTLS, and smtp security is "
                            "starttls: nothing was sent in plain text. Fix the server, or set "
                            "security = \"tls\" for a TLS port")
                    conn.starttls(context=ssl.create_default_context())
            if self.user:
                conn.login(self.user, self.password)
            conn.ehlo_or_helo_if_needed()
            return conn
        except smtplib.SMTPResponseException as exc:  # 421/554 greeting, 535 login, TLS refused
            error = _session_refusal(exc.smtp_code, exc.smtp_error)
        except ssl.SSLCertVerificationError as exc:  # a certificate we must not trust
            error = DeliveryError(f"TLS: {exc}", permanent=True, connection=True)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:  # refused, timeout, dropped
            error = DeliveryError(f"connection problem: {exc}", permanent=False, connection=True)
        except smtplib.SMTPException as exc:  # no usable login method
            error = DeliveryError(f"cannot set up the session: {exc}", permanent=True,
                                  connection=True)
        if conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.close()
        raise error

    def send(self, message: OutgoingMessage) -> None:
        try:
            self._transaction(message)
        except DeliveryError:
            raise
        except smtplib.SMTPResponseException as exc:
            self._drop()
            raise _refusal(exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:  # dropped connection, timeout
            self._drop()
            raise DeliveryError(f"connection problem: {exc}", permanent=False,
                                connection=True) from exc

    def _transaction(self, message: OutgoingMessage) -> None:
        """MAIL, RCPT, DATA step by step, so a stale connection is only retried when safe."""
        conn = self._conn
        if conn is not None:
            try:
                reply = conn.mail(message.sender)
            except (smtplib.SMTPServerDisconnected, OSError):
                # The server closed an idle connection; nothing of this message was sent yet.
                self._drop()
                conn = None
        if conn is None:
            conn = self._conn = self._connect()
            reply = conn.mail(message.sender)
        self._expect(conn, reply, (250,), session=True)  # the sender is everyone's, not theirs
        self._expect(conn, conn.rcpt(message.recipient), (250, 251))
        self._expect(conn, self._data(conn, message.data), (250,))

    @staticmethod
    def _data(conn: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
        """DATA with our bytes written straight to the socket: they are CRLF-canonical
        already, so dot-stuffing is one replace (smtplib's regexes cost a third of a send)."""
        conn.putcmd("data")
        code, answer = conn.getreply()
        if code != 354:
            return code, answer
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        conn.send(stuffed + b".\r\n")
        return conn.getreply()

    def _expect(self, conn: smtplib.SMTP, reply: tuple[int, bytes], good: tuple[int, ...],
                session: bool = False) -> None:
        code, answer = reply
        if code in good:
            return
        if code == 421:  # the server is closing this connection
            self._drop()
        else:
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()
        raise (_session_refusal if session else _refusal)(code, answer)

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


class RateLimiter:
    """A one-token bucket shared by all threads: at most `rate` messages per second, evenly
    spaced (no bursts); 0 = unlimited.

    Each caller reserves its slot under the lock and sleeps outside it, so threads queue fairly.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._tokens = 1.0
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(1.0, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            self._sleep(wait)


def security_warning(settings: Settings) -> str:
    """A warning when mail would cross a network unencrypted, else ""."""
    if settings.smtp_host and settings.smtp_security.lower() == "none" and not _loopback(
            settings.smtp_host):
        return (f"smtp security is none: mail to {settings.smtp_host} travels unencrypted "
                "(use starttls or tls for anything but a local relay)")
    return ""


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


class SMTPPool:
    """N transports shared by worker threads, behind one rate limiter; itself a Transport.

    A thread borrows an idle connection for one message, so N threads keep N connections busy
    and more threads than connections simply wait their turn.
    """

    def __init__(self, connect: Callable[[], Transport], size: int, limiter: RateLimiter):
        self.limiter = limiter
        self._all = [connect() for _ in range(max(size, 1))]
        self._idle: queue.SimpleQueue[Transport] = queue.SimpleQueue()
        for transport in self._all:
            self._idle.put(transport)

    def send(self, message: OutgoingMessage) -> None:
        self.limiter.acquire()
        transport = self._idle.get()
        try:
            transport.send(message)
        finally:
            self._idle.put(transport)

    def close(self) -> None:
        for transport in self._all:
            transport.close()


def outbox_path(settings: Settings) -> Path | None:
    """The local outbox messages go to, or None when an SMTP host is configured."""
    return None if settings.smtp_host else settings.out / "outbox"


def transport_from_settings(settings: Settings) -> Transport:
    """SMTP when a host is configured, otherwise the local outbox."""
    outbox = outbox_path(settings)
    if outbox is not None:
        return OutboxTransport(outbox)

    def connect() -> Transport:
        return SMTPTransport(settings.smtp_host, settings.smtp_port, settings.smtp_security,
                             settings.smtp_user, settings.smtp_password, settings.smtp_timeout)

    return SMTPPool(connect, settings.smtp_connections, RateLimiter(settings.smtp_rate))
