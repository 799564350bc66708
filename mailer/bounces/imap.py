"""The bounce mailbox on a mail server, over IMAP (`[bounce] imap_url`).

`fetch` makes one pass over the folder: it reads every message, handles it as `mailer bounces
process` does (a bounce, a mail to the unsubscribe address, or ignored), commits that, and
then moves the message to the done folder (`[bounce] imap_done_folder`, created when missing):
with UID MOVE where the server offers it (RFC 6851), else with COPY, \\Deleted and EXPUNGE.

Each message counts at most once. It is handled in a transaction of its own, committed before
the move, so a crash between the two leaves it in the folder, and the next pass reads it
again: a bounce is recorded once per delivery and class (the Bounce key), so it is "already
recorded", as is a second copy of the same bounce; an unsubscribe mail finds the topic already
left. Trouble with the server (a refused log-in, TLS, a folder that is gone, a dropped
connection) ends the pass with one MailboxError; every message not moved yet stays where it was
and is read next time. A message that cannot be read at all is left in the folder and said so.

The client is the standard library's imaplib: it speaks TLS and STARTTLS with Python's default
certificate checks, UID commands and MOVE, is maintained with Python itself, and adds no
dependency (imap-tools is a layer over it that this one pass does not need).
"""

from __future__ import annotations

import base64
import email.errors
import imaplib
import logging
import re
import ssl
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from mailer.bounces.processing import BounceHandler, Processed, parse_message, summary, tally
from mailer.config import Settings
from mailer.config_checks import MailboxAddress, read_imap_url
from mailer.db import get_engine, session_scope
from mailer.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)

TIMEOUT = 60.0  # seconds for connecting and for each answer of the server
# What a message that cannot be parsed or classified raises; anything else (the database
# away, say) ends the pass.
_UNREADABLE = (ValueError, LookupError, TypeError, AttributeError, email.errors.MessageError)


class MailboxError(DeliveryError):
    """The bounce mailbox cannot be reached or used: the message names the server and why."""


@dataclass(frozen=True)
class Left:
    """A message left in the folder because it could not be read, and why."""

    source: str
    problem: str

    def lines(self) -> list[str]:
        return [f"{self.source}: left in the folder, cannot be read ({self.problem})"]

    def document(self) -> dict[str, Any]:
        return {"source": self.source, "outcome": "unreadable", "findings": [], "action": "",
                "reason": self.problem}


Progress = Callable[[Processed | Left], None]


def mailbox_address(settings: Settings) -> MailboxAddress:
    """The configured bounce mailbox; a ConfigError when there is none or it lacks a password."""
    if not settings.bounce_imap_url:
        raise ConfigError("bounce_imap_url: is not set; name the bounce mailbox, e.g. [bounce] "
                          "imap_url = \"imaps://bounces@mail.example.org/INBOX\" in mailer.toml")
    if not settings.bounce_imap_password:
        raise ConfigError("bounce_imap_password: is not set; set [bounce] imap_password or "
                          "MAILER_BOUNCE_IMAP_PASSWORD")
    return read_imap_url(settings.bounce_imap_url)


def fetch(settings: Settings, *, dry_run: bool = False, soft_limit: int | None = None,
          progress: Progress | None = None) -> list[Processed | Left]:
    """One pass over the bounce mailbox: handle each message, then move it to the done folder.
    `dry_run` reports and keeps nothing, and moves nothing; `progress` hears of each message
    as soon as it is done."""
    address = mailbox_address(settings)
    engine = get_engine(settings)
    done: list[Processed | Left] = []
    box = Mailbox.open(address, settings.bounce_imap_password)
    try:
        box.select(address.folder)
        if not dry_run:
            box.ensure_folder(settings.bounce_imap_done_folder)
        for uid in box.uids():
            data = box.read(uid)
            if data is None:
                continue  # another client took it meanwhile
            result = _handle(settings, engine, f"{address.folder}/{uid}", data, dry_run, soft_limit)
            if not dry_run and isinstance(result, Processed):
                box.move(uid, settings.bounce_imap_done_folder)
            done.append(result)
            if progress:
                progress(result)
    finally:
        box.close()
    return done


