"""Rate limits kept in the database, so they hold across web workers and restarts.

One row per key counts the events of a window that starts at the key's first event. Counting is
one atomic upsert (`INSERT … ON CONFLICT … RETURNING`, the same SQL on SQLite and PostgreSQL), so
two workers can never both take the last allowed place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, text
from sqlmodel import Session, col

from mailer.models import RateLimit, table_of, utcnow

_TIME = table_of(RateLimit).c.window_start.type
_COUNT = text(
    "INSERT INTO rate_limit (key, window_start, count) VALUES (:key, :now, 1) "
    "ON CONFLICT (key) DO UPDATE SET "
    "count = CASE WHEN rate_limit.window_start <= :cutoff THEN 1 ELSE rate_limit.count + 1 END, "
    "window_start = CASE WHEN rate_limit.window_start <= :cutoff THEN :now "
    "ELSE rate_limit.window_start END "
    "RETURNING count"
).bindparams(bindparam("now", type_=_TIME), bindparam("cutoff", type_=_TIME))


@dataclass(frozen=True)
class RateLimiter:
    """At most `limit` events per key in a window of `seconds`, for one kind of event."""

    kind: str
    limit: int
    seconds: float

    def allow(self, session: Session, key: str) -> bool:
        """Count one event for `key`; False when it is over the limit."""
        now = utcnow()
        count = session.execute(_COUNT, {
            "key": f"{self.kind}:{key}"[:200], "now": now,
            "cutoff": now - dt.timedelta(seconds=self.seconds),
        }).scalar_one()
        return count <= self.limit


def purge(session: Session, older_than: dt.timedelta) -> int:
    """Drop counters whose window ended long ago; returns how many."""
    cutoff = utcnow() - older_than
    return session.exec(delete(RateLimit).where(col(RateLimit.window_start) < cutoff)).rowcount
