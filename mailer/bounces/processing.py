"""Read bounce mail (Maildir, a folder of .eml files, or mbox) and say who bounced, hard or soft.

RFC 3464 delivery status notifications are read from their message/delivery-status part; plain
bounces from mail daemons by a few common phrases. Auto-replies ("Afwezigheidsassistent") are
never bounces. What happens to a bouncing address is up to a `BounceHandler`: `DatabaseHandler`
records it, `MemoryHandler` only reports (tests and dry runs).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol

from sqlmodel import Session, func, select

from mailer import addresses
from mailer.errors import FileError, user_file
from mailer.models import Bounce, Delivery
from mailer.send.messages import parse_message_id
from mailer.subscribers.subscriptions import hash_address, suppress

Kind = Literal["hard", "soft"]

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])\d\d\b")
_AT_WORD = re.compile(r"[^\s<>()\[\]\",;:]+@[^\s<>()\[\]\",;:]+")  # candidates, checked below
_MESSAGE_ID = re.compile(r"^Message-ID:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|has failed|failure)|mail delivery failed|"
    r"returned mail|failure notice|onbestelbaar|niet bezorgd", re.IGNORECASE)
_AUTO_REPLY_SUBJECT = re.compile(
    r"automatisch antwoord|afwezig|out of (the )?office|automatic reply|auto(matic)?[- ]?reply",
    re.IGNORECASE)
_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")
# Where a plain bounce starts quoting the original message; addresses after it are not findings.
_QUOTE_START = re.compile(
    r"^(-+ ?(below this line|this is a copy|original message)|original message follows|"
    r"return-path:|received:)", re.IGNORECASE | re.MULTILINE)
_HARD_PHRASES = ("user unknown", "unknown user", "no such user", "does not exist",
                 "mailbox unavailable", "address rejected", "delivery has failed",
                 "permanent error", "recipient not found")
_SOFT_PHRASES = ("mailbox full", "mailbox is full", "over quota", "quota exceeded",
                 "temporar", "try again later")


@dataclass(frozen=True)
class Finding:
    """One address that bounced. `message_id` is that of the bounced message, when the bounce
    quotes it: ours encode (send, recipient), so it leads back to the Delivery row."""

    source: str
    address: str
    kind: Kind
    status: str
    reason: str
    message_id: str | None


@dataclass(frozen=True)
class Processed:
    """One bounce message: its findings with what the handler did, or why it was ignored."""

    source: str
    findings: tuple[Finding, ...]
    actions: tuple[str, ...]
    ignored: str = ""


class BounceHandler(Protocol):
    """What to do with a bouncing address; each method returns what it did, for the report."""

    def hard(self, finding: Finding) -> str: ...

    def soft(self, finding: Finding) -> str: ...


class MemoryHandler:
    """Suppress on a hard bounce, and after `soft_limit` soft ones; kept in memory only.

    Used by tests and by `--dry-run`; DatabaseHandler follows the same rules.
    """

    def __init__(self, soft_limit: int = 3):
        self.soft_limit = soft_limit
        self.suppressed: dict[str, str] = {}
        self.soft_counts: Counter[str] = Counter()

    def hard(self, finding: Finding) -> str:
        return self._suppress(finding.address, finding.reason)

    def soft(self, finding: Finding) -> str:
        self.soft_counts[finding.address] += 1
        count = self.soft_counts[finding.address]
        if count >= self.soft_limit:
            return self._suppress(finding.address, f"{count} soft bounces, last: {finding.reason}")
        return f"soft bounce {count} of {self.soft_limit}"

    def _suppress(self, address: str, reason: str) -> str:
        if address in self.suppressed:
            return "already suppressed"
        self.suppressed[address] = reason
        return "suppressed"


class DatabaseHandler:
    """The same rules against the database: a hard bounce suppresses the address ("bounced")
    and marks its Delivery bounced; soft bounces are counted per address and suppress at
    `soft_limit`. Every finding is recorded once, so reading the same mailbox again changes
    nothing."""

    def __init__(self, session: Session, soft_limit: int = 3):
        self.session, self.soft_limit = session, soft_limit

    def hard(self, finding: Finding) -> str:
        delivery = self._record(finding)
        if delivery is False:
            return "already recorded"
        if delivery is not None:
            delivery.status, delivery.error = "bounced", f"{finding.status} {finding.reason}"
            self.session.add(delivery)
        suppress(self.session, finding.address, "bounced")
        return "suppressed" + (f", delivery {delivery.id} bounced" if delivery else "")

    def soft(self, finding: Finding) -> str:
        if self._record(finding) is False:
            return "already recorded"
        count = self.session.exec(select(func.count()).where(
            Bounce.address_hash == hash_address(finding.address), Bounce.kind == "soft")).one()
        if count >= self.soft_limit:
            suppress(self.session, finding.address, "bounced")
            return f"suppressed after {count} soft bounces"
        return f"soft bounce {count} of {self.soft_limit}"

    def _record(self, finding: Finding) -> Delivery | None | Literal[False]:
        """Store the finding; its Delivery (None when the bounce names none of ours), or False
        when this finding was recorded before."""
        key = hashlib.sha256("\0".join((finding.message_id or finding.source, finding.address,
                                         finding.kind)).encode()).hexdigest()
        if self.session.get(Bounce, key) is not None:
            return False
        ours = parse_message_id(finding.message_id or "")
        delivery = self.session.exec(select(Delivery).where(
            Delivery.send_id == ours[0], Delivery.subscriber_id == ours[1])).first() if ours else None
        self.session.add(Bounce(key=key, address_hash=hash_address(finding.address),
                                kind=finding.kind, status=finding.status[:12],
                                delivery_id=delivery.id if delivery else None))
        self.session.flush()
        return delivery


def kind_of(status: str) -> Kind:
    """5.x.x is hard, 4.x.x soft; a full mailbox (x.2.2) is soft even as 5.2.2, since it empties."""
    return "soft" if status.startswith("4") or status.endswith(".2.2") else "hard"


def read_messages(path: Path) -> Iterator[tuple[str, EmailMessage]]:
    """(source name, message) from a Maildir, a plain folder of messages, or an mbox file."""
    if not path.exists():
        raise FileError(f"cannot read {path}: no such file or folder")
    if path.is_dir():
        folders = [path / sub for sub in ("new", "cur") if (path / sub).is_dir()] or [path]
        for folder in folders:
            for file in sorted(f for f in folder.iterdir() if f.is_file()):
                yield file.name, _parse(file.read_bytes())
    else:
        box = mailbox.mbox(path, create=False)
        try:
            for n, key in enumerate(box.keys(), 1):
                yield f"{path.name}#{n}", _parse(box.get_bytes(key))
        finally:
            box.close()


def _parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def classify(message: EmailMessage, source: str) -> tuple[list[Finding], str]:
    """The findings in one message, or none and why it is not a bounce."""
    original = _original_message_id(message)
    reports = [part for part in message.walk()
               if part.get_content_type() == "message/delivery-status"]
    if reports:
        findings = [f for report in reports for f in _from_report(report, source, original)]
        return findings, "" if findings else "delivery report without failures"
    if not _is_daemon_mail(message):
        return [], "auto-reply" if _is_auto_reply(message) else "not a bounce"
    finding = _from_plain_text(message, source, original)
    return ([finding], "") if finding else ([], "bounce without a recognisable recipient or cause")


def _from_report(report: EmailMessage, source: str, original: str | None) -> Iterator[Finding]:
    """Per-recipient blocks of a message/delivery-status part with Action: failed."""
    for block in report.get_payload()[1:]:
        action = str(block.get("Action", "")).strip().lower()
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        match = _STATUS.search(str(block.get("Status", "")))
        if action != "failed" or not match or "@" not in recipient:
            continue  # delayed, delivered, relayed: not (yet) a bounce
        status = match.group(0)
        reason = " ".join(str(block.get("Diagnostic-Code", "")).split()).removeprefix("smtp;")
        address = recipient.rpartition(";")[2].strip().strip("<>").lower()
        yield Finding(source, address, kind_of(status), status, reason.strip() or status, original)


def _addresses_in(text: str) -> list[str]:
    """The valid addresses in free text, normalised, in order."""
    found = (addresses.normalise(word.strip(".'")) for word in _AT_WORD.findall(text))
    return [a for a in found if addresses.problem(a) is None]


def _from_plain_text(message: EmailMessage, source: str, original: str | None) -> Finding | None:
    """Heuristics for bounces without a report part: the notification text before the quote."""
    notice = _QUOTE_START.split(_text(message), maxsplit=1)[0]
    ours = {a for field in ("From", "To") for a in _addresses_in(str(message[field]))}
    failed = str(message.get("X-Failed-Recipients", "")) or notice
    bounced = [a for a in _addresses_in(failed) if a not in ours]
    lowered = notice.lower()
    status_match = _STATUS.search(notice)
    code_match = _SMTP_CODE.search(notice)
    if status_match:
        status = status_match.group(0)
    elif code_match:
        status = f"{code_match.group(1)}.0.0"
    elif any(phrase in lowered for phrase in _SOFT_PHRASES):
        status = "4.0.0"
    elif any(phrase in lowered for phrase in _HARD_PHRASES):
        status = "5.0.0"
    else:
        return None
    if not bounced:
        return None
    phrases = [p for p in (*_SOFT_PHRASES, *_HARD_PHRASES) if p in lowered]
    reason = next((line.strip() for line in notice.splitlines() if status in line),
                  phrases[0] if phrases else status)
    return Finding(source, bounced[0], kind_of(status), status, reason, original)


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return body.get_content() if body is not None else ""


def _is_daemon_mail(message: EmailMessage) -> bool:
    return bool(_DAEMON.search(str(message.get("From", "")))
                or _BOUNCE_SUBJECT.search(str(message.get("Subject", "")))
                or "X-Failed-Recipients" in message)


def _is_auto_reply(message: EmailMessage) -> bool:
    return (str(message.get("Auto-Submitted", "no")).lower() != "no"
            or any(h in message for h in _AUTO_REPLY_HEADERS)
            or str(message.get("Precedence", "")).lower() == "auto_reply"
            or bool(_AUTO_REPLY_SUBJECT.search(str(message.get("Subject", "")))))


def _original_message_id(message: EmailMessage) -> str | None:
    """The Message-ID of the message that bounced, from the quoted original or its headers."""
    own = str(message.get("Message-ID", "")).strip()
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            found = str(part.get_payload(0).get("Message-ID", "")).strip()
        elif part.get_content_maintype() == "text":
            match = _MESSAGE_ID.search(part.get_content())
            found = match.group(1) if match else ""
        else:
            continue
        if found and found != own:
            return found
    return None


def process(path: Path, handler: BounceHandler) -> list[Processed]:
    """Classify every message under `path` and hand each finding to `handler`."""
    results = []
    with user_file(path):
        for source, message in read_messages(path):
            findings, ignored = classify(message, source)
            actions = tuple(getattr(handler, f.kind)(f) for f in findings)
            results.append(Processed(source, tuple(findings), actions, ignored))
    return results
