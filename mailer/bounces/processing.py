"""Read bounce mail (Maildir, a folder of .eml files, or mbox): who bounced, hard, soft or
blocked, and mails to the List-Unsubscribe mailto address.

RFC 3464 delivery status notifications are read from their message/delivery-status part;
other bounce formats are left to GNU Mailman's detectors (`flufl.bounce`) for the address and
to `classify` for the class. Auto-replies are never bounces.

Only our own bounces count: a finding changes something only when it answers a message we
really sent to that address, found by the VERP bounce address it was sent to (see
`mailer.message.identity`) or by our Message-ID matched against a delivery. Anything else is
reported as unmatched and changes nothing, so a forged bounce cannot suppress anyone.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

from flufl.bounce import all_failures
from sqlalchemy import Engine
from sqlmodel import Session

from mailer import addresses
from mailer.bounces.classify import Kind, Verdict, classify
from mailer.bounces.deliveries import mark_bounced, sent_delivery
from mailer.bounces.mailto import unsubscribe_by_mail, unsubscribe_request
from mailer.bounces.suppressions import record_bounce
from mailer.config import Settings
from mailer.db import get_engine, session_scope
from mailer.errors import FileError, user_file
from mailer.message.identity import install_id, parse_bounce_address, parse_message_id
from mailer.models import Delivery, Subscriber

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
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
# Where a plain bounce starts quoting the original message; the cause is before it.
_QUOTE_START = re.compile(
    r"^(-+ ?(below this line|this is a copy|original message)|original message follows|"
    r"return-path:|received:)", re.IGNORECASE | re.MULTILINE)
# Where the bounce was delivered: our VERP address, as the receiving MTA recorded it.
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_SOFT_WORDS = ("mailbox full", "mailbox is full", "over quota", "quota exceeded", "temporar",
               "try again later")


@dataclass(frozen=True)
class Finding:
    """One address that bounced. `message_id` is that of the bounced message when the bounce
    quotes it, `envelope` the addresses the bounce was delivered to (our VERP address)."""

    source: str
    address: str
    kind: Kind
    status: str
    reason: str
    message_id: str | None
    envelope: tuple[str, ...] = ()


@dataclass(frozen=True)
class Processed:
    """One message: its findings with what was done, or why it was ignored.

    An action that starts with "already" changed nothing: the message (or a copy of it) was
    handled before."""

    source: str
    findings: tuple[Finding, ...]
    actions: tuple[str, ...]
    ignored: str = ""

    def lines(self) -> list[str]:
        """What the report says about this message, one line per finding."""
        if self.ignored:
            return [f"{self.source}: ignored ({self.ignored})"]
        if not self.findings:
            return [f"{self.source}: {'; '.join(self.actions)}"]
        return [f"{self.source}: {f.address} {f.kind} {f.status} ({f.reason}) -> {action}"
                for f, action in zip(self.findings, self.actions, strict=True)]

    def document(self) -> dict[str, Any]:
        """The message as JSON-ready data: a bounce with its findings (each with its address
        and what was done), an unsubscribe mail with what was done, or why it was ignored."""
        outcome = "ignored" if self.ignored else "bounce" if self.findings else "unsubscribe"
        return {"source": self.source, "outcome": outcome,
                "findings": [{"address": f.address, "kind": f.kind, "status": f.status,
                              "reason": f.reason, "message_id": f.message_id, "action": action}
                             for f, action in zip(self.findings,
                                                  self.actions if self.findings else (),
                                                  strict=True)],
                "action": "; ".join(self.actions) if outcome == "unsubscribe" else "",
                "reason": self.ignored}


@dataclass(frozen=True)
class Tally:
    """A run counted: findings by class (those handled before only as `already_handled`),
    bounces of no message of ours, unsubscribe mails, ignored messages."""

    messages: int
    hard: int
    soft: int
    blocked: int
    unmatched: int
    unsubscribe_mails: int
    ignored: int
    already_handled: int


def tally(results: list[Processed]) -> Tally:
    done = [(f, a) for r in results if r.findings
            for f, a in zip(r.findings, r.actions, strict=True)]
    kinds = [f.kind for f, a in done if not a.startswith("already")]
    mails = [r.actions[0] for r in results if not r.findings and not r.ignored and r.actions]
    return Tally(messages=len(results), hard=kinds.count("hard"), soft=kinds.count("soft"),
                 blocked=kinds.count("blocked"),
                 unmatched=sum(a.startswith("unmatched") for _, a in done),
                 unsubscribe_mails=sum(not a.startswith("already") for a in mails),
                 ignored=sum(bool(r.ignored) for r in results),
                 already_handled=sum(a.startswith("already") for _, a in done)
                 + sum(a.startswith("already") for a in mails))


def summary(results: list[Processed]) -> str:
    """One line for a run: messages, findings by class, unsubscribe mails, ignored ones. What
    was handled before (and so changed nothing now) counts only as "already handled"."""
    t = tally(results)
    return (f"{t.messages} messages: {t.hard} hard, {t.soft} soft, {t.blocked} blocked "
            f"({t.unmatched} unmatched), {t.unsubscribe_mails} unsubscribe mails, "
            f"{t.ignored} ignored"
            + (f", {t.already_handled} already handled" if t.already_handled else ""))


def process_document(results: list[Processed], dry_run: bool) -> dict[str, Any]:
    """What `mailer bounces process --json` prints: the run counted and every message."""
    return {"dry_run": dry_run, "summary": asdict(tally(results)),
            "messages": [r.document() for r in results]}


class BounceHandler:
    """Applies findings to the database. Only bounces of our own deliveries count; each is
    recorded once, so reading the same mailbox again changes nothing."""

    def __init__(self, settings: Settings, session: Session, engine: Engine,
                 soft_limit: int | None = None):
        self.settings, self.session = settings, session
        self.soft_limit = soft_limit or settings.bounce_soft_limit
        self.install = install_id(engine)

    def process(self, source: str, message: EmailMessage) -> Processed:
        """One message: an unsubscribe by mail, or a bounce with its findings."""
        request = unsubscribe_request(self.settings, message)
        if request is not None:
            return Processed(source, (), (unsubscribe_by_mail(self.settings, self.session,
                                                              *request),))
        findings, ignored = findings_in(message, source)
        return Processed(source, tuple(findings), tuple(map(self.bounce, findings)), ignored)

    def bounce(self, finding: Finding) -> str:
        matched = self._match(finding)
        if matched is None:
            return "unmatched: not a bounce of a message we sent to this address; nothing changed"
        delivery, subscriber = matched
        verdict = Verdict(finding.kind, finding.status, finding.reason)
        key = hashlib.sha256(f"dsn\0{delivery.id}\0{finding.kind}".encode()).hexdigest()
        action = record_bounce(self.session, key=key, address=subscriber.email, verdict=verdict,
                               delivery_id=delivery.id, soft_limit=self.soft_limit)
        if action != "already recorded":
            mark_bounced(self.session, delivery, f"{finding.status} {finding.reason}",
                         finding.kind, finding.status[:12])
            action += f"; delivery {delivery.id} of send {delivery.send_id} bounced"
        return action

    def _match(self, finding: Finding) -> tuple[Delivery, Subscriber] | None:
        """The delivery a finding answers and its subscriber, or None when it answers none of
        ours. By VERP token the recipient is certain (a forwarded address may bounce); by
        Message-ID the bounced address must also be the one we sent to."""
        verp = next(filter(None, (parse_bounce_address(self.settings, a)
                                  for a in finding.envelope)), None)
        reference = verp or parse_message_id(finding.message_id or "", self.install)
        if reference is None:
            return None
        row = sent_delivery(self.session, reference.send_id, reference.recipient)
        if row is None or (verp is None and addresses.normalise(row[1].email) != finding.address):
            return None
        return row


def read_messages(path: Path) -> Iterator[tuple[str, EmailMessage]]:
    """(source name, message) from a Maildir, a plain folder of messages, or an mbox file."""
    if not path.exists():
        raise FileError(f"cannot read {path}: no such file or folder")
    if path.is_dir():
        folders = [path / sub for sub in ("new", "cur") if (path / sub).is_dir()] or [path]
        for folder in folders:
            for file in sorted(f for f in folder.iterdir() if f.is_file()):
                yield file.name, parse_message(file.read_bytes())
    else:
        box = mailbox.mbox(path, create=False)
        try:
            for n, key in enumerate(box.keys(), 1):
                yield f"{path.name}#{n}", parse_message(box.get_bytes(key))
        finally:
            box.close()


def parse_message(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def _inner(part: Message) -> list[Message]:
    """The parts inside a multipart or message/* part (the blocks of a delivery status, the
    quoted original); a part that holds text has none."""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def findings_in(message: EmailMessage, source: str) -> tuple[list[Finding], str]:
    """The findings in one message, or none and why it is not a bounce."""
    original = _original_message_id(message)
    envelope = tuple(a for header in _ENVELOPE_HEADERS
                     for a in _addresses_in(" ".join(map(str, message.get_all(header, [])))))
    reports = [part for part in message.walk()
               if part.get_content_type() == "message/delivery-status"]
    if reports:
        findings = [f for report in reports
                    for f in _from_report(report, source, original, envelope)]
        return findings, "" if findings else "delivery report without failures"
    if not _is_daemon_mail(message):
        return [], "auto-reply" if _is_auto_reply(message) else "not a bounce"
    findings = _from_plain_text(message, source, original, envelope)
    return findings, "" if findings else "bounce without a recognisable recipient or cause"


def _from_report(report: EmailMessage, source: str, original: str | None,
                 envelope: tuple[str, ...]) -> Iterator[Finding]:
    """Per-recipient blocks of a message/delivery-status part with Action: failed."""
    for block in _inner(report)[1:]:
        action = str(block.get("Action", "")).strip().lower()
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        status = str(block.get("Status", ""))
        if action != "failed" or not _STATUS.search(status) or "@" not in recipient:
            continue  # delayed, delivered, relayed: not (yet) a bounce
        reason = " ".join(str(block.get("Diagnostic-Code", "")).split()).removeprefix("smtp;")
        verdict = classify(reason.strip(), status)
        address = addresses.normalise(recipient.rpartition(";")[2].strip().strip("<>"))
        yield Finding(source, address, verdict.kind, verdict.enhanced,
                      verdict.answer or verdict.enhanced, original, envelope)


def _addresses_in(text: str) -> list[str]:
    """The valid addresses in free text, normalised, in order."""
    found = (addresses.normalise(word.strip(".'")) for word in _AT_WORD.findall(text))
    return [a for a in found if addresses.problem(a) is None]


def _from_plain_text(message: EmailMessage, source: str, original: str | None,
                     envelope: tuple[str, ...]) -> list[Finding]:
    """Bounces without a report part: flufl.bounce finds who bounced, permanently or not;
    the notification text before the quoted original says why."""
    temporary, permanent = all_failures(message)
    notice = _QUOTE_START.split(_text(message), maxsplit=1)[0]
    verdict = classify(notice)
    lines = [" ".join(line.split()) for line in notice.splitlines()]
    reason = next((line for line in lines if verdict.enhanced and verdict.enhanced in line),
                  next((line for line in lines
                        if any(w in line.lower() for w in _SOFT_WORDS)), "")) or verdict.answer[:200]
    found = [(addresses.normalise(a.decode(errors="replace")), a in temporary)
             for a in sorted(temporary | permanent)]
    return [Finding(source, address, "soft" if later else verdict.kind, verdict.enhanced, reason,
                    original, envelope) for address, later in found]


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return _content(body) if body is not None else ""


def _content(part: Message) -> str:
    """A text part's text; one in a charset Python does not know is read as UTF-8 (mail
    servers' notices are ASCII), rather than left unread."""
    try:
        return part.get_content()  # type: ignore[attr-defined]
    except LookupError:
        data = part.get_payload(decode=True)
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else ""


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
            found = str(_inner(part)[0].get("Message-ID", "")).strip()
        elif part.get_content_maintype() == "text":
            match = _MESSAGE_ID.search(_content(part))
            found = match.group(1) if match else ""
        else:
            continue
        if found and found != own:
            return found
    return None


def process(settings: Settings, path: Path, dry_run: bool = False,
            soft_limit: int | None = None) -> list[Processed]:
    """Classify every message under `path` and apply it: bounces of our deliveries by class,
    mails to the unsubscribe address by their token. `dry_run` reports and keeps nothing;
    `soft_limit` overrides the bounce_soft_limit setting."""
    engine = get_engine(settings)
    with session_scope(engine, write=True) as session, user_file(path):
        handler = BounceHandler(settings, session, engine, soft_limit)
        results = [handler.process(source, message) for source, message in read_messages(path)]
        if dry_run:
            session.rollback()
    return results
