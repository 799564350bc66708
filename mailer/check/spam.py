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


def verdict(message: bytes, program: str) -> SpamVerdict:
    done = subprocess.run([program, "-L", "-x"], input=message, capture_output=True,
                          timeout=TIMEOUT, check=False)
    match = _STATUS.search(done.stdout)
    if match is None:
        raise SpamCheckError(f"spamassassin gave no X-Spam-Status (exit {done.returncode}): "
                             f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    tests = tuple(t for t in re.split(r"[\s,]+", (match.group(4) or b"").decode()) if t)
    return SpamVerdict(match.group(1) == b"Yes", float(match.group(2)), float(match.group(3)),
                       tests)
