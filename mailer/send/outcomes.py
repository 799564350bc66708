"""What one delivery attempt means: for the recipient's row, and for the send as a whole.

The one place where answers are sorted. A recipient's own answer (RCPT or DATA) is recorded
against them; trouble with the connection or the session (greeting, TLS, login, sender, 421, a
dropped connection) is nobody's attempt: the row goes back to pending untouched and the send
backs off, then pauses, as a whole. Finer classes of permanent answers plug in at `classify`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import Enum

from mailer.message.assembly import MessageError
from mailer.transport.transports import DeliveryError

CONNECTION_RETRY_MAX = 300.0  # seconds: the longest back-off between two tries of the connection


class Verdict(Enum):
    SENT = "sent"
    RETRY = "retry"  # temporary for this recipient: counts as an attempt, comes back later
    FAILED = "failed"  # permanent for this recipient: recorded with the server's answer
    CONNECTION = "connection"  # about the connection: back to pending, no attempt counted
    UNTRIED = "untried"  # not tried because the connection failed first: back to pending


def classify(error: DeliveryError | MessageError | None) -> Verdict:
    """The verdict on one attempt from what it raised (None: the server accepted it)."""
    if error is None:
        return Verdict.SENT
    if isinstance(error, MessageError):  # a value of this recipient no message can carry
        return Verdict.FAILED
    if error.connection:
        return Verdict.CONNECTION
    return Verdict.FAILED if error.permanent else Verdict.RETRY


class ConnectionWatch:
    """Back-off and patience for connection trouble, across the batches of one worker.

    The first failure is retried at once (a single dropped connection); after that the wait
    doubles from `retry_seconds` up to CONNECTION_RETRY_MAX. Trouble that lasts `patience`
    seconds, or an answer that needs a person (5xx greeting, wrong password, TLS required or
    untrusted), pauses the send.
    """

    def __init__(self, retry_seconds: float, patience: float,
                 clock: Callable[[], float] = time.monotonic):
        self.retry_seconds, self.patience, self.clock = retry_seconds, patience, clock
        self.streak = 0
        self.since: float | None = None

    def after_batch(self, verdicts: Sequence[Verdict],
                    errors: Sequence[DeliveryError]) -> tuple[float, str]:
        """Seconds to wait before the next claim, and a reason to pause the send ("" = go on).

        `errors` are the batch's connection errors, in order."""
        through = any(v in (Verdict.SENT, Verdict.RETRY, Verdict.FAILED) for v in verdicts)
        if through or not errors:
            self.streak, self.since = 0, None
        if not errors:
            return 0.0, ""
        needs_person = next((e for e in errors if e.permanent), None)
        if needs_person:
            return 0.0, (f"the mail server refused the session: {needs_person}; fix the smtp "
                         "settings or ask the relay's administrator, then resume")
        now = self.clock()
        self.streak += 1
        self.since = now if self.since is None else self.since
        if now - self.since >= self.patience:
            return 0.0, (f"no working connection to the mail server for {now - self.since:.0f} s "
                         f"({self.streak} tries); last: {errors[-1]}")
        if self.streak == 1:
            return 0.0, ""
        return min(self.retry_seconds * 2 ** (self.streak - 2), CONNECTION_RETRY_MAX), ""
