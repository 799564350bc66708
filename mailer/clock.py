"""Where time comes from, for code whose behaviour depends on it: token expiry, retries,
claim timeouts. Passing a Clock lets a test move time on instead of patching libraries or
sleeping."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Let `seconds` pass or until `stop` is set; True when it was set."""
        ...

    def __hash__(self) -> int:
        """Clocks are hashable: the token serializers are cached per clock."""
        ...


class SystemClock:
    """The real time; waiting returns early when `stop` is set (SIGTERM between batches)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(seconds)


SYSTEM = SystemClock()
