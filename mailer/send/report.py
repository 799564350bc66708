"""What a send did: counts per delivery status and per segment, as text, as one HTML page or
as a JSON document (`mailer sends list --json`, `sends show --json`; shapes in docs/json.md).

The HTML page is for staff and stands alone (inline CSS and SVG, no external assets), so it can
be mailed around or archived with the campaign.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mailer.config import Settings
from mailer.db import get_engine
from mailer.models import Send, iso_utc, stored_id
from mailer.render.renderer import jinja_environment
from mailer.send.approval import describe
from mailer.send.runner import SendError
from mailer.send.store import SendStore

STATUSES = ("pending", "sending", "sent", "failed", "skipped", "bounced")
COLOURS = {"pending": "#9aa5b1", "sending": "#f0b429", "sent": "#2f8132", "failed": "#c62828",
           "skipped": "#6b7c93", "bounced": "#8e24aa"}


def send_document(send: Send) -> dict[str, Any]:
    """A send as JSON-ready data: what it sends to whom, its status, who made, approved or
    forced it, and when."""
    return {"id": stored_id(send), "theme": send.theme, "topic": send.topic,
            "subject": send.subject, "regions": list(send.regions),
            "audiences": list(send.audiences), "status": send.status,
            "pause_reason": send.pause_reason, "planned_for": iso_utc(send.planned_for),
            "created_at": iso_utc(send.created_at), "snapshot_at": iso_utc(send.snapshot_at),
            "finished_at": iso_utc(send.finished_at), "created_by": send.created_by,
            "approved_by": send.approved_by, "approved_at": iso_utc(send.approved_at),
            "forced_by": send.forced_by, "forced_reason": send.forced_reason,
            "forced_checks": send.forced_checks.splitlines()}


@dataclass
class SendRow:
    """One send of `mailer sends list`, with its recipients counted per delivery status."""

    send: Send
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def document(self) -> dict[str, Any]:
        return {**send_document(self.send), "total": self.total, "counts": self.counts}


def newest_sends(settings: Settings, limit: int) -> list[SendRow]:
    """The newest `limit` sends, newest first."""
    return [SendRow(send, counts)
            for send, counts in SendStore(get_engine(settings)).newest(limit)]


@dataclass
class SendReport:
    send: Send
    counts: dict[str, int]
    segments: dict[str, dict[str, int]]  # "region/audience" → status → count
    errors: list[tuple[str, int]]  # the most common failure answers and skip reasons
    classes: dict[str, int]  # RFC 3463 class of the refusals (hard | soft | blocked) → count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def alarm(self) -> str:
        """The deliverability alarm: refusals for policy, reputation or authentication."""
        blocked = self.classes.get("blocked", 0)
        if not blocked:
            return ""
        return (f"Deliverability alarm: {blocked:,} recipient(s) blocked (5.7.x: policy, "
                "reputation or authentication). This is a problem of our server, domain or "
                "content, not of the addresses: nobody was suppressed. Check `mailer doctor`.")

    @property
    def approval(self) -> str:
        """Who created and who approved the send, and when."""
        return describe(self.send)

    def document(self) -> dict[str, Any]:
        """The report as JSON-ready data. `errors` quotes the servers' answers, which may name
        an address."""
        return {"send": send_document(self.send), "total": self.total, "counts": self.counts,
                "segments": self.segments, "classes": self.classes,
                "errors": [{"error": error, "count": n} for error, n in self.errors],
                "approval": self.approval, "alarm": self.alarm}


def send_report(settings: Settings, send_id: int, top_errors: int = 10) -> SendReport:
    figures = SendStore(get_engine(settings)).figures(send_id, top_errors)
    if figures is None:
        raise SendError(f"no send with id {send_id}; `mailer sends list` shows the sends")
    counts: dict[str, int] = defaultdict(int)
    segments: dict[str, dict[str, int]] = defaultdict(dict)
    for region, audience, status, n in figures.segments:
        counts[status] += n
        segments[f"{region}/{audience}"][status] = n
    return SendReport(figures.send, dict(counts), dict(sorted(segments.items())), figures.errors,
                      figures.classes)


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart of the statuses, measured for the report template's SVG."""

    bars: list[dict]
    width: int = 520
    bar: int = 22
    label: int = 80

    @property
    def height(self) -> int:
        return len(self.bars) * (self.bar + 6) or self.bar


def chart(counts: dict[str, int]) -> Chart:
    empty = Chart([])
    shown = [(s, counts.get(s, 0)) for s in STATUSES if counts.get(s, 0)]
    most = max((n for _, n in shown), default=1)
    room = empty.width - empty.label - 70
    return Chart([{"status": status, "count": n, "colour": COLOURS[status],
                   "y": i * (empty.bar + 6), "length": max(round(room * n / most), 1)}
                  for i, (status, n) in enumerate(shown)])


def html_report(settings: Settings, report: SendReport) -> str:
    """The report as one standalone HTML page (templates/web/send-report.html.j2)."""
    template = jinja_environment(settings.templates, autoescape=True).get_template(
        "web/send-report.html.j2")
    return template.render(r=report, chart=chart(report.counts), statuses=STATUSES)
