"""What a send did: counts per delivery status and per segment, as text or as one HTML page.

The HTML page is for staff and stands alone (inline CSS and SVG, no external assets), so it can
be mailed around or archived with the campaign.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from jinja2 import Environment, StrictUndefined
from sqlmodel import func, select

from mailer.config import Settings
from mailer.db import session_scope
from mailer.models import Delivery, Send
from mailer.send.approval import describe
from mailer.send.runner import SendError

STATUSES = ("pending", "sending", "sent", "failed", "skipped", "bounced")
COLOURS = {"pending": "#9aa5b1", "sending": "#f0b429", "sent": "#2f8132", "failed": "#c62828",
           "skipped": "#6b7c93", "bounced": "#8e24aa"}


@dataclass
class SendReport:
    send: Send
    counts: dict[str, int]
    segments: dict[str, dict[str, int]]  # "region/audience" → status → count
    errors: list[tuple[str, int]]  # the most common failure answers and skip reasons

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def approval(self) -> str:
        """Who created and who approved the send, and when."""
        return describe(self.send)


def send_report(settings: Settings, send_id: int, top_errors: int = 10) -> SendReport:
    with session_scope(settings) as session:
        send = session.get(Send, send_id)
        if send is None:
            raise SendError(f"no send with id {send_id}; `mailer sends list` shows the sends")
        rows = session.exec(
            select(Delivery.region, Delivery.audience, Delivery.status, func.count())
            .where(Delivery.send_id == send_id)
            .group_by(Delivery.region, Delivery.audience, Delivery.status))
        counts: dict[str, int] = defaultdict(int)
        segments: dict[str, dict[str, int]] = defaultdict(dict)
        for region, audience, status, n in rows:
            counts[status] += n
            segments[f"{region}/{audience}"][status] = n
        errors = session.exec(
            select(Delivery.error, func.count()).where(Delivery.send_id == send_id,
                                                       Delivery.error != "")
            .group_by(Delivery.error).order_by(func.count().desc()).limit(top_errors)).all()
    return SendReport(send, dict(counts), dict(sorted(segments.items())),
                      [(e, n) for e, n in errors])


def bars(counts: dict[str, int], width: int = 520, bar: int = 22) -> str:
    """A horizontal bar chart of the statuses as inline SVG."""
    shown = [(s, counts.get(s, 0)) for s in STATUSES if counts.get(s, 0)]
    most = max((n for _, n in shown), default=1)
    label, gap = 80, 6
    height = len(shown) * (bar + gap) or bar
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="Deliveries per status">']
    for i, (status, n) in enumerate(shown):
        y = i * (bar + gap)
        length = max(round((width - label - 70) * n / most), 1)
        parts.append(
            f'<text x="0" y="{y + bar - 6}" font-size="13">{status}</text>'
            f'<rect x="{label}" y="{y}" width="{length}" height="{bar}" fill="{COLOURS[status]}"/>'
            f'<text x="{label + length + 6}" y="{y + bar - 6}" font-size="13">{n:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Send {{ r.send.id }}: {{ r.send.theme }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1f2933; max-width: 60em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #d9e2ec; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.reason { color: #c62828; }
</style></head><body>
<h1>Send {{ r.send.id }}: {{ r.send.theme }}</h1>
<p>{{ r.send.subject }} — topic {{ r.send.topic }}; status <strong>{{ r.send.status }}</strong>
{% if r.send.pause_reason %}<span class="reason">({{ r.send.pause_reason }})</span>{% endif %};
{{ "{:,}".format(r.total) }} recipients; created {{ r.send.created_at.strftime("%Y-%m-%d %H:%M") }} UTC
{% if r.send.finished_at %}, finished {{ r.send.finished_at.strftime("%Y-%m-%d %H:%M") }} UTC{% endif %}.</p>
<p>{{ r.approval }}.</p>
{% if r.send.forced_by %}<p class="reason">Forced past failing readiness checks by {{ r.send.forced_by }}:
“{{ r.send.forced_reason }}”</p><pre>{{ r.send.forced_checks }}</pre>{% endif %}
{{ chart | safe }}
<h2>Per region and audience</h2>
<table><tr><th>segment</th>{% for s in statuses %}<th>{{ s }}</th>{% endfor %}</tr>
{% for key, row in r.segments.items() %}<tr><td>{{ key }}</td>
{% for s in statuses %}<td>{{ row.get(s, "") }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if r.errors %}<h2>Most common answers and reasons</h2>
<table><tr><th>answer or reason</th><th>recipients</th></tr>
{% for error, n in r.errors %}<tr><td>{{ error }}</td><td>{{ n }}</td></tr>{% endfor %}</table>
{% endif %}
</body></html>
"""


def html_report(report: SendReport) -> str:
    env = Environment(autoescape=True, undefined=StrictUndefined)
    return env.from_string(PAGE).render(r=report, chart=bars(report.counts), statuses=STATUSES)
