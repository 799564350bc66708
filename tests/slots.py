"""Compiled parts as the build stores them, written by hand for tests of slot filling."""

from __future__ import annotations

import re

from mailer.render.renderer import SLOT_HEADER

KEY = "0123456789abcdef"
KEYED = re.compile(r"\[\[slot-[0-9a-f]{16}:")


def stored(body: str, key: str = KEY) -> str:
    """`body` with its `[[slot:name]]` markers under `key`, and the key line in front."""
    return SLOT_HEADER.format(key=key) + body.replace("[[slot:", f"[[slot-{key}:")


def body(part: str) -> str:
    """A stored compiled part without its key line."""
    key_line, _, rest = part.partition("\n")
    assert re.fullmatch(r"<!--slots:[0-9a-f]{16}-->", key_line), key_line
    return rest