def report(results: list[Processed | Left], done_folder: str, dry_run: bool = False) -> str:
    """One line for a pass: what was handled (as `mailer bounces process` says it), what was
    left, and where the handled mail went."""
    handled = [r for r in results if isinstance(r, Processed)]
    left = len(results) - len(handled)
    return (summary(handled) + (f", {left} left in the folder (cannot be read)" if left else "")
            + (" (dry run: nothing recorded or moved)" if dry_run
               else f"; {len(handled)} moved to {done_folder}"))


def fetch_document(results: list[Processed | Left], done_folder: str,
                   dry_run: bool = False) -> dict[str, Any]:
    """What `mailer bounces fetch --json` prints: the pass counted as `report` counts it (the
    summary of the messages handled), what was moved where, and every message."""
    handled = [r for r in results if isinstance(r, Processed)]
    return {"dry_run": dry_run, "summary": asdict(tally(handled)),
            "left": len(results) - len(handled), "moved": 0 if dry_run else len(handled),
            "done_folder": done_folder, "messages": [r.document() for r in results]}


def _handle(settings: Settings, engine: Engine, source: str, data: bytes, dry_run: bool,
            soft_limit: int | None) -> Processed | Left:
    """One message in a transaction of its own, committed before it is moved."""
    try:
        with session_scope(engine, write=True) as session:
            result = BounceHandler(settings, session, engine, soft_limit).process(
                source, parse_message(data))
            if dry_run:
                session.rollback()
    except _UNREADABLE as exc:
        left = Left(source, f"{type(exc).__name__}: {exc}")
        log.warning("bounce mailbox: %s", left.lines()[0])
        log.debug("bounce mailbox: why %s cannot be read", source, exc_info=True)
        return left
    return result


