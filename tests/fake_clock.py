"""A clock that tests move by hand: `wait` lets the time pass at once instead of sleeping."""

from __future__ import annotations

import datetime as dt
import threading


class FakeClock:
    def __init__(self, start: dt.datetime | None = None, step: float | None = None):
        """`step`: seconds each wait lets pass, whatever it was asked for (time runs fast)."""
        self.current = start or dt.datetime.now(dt.UTC)
        self.step = step
        self.waits: list[float] = []

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += dt.timedelta(seconds=seconds)

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        self.advance(self.step if self.step is not None else seconds)
        return stop.is_set()
