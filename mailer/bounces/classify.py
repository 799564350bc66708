"""What a refusal means (RFC 3463): hard, soft or blocked. One rule for RCPT-time answers and
for bounces, so an address is treated the same however its server said no.

- **hard**: the address does not exist (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10, 5.7.13, or the
  words for it): suppress it now.
- **soft**: the address exists but cannot take mail now (x.2.2, 5.2.1, 5.2.3, 5.3.4, every
  4.x.x): suppress after repeats.
- **blocked**: policy, reputation, authentication or content (5.7.x but 5.7.13, including the
  RFC 7372 codes 5.7.20–5.7.29; 5.1.7 and 5.1.8 name *our* sender address): a problem of our
  server or reputation, never of the recipient. Nobody is suppressed; the operator is alarmed.
- anything unknown is soft: repeats still suppress, one odd answer does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["hard", "soft", "blocked"]

HARD = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.7.13"})
SENDER_PROBLEMS = frozenset({"5.1.7", "5.1.8"})  # our envelope sender was refused

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_TEMPORARY = re.compile(r"^\s*4\d\d\b")
_HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient|address)|does not exist|"
    r"recipient not found|mailbox not found|recipient address rejected|invalid recipient|"
    r"unknown recipient|address unknown|delivery has failed to these recipients",
    re.IGNORECASE)
_BLOCKED_WORDS = re.compile(
    r"\bblock|spam|black ?list|deny ?list|reputation|\bpolicy\b|dmarc|\bspf\b|\bdkim\b|"
    r"not authori[sz]ed|poor reputation|listed (at|by|on)", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """The class of one answer, its enhanced status code ("" when it had none) and the
    answer itself, whitespace collapsed."""

    kind: Kind
    enhanced: str
    answer: str


def classify(answer: str, status: str = "") -> Verdict:
    """Classify a server's answer (`550 5.1.1 <a@b>: User unknown`) or a DSN's Diagnostic-Code;
    `status` is a DSN's Status field, which wins over what the text says."""
    text = " ".join(answer.split())
    match = _ENHANCED.search(status) or _ENHANCED.search(text)
    enhanced = match.group(0) if match else ""
    if enhanced and not enhanced.endswith(".0.0"):
        return Verdict(_by_status(enhanced), enhanced, text)
    temporary = enhanced.startswith("4") or bool(_TEMPORARY.match(text))
    return Verdict(_by_words(text, temporary), enhanced, text)


def _by_status(status: str) -> Kind:
    klass, subject, _ = status.split(".")
    if klass != "5":
        return "soft"
    if status in HARD:
        return "hard"
    if subject == "7" or status in SENDER_PROBLEMS:
        return "blocked"
    return "soft"  # x.2.2, 5.2.1, 5.2.3, 5.3.4 and whatever else is not known


def _by_words(text: str, temporary: bool) -> Kind:
    """For answers without a useful enhanced code: what the words say."""
    if temporary:
        return "soft"
    if _HARD_WORDS.search(text):
        return "hard"
    if _BLOCKED_WORDS.search(text):
        return "blocked"
    return "soft"