class Mailbox:
    """One logged-in IMAP session on the bounce mailbox. Every failure is a MailboxError."""

    def __init__(self, conn: imaplib.IMAP4, address: MailboxAddress):
        self.conn, self.address = conn, address
        self.capabilities: frozenset[str] = frozenset()

    @classmethod
    def open(cls, address: MailboxAddress, password: str) -> Mailbox:
        box = cls(_connect(address), address)
        try:
            box._log_in(password)
        except BaseException:
            box.close()
            raise
        return box

    def close(self) -> None:
        with suppress(imaplib.IMAP4.error, OSError):
            self.conn.logout()

    def _log_in(self, password: str) -> None:
        user = self.address.user
        try:
            if "AUTH=PLAIN" in self.conn.capabilities:  # carries any character, unlike LOGIN
                self.conn.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
            else:
                self.conn.login(user, password)
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise self._trouble("log in", exc) from exc
        except (imaplib.IMAP4.error, UnicodeEncodeError) as exc:
            raise MailboxError(
                f"the IMAP server {self.address} refused the log-in of {user!r} ({_said(exc)}); "
                "check the user in [bounce] imap_url and the password in [bounce] imap_password "
                "or MAILER_BOUNCE_IMAP_PASSWORD") from exc
        answer = self._run("ask for its capabilities", self.conn.capability)
        self.capabilities = frozenset(_text(answer[-1:]).upper().split())

    def _trouble(self, doing: str, exc: BaseException) -> MailboxError:
        return MailboxError(f"IMAP server {self.address}: cannot {doing}: {_said(exc)}")

    def _run(self, doing: str, command: Callable[..., tuple[str, list[Any]]], *args: Any
             ) -> list[Any]:
        """An IMAP command's data, or a MailboxError when it is refused or the connection fails."""
        try:
            status, data = command(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise self._trouble(doing, exc) from exc
        if status != "OK":
            raise MailboxError(f"IMAP server {self.address}: cannot {doing}: {_text(data)}")
        return data

    def select(self, folder: str) -> None:
        self._run(f"open the folder {folder!r} (is it there?)", self.conn.select, quoted(folder))

    def ensure_folder(self, folder: str) -> None:
        """Create the folder (and subscribe to it, so mail clients show it) when it is missing."""
        if self._run("list the folders", self.conn.list, '""', quoted(folder)) != [None]:
            return
        status, data = self.conn.create(quoted(folder))
        if status != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if d):
            raise MailboxError(f"IMAP server {self.address}: cannot create the folder "
                               f"{folder!r}: {_text(data)}")
        with suppress(imaplib.IMAP4.error):
            self.conn.subscribe(quoted(folder))

    def uids(self) -> list[str]:
        """The messages in the folder, oldest first; those marked for deletion are done."""
        data = self._run("list the messages", self.conn.uid, "SEARCH", "UNDELETED")
        return _text(data).split()

    def read(self, uid: str) -> bytes | None:
        """A message as it arrived, without marking it seen; None when it is gone."""
        data = self._run(f"read message {uid}", self.conn.uid, "FETCH", uid, "(BODY.PEEK[])")
        return next((part[1] for part in data if isinstance(part, tuple)), None)

    def move(self, uid: str, folder: str) -> None:
        doing = f"move message {uid} to {folder!r}"
        if "MOVE" in self.capabilities:
            self._run(doing, self.conn.uid, "MOVE", uid, quoted(folder))
            return
        self._run(doing, self.conn.uid, "COPY", uid, quoted(folder))
        self._run(doing, self.conn.uid, "STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in self.capabilities:  # only this message, not others marked deleted
            self._run(doing, self.conn.uid, "EXPUNGE", uid)
        else:
            self._run(doing, self.conn.expunge)


def _connect(address: MailboxAddress) -> imaplib.IMAP4:
    """A connection with TLS from the start, after STARTTLS, or (to this machine) without."""
    context = ssl.create_default_context()
    conn: imaplib.IMAP4 | None = None
    try:
        if address.security == "tls":
            conn = imaplib.IMAP4_SSL(address.host, address.port, ssl_context=context,
                                     timeout=TIMEOUT)
        else:
            conn = imaplib.IMAP4(address.host, address.port, timeout=TIMEOUT)
        if address.security == "starttls":
            if "STARTTLS" not in conn.capabilities:
                raise imaplib.IMAP4.error("does not offer STARTTLS, which imap+starttls:// asks "
                                          "for (imaps:// if it has TLS on a port of its own)")
            conn.starttls(context)
        return conn
    except ssl.SSLCertVerificationError as exc:
        problem = f"TLS with the IMAP server {address} failed: {exc.verify_message}"
    except ssl.SSLError as exc:
        problem = f"TLS with the IMAP server {address} failed: {exc.reason or exc}"
    except OSError as exc:
        problem = f"cannot reach the IMAP server at {address}: {exc.strerror or exc}"
    except imaplib.IMAP4.error as exc:  # STARTTLS not offered or refused, a bad greeting
        problem = f"IMAP server {address}: {_said(exc)}"
    if conn is not None:
        with suppress(OSError):
            conn.shutdown()
    raise MailboxError(problem)


def quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    encoded = re.sub(r"&|[^\x20-\x7e]+", _utf7, folder)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _utf7(match: re.Match[str]) -> str:
    if match.group(0) == "&":
        return "&-"
    data = base64.b64encode(match.group(0).encode("utf-16-be")).decode("ascii")
    return "&" + data.rstrip("=").replace("/", ",") + "-"


def _text(data: list[Any]) -> str:
    """The text of a server's answer (bytes, or tuples of bytes)."""
    parts = [p[0] if isinstance(p, tuple) else p for p in data]
    return " ".join(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
                    for p in parts if p is not None)


def _said(exc: BaseException) -> str:
    """What an imaplib or socket error says, without the b'…' of imaplib's bytes."""
    said = exc.args[0] if exc.args else exc
    if isinstance(said, bytes):
        return said.decode("utf-8", "replace")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(said)
