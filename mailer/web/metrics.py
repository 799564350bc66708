"""/metrics: Prometheus text format, for loopback or a Bearer token only.

The mailing figures are read from the database at scrape time (MailingFigures), so every
worker and every machine gives the same numbers and nothing is lost on a restart. Request
counts and latency of this process come from starlette-exporter's middleware (per process:
scrape each worker, or sum them). Anyone else gets 404, as if the page did not exist; behind a
trusted proxy the forwarded client address is the one judged (mailer.web.app).
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mailer.models import utcnow
from mailer.web.state import site

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# name, help, labels, query (the labels' columns, then the value)
COUNTS = (
    ("mailer_deliveries", "Deliveries by status.", ("status",),
     "SELECT status, count(*) FROM delivery GROUP BY status"),
    ("mailer_sends", "Sends by status.", ("status",),
     "SELECT status, count(*) FROM send GROUP BY status"),
    ("mailer_bounces", "Recorded bounces by class (hard, soft, blocked).", ("class",),
     "SELECT kind, count(*) FROM bounce GROUP BY kind"),
    ("mailer_suppressions", "Suppressed addresses by reason.", ("reason",),
     "SELECT reason, count(*) FROM suppression GROUP BY reason"),
    ("mailer_subscribers", "Subscribers by status.", ("status",),
     "SELECT status, count(*) FROM subscriber GROUP BY status"),
    ("mailer_subscriptions", "Subscriptions by topic and status.", ("topic", "status"),
     "SELECT topic, status, count(*) FROM subscription GROUP BY topic, status"),
    ("mailer_unsubscribed", "Subscriptions now unsubscribed, by topic and by how "
     "(one-click: the mail client's button, RFC 8058).", ("topic", "via"),
     "SELECT topic, unsubscribed_via, count(*) FROM subscription "
     "WHERE status = 'unsubscribed' GROUP BY topic, unsubscribed_via"),
)
NEXT_DUE = "SELECT min(due_at) FROM schedule WHERE status = 'planned'"
LAST_START = ("SELECT schedule.due_at, send.created_at FROM schedule JOIN send "
              "ON send.id = schedule.send_id ORDER BY send.created_at DESC LIMIT 1")
OLDEST_PENDING = ("SELECT min(send.snapshot_at) FROM send WHERE send.status = 'running' AND "
                  "EXISTS (SELECT 1 FROM delivery WHERE delivery.send_id = send.id "
                  "AND delivery.status IN ('pending', 'sending'))")


def _aware(value: object) -> dt.datetime | None:
    """A timestamp as the driver gives it (SQLite: text), as aware UTC."""
    if value is None:
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class MailingFigures(Collector):
    """Reads the figures from the database on every collect (that is, every scrape)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.engine.connect() as conn:
            for name, about, labels, query in COUNTS:
                family = GaugeMetricFamily(name, about, labels=list(labels))
                for *values, count in conn.execute(text(query)):
                    family.add_metric([str(v or "") for v in values], count)
                yield family
            yield from self._schedule(conn.execute(text(NEXT_DUE)).scalar(),
                                      conn.execute(text(LAST_START)).first())
            oldest = _aware(conn.execute(text(OLDEST_PENDING)).scalar())
        age = (utcnow() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily("mailer_oldest_pending_delivery_age_seconds",
                                "Age of the oldest pending delivery of a running send (0: none).",
                                value=max(age, 0.0))

    @staticmethod
    def _schedule(next_due: object, last: object) -> Iterator[GaugeMetricFamily]:
        due = _aware(next_due)
        yield GaugeMetricFamily("mailer_scheduler_next_due_timestamp_seconds",
                                "When the next planned schedule is due (Unix time; 0: none).",
                                value=due.timestamp() if due else 0.0)
        late = 0.0
        if last is not None:
            due_at, started = (_aware(v) for v in last)  # type: ignore[attr-defined]
            late = (started - due_at).total_seconds() if due_at and started else 0.0
        yield GaugeMetricFamily("mailer_scheduler_last_start_delay_seconds",
                                "How late the newest scheduled send started after its due time.",
                                value=max(late, 0.0))


def figures_registry(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MailingFigures(engine))
    return registry


def allowed(request: Request) -> bool:
    """A client on this machine, or one with the configured Bearer token."""
    token = site(request).settings.metrics_token
    given = request.headers.get("authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics(request: Request) -> Response:
    if not allowed(request):
        raise HTTPException(404)
    figures: CollectorRegistry = request.app.state.figures
    body = await run_in_threadpool(lambda: generate_latest(REGISTRY) + generate_latest(figures))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
