"""The checks a due schedule passes before its send starts: those `mailer send` runs before a
real send (preflight, then readiness). A schedule that fails them is held, not sent: it stays
planned with the reason recorded, and starts once they pass, within the grace period.

The checks build the mailing and may ask every external link and SpamAssassin: seconds. Their
verdict is kept per (theme, content hash) for RECHECK, so the schedules of one theme that fall
due together are checked once, and a held one is asked again now and then (a partner's site
that was down may answer again; an edit changes the hash and is checked at once).
"""

from __future__ import annotations

import datetime as dt
import threading

from mailer.check.readiness import check_theme
from mailer.config import Settings
from mailer.errors import MailerError
from mailer.send.preflight import preflight

RECHECK = dt.timedelta(minutes=10)
SHOWN = 3  # problems named in a hold reason; `mailer check THEME` lists all


class SendChecks:
    """The verdicts of `mailer send`'s checks per theme, for the scheduler (thread-safe)."""

    def __init__(self, settings: Settings, *, offline: bool = False):
        self.settings, self.offline = settings, offline
        self._verdicts: dict[tuple[str, str], tuple[dt.datetime, str]] = {}
        self._lock = threading.Lock()  # one check at a time: the others wait for its verdict

    def problem(self, theme: str, content_hash: str, now: dt.datetime) -> str:
        """Why THEME, whose files hash to `content_hash` (`source_hash`), may not be sent now by
        these checks, or ""."""
        key = (theme, content_hash)
        with self._lock:
            checked = self._verdicts.get(key)
            if checked is None or now - checked[0] >= RECHECK:
                checked = self._verdicts[key] = (now, self._check(theme))
        return checked[1]

    def _check(self, theme: str) -> str:
        try:
            preflight(self.settings, theme)
            problems = check_theme(self.settings, theme, offline=self.offline).problems()
        except MailerError as exc:
            problems = [str(exc)]
        if not problems:
            return ""
        more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        return (f"the checks of `mailer send` fail: {'; '.join(problems[:SHOWN])}{more} "
                f"(`mailer check {theme}` lists them)")
