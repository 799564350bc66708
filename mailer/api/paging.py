"""Cursor pagination: a page of at most `limit` items and an opaque cursor for the next one.

The cursor is the last item's key, signed with the site's secret key and base64url-encoded: a
client cannot forge one to jump elsewhere, and keys move on strictly, so walking the pages from
the first to the last (next_cursor null) sees every item that was there throughout exactly once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from mailer.api.problems import Problem
from mailer.api.spec import Param
from mailer.api.validation import Schema, array, nullable
from mailer.config import Settings

SIGNATURE = 12  # bytes of HMAC-SHA256 kept
MAX_LIMIT = 500
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100,
                        "description": f"Items per page (at most {MAX_LIMIT})."})
CURSOR = Param("cursor", {"type": "string", "minLength": 1, "maxLength": 200,
                          "description": "The `next_cursor` of the page before; none for the "
                                         "first page."})


def _signature(settings: Settings, kind: str, key: str) -> bytes:
    return hmac.new(settings.secret_key.encode(), f"cursor:{kind}:{key}".encode(),
                    hashlib.sha256).digest()[:SIGNATURE]


def encode(settings: Settings, kind: str, key: str) -> str:
    raw = key.encode() + _signature(settings, kind, key)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(settings: Settings, kind: str, cursor: str | None) -> str | None:
    """The key a cursor of this kind carries; None for no cursor. One this API did not make
    for this list names no page: 404."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = raw[:-SIGNATURE].decode()
    except (binascii.Error, ValueError):
        key, raw = "", b""
    if not key or not hmac.compare_digest(raw[-SIGNATURE:], _signature(settings, kind, key)):
        raise Problem(404, "no page of this list has this cursor",
                      [("cursor", "is not a next_cursor of this list")])
    return key


def page_schema(item: Schema, description: str) -> Schema:
    return {"type": "object", "required": ["data", "next_cursor"], "description": description,
            "properties": {"data": array(item),
                           "next_cursor": nullable({"type": "string", "description":
                                                    "Pass as `cursor` for the next page; null "
                                                    "on the last page."})}}
