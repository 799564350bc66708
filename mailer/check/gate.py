"""The one gate before a send: may THEME go out now, and as what exactly?

`mailer send`, `mailer check` and the scheduler's due check ask `gate`. It builds THEME once
if stale, runs the preflight on that build (mailer.send.preflight) and then the readiness checks
on the same build (mailer.check.readiness), and returns a frozen `Checked`: the manifest a send
is made from, and what the checks found. `create_send` and the snapshot take that manifest, so
nothing builds again and what goes out is what was checked. A preflight failure raises (nobody
can force a key that cannot sign); failing readiness checks are in the result, and
`Checked.release` refuses them unless the send is forced with a reason.

A due schedule that fails the gate is held, not sent: it stays planned with the reason
recorded, and starts once it passes, within the grace period. `SendChecks` keeps the gate's
verdict per (theme, content hash) for RECHECK, so the schedules of one theme that fall due
together are checked once, and a held one is asked again now and then (a partner's site that
was down may answer again; an edit changes the hash and is checked at once).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from mailer.builds.manifest import Manifest
from mailer.check.readiness import NotReady, Readiness, check_theme
from mailer.config import Settings
from mailer.errors import MailerError
from mailer.send.preflight import preflight

RECHECK = dt.timedelta(minutes=10)
SHOWN = 3  # problems named in a hold reason; `mailer check THEME` lists all


@dataclass(frozen=True)
class Checked:
    """A build that passed the preflight, and what the readiness checks found on it."""

    manifest: Manifest
    readiness: Readiness

    @property
    def theme(self) -> str:
        return self.manifest.theme

    @property
    def problems(self) -> tuple[str, ...]:
        """One line per failing readiness finding: why a real send would be refused."""
        return tuple(self.readiness.problems())

    def release(self, by: str, force_reason: str | None = None) -> dict[str, str]:
        """What a real send records about who created it and, when `force_reason` overrides
        failing checks, who forced it, why and past what. Raises NotReady when a check fails
        and no reason to force was given."""
        record = {"created_by": by}
        if not self.readiness.ok:
            if force_reason is None:
                raise NotReady(self.readiness)
            record.update(forced_by=by, forced_reason=force_reason,
                          forced_checks="\n".join(self.problems))
        return record


def gate(settings: Settings, theme: str, *, offline: bool = False) -> Checked:
    """THEME built once (when stale) and preflighted, then readiness-checked on that same
    build; `offline` asks no link's server.

    Raises the build's errors and PreflightError; failing readiness checks are in the result.
    """
    manifest = preflight(settings, theme)
    return Checked(manifest, check_theme(settings, theme, offline=offline, manifest=manifest))


class SendChecks:
    """The gate's verdicts per theme, for the scheduler (thread-safe)."""

    def __init__(self, settings: Settings, *, offline: bool = False):
        self.settings, self.offline = settings, offline
        self._verdicts: dict[tuple[str, str], tuple[dt.datetime, Checked | str]] = {}
        self._passed: dict[str, Checked] = {}  # per theme, while its newest verdict is a pass
        self._lock = threading.Lock()  # one check at a time: the others wait for its verdict

    def problem(self, theme: str, content_hash: str, now: dt.datetime) -> str:
        """Why THEME, whose files hash to `content_hash` (`source_hash`), may not be sent now
        by the gate, or ""."""
        key = (theme, content_hash)
        with self._lock:
            checked = self._verdicts.get(key)
            if checked is None or now - checked[0] >= RECHECK:
                checked = self._verdicts[key] = (now, self._check(theme))
            verdict = checked[1]
            if isinstance(verdict, Checked):
                self._passed[theme] = verdict
            else:
                self._passed.pop(theme, None)
        return verdict if isinstance(verdict, str) else ""

    def passed(self, theme: str) -> Checked | None:
        """The build of THEME that passed the gate in its newest verdict, for the send it
        lets through; None when that verdict was a refusal or none was asked."""
        with self._lock:
            return self._passed.get(theme)

    def _check(self, theme: str) -> Checked | str:
        try:
            checked = gate(self.settings, theme, offline=self.offline)
        except MailerError as exc:
            problems: tuple[str, ...] = (str(exc),)
        else:
            problems = checked.problems
            if not problems:
                return checked
        more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        return (f"the checks of `mailer send` fail: {'; '.join(problems[:SHOWN])}{more} "
                f"(`mailer check {theme}` lists them)")
