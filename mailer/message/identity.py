"""Who a message is: its Message-ID and its bounce address, both leading back to one delivery.

- The install id is random, made once per database (migration 0006) and kept there, so two
  installations (a test install, a restored backup, another region's) never share an id.
- A real message's Message-ID is `<send.recipient.install@list_domain>`: deterministic, so a
  message sent again after a crash keeps its id. A test send's ids carry a random part.
- The envelope sender (Return-Path) is `bounces+send-recipient-mac@domain` (VERP): a bounce
  names the send and the recipient it answers, and the HMAC makes the address unforgeable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Installation

_MESSAGE_ID = re.compile(r"<(\d+)\.(\w+)\.([0-9a-f]+)@[^>\s]+>")
_installs: dict[str, str] = {}


def install_id(engine: Engine) -> str:
    """This database's random install id (read once per process)."""
    url = str(engine.url)
    if url not in _installs:
        with session_scope(engine) as session:
            _installs[url] = session.exec(select(Installation.id)).one()
    return _installs[url]


def new_install_id() -> str:
    return secrets.token_hex(8)


def message_id(send_id: int, recipient: int | str, install: str, domain: str) -> str:
    """The Message-ID of a real send's message to one recipient."""
    return f"<{send_id}.{recipient}.{install}@{domain}>"


def test_message_id(label: str, install: str, domain: str) -> str:
    """A Message-ID no other message ever gets (test sends are not recorded)."""
    return f"<test.{secrets.token_hex(6)}.{label}.{install}@{domain}>"


@dataclass(frozen=True)
class Reference:
    """A send and a recipient that a bounce names."""

    send_id: int
    recipient: str


def parse_message_id(value: str, install: str) -> Reference | None:
    """The (send, recipient) of one of this installation's real Message-IDs, else None."""
    match = _MESSAGE_ID.fullmatch(value.strip())
    if not match or match.group(3) != install:
        return None
    return Reference(int(match.group(1)), match.group(2))


def _mac(settings: Settings, send_id: int, recipient: int | str) -> str:
    digest = hmac.new(settings.secret_key.encode(), f"verp:{send_id}:{recipient}".encode(),
                      hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()  # 16 characters, case-proof


def bounce_address(settings: Settings, send_id: int | None = None,
                   recipient: int | str | None = None) -> str:
    """The envelope sender: `bounces@domain`, or with a send and recipient its VERP form."""
    local, _, domain = settings.envelope_sender.partition("@")
    if send_id is None or recipient is None:
        return settings.envelope_sender
    return f"{local}+{send_id}-{recipient}-{_mac(settings, send_id, recipient)}@{domain}"


def parse_bounce_address(settings: Settings, address: str) -> Reference | None:
    """The (send, recipient) a VERP address names when its HMAC is right, else None."""
    local, _, domain = settings.envelope_sender.partition("@")
    match = re.fullmatch(rf"{re.escape(local)}\+(\d+)-(\w+)-([a-z2-7]{{16}})@{re.escape(domain)}",
                         address.strip().strip("<>"), re.IGNORECASE)
    if not match:
        return None
    send_id, recipient = int(match.group(1)), match.group(2)
    if not hmac.compare_digest(match.group(3).lower(), _mac(settings, send_id, recipient)):
        return None
    return Reference(send_id, recipient)
