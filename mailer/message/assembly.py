"""One personalised message, built fast: everything constant is encoded once per (send, variant).

The words, from the send down to one recipient:
- `MessageCommon`: what every message of a send shares (subject, topic, greetings);
- `MessageAssembler`: that encoded once, the header block, the MIME skeleton and the DKIM key;
  `build` only encodes the recipient's own parts (To, Message-ID, Date, List-Unsubscribe, the
  two bodies) and joins bytes;
- `MessageTemplate`: one variant of the send, its bodies encoded once around their slots;
  `message` fills in one recipient's values;
- `OutgoingMessage` (mailer.transport): the result, the exact bytes (CRLF) that DKIM signed and
  that every transport writes unchanged, with the envelope.

A send builds 100,000 messages: one template per variant, one outgoing message per recipient.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from functools import partial

from mailer import addresses, taxonomy
from mailer.config import Settings
from mailer.errors import DataError
from mailer.message.encoding import EncodedBody, quoted_printable
from mailer.message.identity import bounce_address, message_id, test_message_id
from mailer.message.signing import DkimSigner
from mailer.render.renderer import CompiledVariant, greeting, slot_value
from mailer.transport.transports import OutgoingMessage

# Line breaks of every kind and other control characters: in a header they could start a new
# header line (header injection), so a display name never keeps them.
_CONTROL = {code: " " for code in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029]}
_URL = re.compile(r"https://[!-~]+")  # visible ASCII only: no space, CR, LF
_TOKEN = re.compile(r"[A-Za-z0-9_.-]*")  # itsdangerous' URL-safe alphabet
_UTF8_QP = Charset("utf-8")
_UTF8_QP.header_encoding = QP  # readable encoded words: =?utf-8?q?Jos=C3=A9?=


class MessageError(DataError, ValueError):
    """A recipient value that cannot be put into a message safely; the recipient is skipped."""


def clean_name(name: str) -> str:
    """A display name without control characters or line breaks, whitespace collapsed."""
    return " ".join(name.translate(_CONTROL).split())


def format_address(name: str, address: str) -> str:
    """`Name <address>` for a header: names quoted or RFC 2047-encoded, addresses checked."""
    problem = addresses.problem(address)
    if problem:
        raise MessageError(problem)
    name = clean_name(name)
    if name.isascii():
        return formataddr((name, address))
    encoded = Header(name, _UTF8_QP, header_name="To").encode(linesep="\r\n")
    return f"{encoded} <{address}>"


class MessageAssembler:
    """Builds the messages of one (send, variant); constant headers are encoded once here."""

    def __init__(self, settings: Settings, *, subject: str, list_slug: str, list_name: str,
                 send_id: int, install: str, test: bool = False,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.settings, self.send_id, self.install, self.test = settings, send_id, install, test
        self.clock, self.domain, self.topic = clock, settings.list_domain, list_slug
        self._mailto = f"mailto:{settings.unsubscribe_address}?subject=unsubscribe"
        self.signer = DkimSigner.from_settings(settings)
        boundary = f"=_mailer_{secrets.token_hex(12)}"

        def encoded(*pairs: tuple[str, object]) -> bytes:
            head = EmailMessage(policy=SMTP)
            for name, value in pairs:
                head[name] = value
            return bytes(head).removesuffix(b"\r\n")  # the stdlib does the RFC 2047 folding

        self._from = encoded(
            ("From", Address(settings.sender_name, addr_spec=settings.sender_email)),
            ("Reply-To", settings.reply_to),
        )
        self._subject = encoded(("Subject", f"[TEST] {subject}" if test else subject))
        self._list = encoded(("List-Id", f"{list_name} <{list_slug}.{settings.list_domain}>"))
        self._tail = (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/alternative; boundary="' + boundary.encode() + b'"\r\n'
            b"\r\n"
        )
        part = (b'Content-Type: text/%s; charset="utf-8"\r\n'
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        self._text_head = b"--" + boundary.encode() + b"\r\n" + part % b"plain"
        self._html_head = b"--" + boundary.encode() + b"\r\n" + part % b"html"
        self._end = b"--" + boundary.encode() + b"--\r\n"

    def build(self, *, address: str, name: str, html: str, text: str, unsubscribe_url: str,
              recipient_id: int | str, unsubscribe_token: str = "") -> OutgoingMessage:
        """One finished message for one recipient; raises MessageError on unusable values."""
        return self.build_encoded(address=address, name=name, html=quoted_printable(html),
                                  text=quoted_printable(text), unsubscribe_url=unsubscribe_url,
                                  recipient_id=recipient_id, unsubscribe_token=unsubscribe_token)

    def build_encoded(self, *, address: str, name: str, html: bytes, text: bytes,
                      unsubscribe_url: str, recipient_id: int | str,
                      unsubscribe_token: str = "") -> OutgoingMessage:
        """`build` with bodies already quoted-printable encoded (see EncodedBody).

        `unsubscribe_token` (the one-click token) goes into the subject of the mailto
        unsubscribe, so a mail to that address unsubscribes exactly this recipient; a test
        send has none, and its mailto changes nothing.
        """
        if not _URL.fullmatch(unsubscribe_url) or any(c in unsubscribe_url for c in "<>,"):
            raise MessageError(f"not a usable unsubscribe URL: {unsubscribe_url!r}")
        if not _TOKEN.fullmatch(unsubscribe_token):
            raise MessageError(f"not a usable unsubscribe token: {unsubscribe_token!r}")
        mailto = (f"{self._mailto}%20{self.topic}%20{unsubscribe_token}" if unsubscribe_token
                  else self._mailto)
        if self.test:
            mid = test_message_id(str(recipient_id), self.install, self.domain)
            sender = bounce_address(self.settings)
        else:
            mid = message_id(self.send_id, recipient_id, self.install, self.domain)
            sender = bounce_address(self.settings, self.send_id, recipient_id)
        data = b"".join((
            self._from,
            b"To: ", format_address(name, address).encode(), b"\r\n",
            self._subject,
            b"Date: ", format_datetime(self.clock()).encode(), b"\r\n",
            b"Message-ID: ", mid.encode(), b"\r\n",
            self._list,
            b"List-Unsubscribe: <", unsubscribe_url.encode(), b">,\r\n <", mailto.encode(),
            b">\r\n",
            self._tail,
            self._text_head, text,
            self._html_head, html,
            self._end,
        ))
        if self.signer:
            data = self.signer.sign(data) + data
        return OutgoingMessage(sender, address, data, mid)


@dataclass(frozen=True)
class MessageCommon:
    """What every message of a send shares: subject, topic and greetings."""

    send_id: int
    install: str
    subject: str
    topic: str
    greeting: str
    greeting_named: str
    test: bool = False


class MessageTemplate:
    """The messages of one variant of a send: headers and bodies prepared once (with a
    MessageAssembler); `message` fills in one recipient's copy, an OutgoingMessage."""

    def __init__(self, settings: Settings, common: MessageCommon, html: str, text: str,
                 online_url: str):
        compiled = CompiledVariant(html, text)
        self.html = EncodedBody(compiled.html_parts, partial(slot_value, html=True))
        self.text = EncodedBody(compiled.text_parts)
        self.online_url = online_url
        self.greeting, self.greeting_named = common.greeting, common.greeting_named
        self.assembler = MessageAssembler(settings, subject=common.subject,
                                          list_slug=common.topic,
                                          list_name=taxonomy.TOPICS[common.topic],
                                          send_id=common.send_id, install=common.install,
                                          test=common.test)

    def message(self, *, recipient_id: int | str, address: str, name: str, unsubscribe: str,
                preferences: str, token: str = "") -> OutgoingMessage:
        slots = {"greeting": greeting(self.greeting, self.greeting_named, name),
                 "unsubscribe_url": unsubscribe,
                 "preferences_url": preferences, "webversion_url": self.online_url}
        return self.assembler.build_encoded(
            address=address, name=name, html=self.html.fill(slots), text=self.text.fill(slots),
            unsubscribe_url=unsubscribe, recipient_id=recipient_id, unsubscribe_token=token)
