"""SpamAssassin's verdict on one finished message, when `spamassassin` is installed.

Runs with local tests only (`-L`: no DNS or network lists) and without user preferences (`-x`),
so the verdict depends on the message alone and the same message always scores the same.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from mailer.errors import ContentError

_STATUS = re.compile(rb"^X-Spam-Status: (Yes|No), score=(-?[\d.]+) required=([\d.]+)"
                     rb"(?: tests=(.*?))?(?: autolearn=| version=|\r?\n\S)", re.M | re.S)
TIMEOUT = 120
_MBOX_FROM = b"From check@localhost Mon Nov 30 12:00:00 2026\n"
_NUMBER = re.compile(rb"^X-Mailer-Check: (\d+)", re.M)
_FROM_LINE = re.compile(rb"^(>*From )", re.M)  # mbox escaping of body lines starting "From "


@dataclass(frozen=True)
class SpamVerdict:
    spam: bool
    score: float
    required: float
    tests: tuple[str, ...]


class SpamCheckError(ContentError):
    """spamassassin ran but gave no verdict."""


def spamassassin() -> str | None:
    return shutil.which("spamassassin")


def verdicts(messages: list[bytes], program: str) -> list[SpamVerdict]:
    """One verdict per message, in order; all messages go through one spamassassin process
    (as an mbox), since loading its rules takes most of the time. SpamAssassin may reorder an
    mbox, so each message carries a numbered header that finds its verdict again."""
    mbox = b"".join(_MBOX_FROM + b"X-Mailer-Check: %d\r\n" % n + _FROM_LINE.sub(rb">\1", message)
                    + b"\n" for n, message in enumerate(messages))
    done = subprocess.run([program, "-L", "-x", "--mbox"], input=mbox, capture_output=True,
                          timeout=TIMEOUT, check=False)
    found: dict[int, SpamVerdict] = {}
    for chunk in done.stdout.split(b"\n" + _MBOX_FROM.split(b" ")[0] + b" "):
        number, status = _NUMBER.search(chunk), _STATUS.search(chunk)
        if number and status:
            tests = (status.group(4) or b"").decode()
            found[int(number.group(1))] = SpamVerdict(
                status.group(1) == b"Yes", float(status.group(2)), float(status.group(3)),
                tuple(t for t in re.split(r"[\s,]+", tests) if t))
    if sorted(found) != list(range(len(messages))):
        raise SpamCheckError(f"spamassassin gave {len(found)} verdicts for {len(messages)} messages "
                             f"(exit {done.returncode}): "
                             f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    return [found[n] for n in range(len(messages))]
