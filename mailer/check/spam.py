"""SpamAssassin's verdict on one finished message, when `spamassassin` is installed.

Runs with local tests only (`-L`: no DNS or network lists) and without user preferences (`-x`),
so the verdict depends on the message alone and the same message always scores the same.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_STATUS = re.compile(rb"^X-Spam-Status: (Yes|No), score=(-?[\d.]+) required=([\d.]+)"
                     rb"(?: tests=(.*?))?(?: autolearn=| version=|\r?\n\S)", re.M | re.S)
TIMEOUT = 120
_MBOX_FROM = b"From check@localhost Mon Nov 30 12:00:00 2026\n"
_FROM_LINE = re.compile(rb"^(>*From )", re.M)  # mbox escaping of body lines starting "From "


@dataclass(frozen=True)
class SpamVerdict:
    spam: bool
    score: float
    required: float
    tests: tuple[str, ...]


class SpamCheckError(Exception):
    """spamassassin ran but gave no verdict."""


def spamassassin() -> str | None:
    return shutil.which("spamassassin")


def verdicts(messages: list[bytes], program: str) -> list[SpamVerdict]:
    """One verdict per message, in order; all messages go through one spamassassin process
    (as an mbox), since loading its rules takes most of the time."""
    mbox = b"".join(_MBOX_FROM + _FROM_LINE.sub(rb">\1", message) + b"\n" for message in messages)
    done = subprocess.run([program, "-L", "-x", "--mbox"], input=mbox, capture_output=True,
                          timeout=TIMEOUT, check=False)
    found = list(_STATUS.finditer(done.stdout))
    if len(found) != len(messages):
        raise SpamCheckError(f"spamassassin gave {len(found)} verdicts for {len(messages)} messages "
                             f"(exit {done.returncode}): "
                             f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    return [SpamVerdict(match.group(1) == b"Yes", float(match.group(2)), float(match.group(3)),
                        tuple(t for t in re.split(r"[\s,]+", (match.group(4) or b"").decode()) if t))
            for match in found]
