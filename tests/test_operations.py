"""What an operator watches, over real HTTP under uvicorn: /healthz, /readyz (503 when the
database is gone), /metrics (read from the database, so the numbers follow a send and a
one-click; 404 from off this machine without the token), and JSON log lines without addresses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from mailer.config import Settings
from mailer.db import get_engine, migrate, session_scope
from mailer.subscribers.subscriptions import find_by_email
from mailer.subscribers.tokens import make_token
from mailer.web.app import create_app
from tests.browser import serve
from tests.test_send_cli import FORCE
from tests.test_upgrade import revisions

METRICS_TOKEN = "scrape-token-0123456789"


def figures(base: str, **headers: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as (name, sorted labels) → value."""
    response = httpx.get(f"{base}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_health_and_ready_answer_while_the_database_does(send_settings: Settings) -> None:
    with serve(create_app(send_settings)) as base:
        health, ready = httpx.get(f"{base}/healthz"), httpx.get(f"{base}/readyz")
    assert (health.status_code, health.text) == (200, "ok\n")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert ready.headers["cache-control"] == "no-store"


@contextmanager
def scratch_postgresql() -> Iterator[tuple[str, sa.Engine]]:
    """A database of its own on the test server (so stopping it troubles no other test), and
    an admin connection to stop it with."""
    name = f"mailer_ready_{os.getpid()}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", admin
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def stop_database(settings: Settings, admin: sa.Engine | None) -> None:
    """PostgreSQL: the database refuses connections, and the open ones are cut, as when its
    server stops. SQLite has no server: its schema is taken back one version instead, as
    during an upgrade by another mailer."""
    if admin is None:
        engine = get_engine(settings)
        migrate(engine, revisions()[-2], down=True)
        return
    name = sa.make_url(settings.database_url).database
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             f"WHERE datname = '{name}'")


@contextmanager
def own_database(settings: Settings) -> Iterator[tuple[Settings, sa.Engine | None]]:
    """`settings` on a database this test may stop: SQLite's own file, or a scratch PostgreSQL
    database with the admin connection that stops it."""
    if settings.database_url.startswith("sqlite"):
        yield settings, None
        return
    with scratch_postgresql() as (url, admin):
        yield replace(settings, database_url=url), admin


def test_ready_says_503_and_why_once_the_database_is_gone(send_settings: Settings) -> None:
    with own_database(send_settings) as (site, admin), serve(create_app(site)) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        stop_database(site, admin)
        gone = httpx.get(f"{base}/readyz")
        assert httpx.get(f"{base}/healthz").status_code == 200  # the process still runs
    assert gone.status_code == 503
    expected = "does not answer" if admin is not None else f"schema version {revisions()[-2]}"
    assert gone.text.startswith("not ready: ") and expected in gone.text, gone.text


def test_metrics_follow_a_send_and_a_one_click_and_hide_from_strangers(run, send_settings: Settings
                                                                       ) -> None:  # type: ignore[no-untyped-def]
    site = replace(send_settings, trusted_proxies="127.0.0.1", metrics_token=METRICS_TOKEN)
    stranger = {"X-Forwarded-For": "192.0.2.44"}  # through the trusted proxy, from outside
    with serve(create_app(site)) as base:
        before = figures(base)
        assert ("mailer_deliveries", (("status", "sent"),)) not in before
        assert before[("mailer_subscribers", (("status", "active"),))] == 2
        assert run("send", "stalking", *FORCE).exit_code == 0
        after = figures(base)
        assert after[("mailer_deliveries", (("status", "sent"),))] == 2
        assert after[("mailer_sends", (("status", "done"),))] == 1
        assert after[("mailer_oldest_pending_delivery_age_seconds", ())] == 0

        with session_scope(site) as session:
            jan = find_by_email(session, "jan@example.org").public_id
        clicked = httpx.post(f"{base}/afmelden/{make_token(site, jan, 'unsubscribe')}",
                             data={"List-Unsubscribe": "One-Click"})
        assert clicked.status_code == 200
        clicks = figures(base)
        assert clicks[("mailer_unsubscribed", (("topic", "verdiepingen"), ("via", "one-click")))] == 1
        assert clicks[("mailer_suppressions", (("reason", "unsubscribed"),))] == 1
        # the web process's own request figures, by route template and never by token
        requests = [key for key in clicks if key[0] == "mailer_http_requests_total"]
        assert any(("path", "/afmelden/{token}") in labels for _, labels in requests)
        assert not any(jan in str(labels) for _, labels in requests)

        assert httpx.get(f"{base}/metrics", headers=stranger).status_code == 404
        wrong = {**stranger, "Authorization": "Bearer not-the-token-at-all"}
        assert httpx.get(f"{base}/metrics", headers=wrong).status_code == 404
        assert figures(base, **stranger, Authorization=f"Bearer {METRICS_TOKEN}")


def test_json_logs_parse_line_by_line_and_name_nobody(run, send_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "MAILER_ROOT": str(send_settings.root),
           "MAILER_DATABASE_URL": send_settings.database_url,
           "MAILER_SECRET_KEY": send_settings.secret_key,
           "MAILER_PUBLIC_BASE_URL": send_settings.public_base_url,
           "MAILER_SEND_BATCH": "1", "MAILER_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "mailer", "send", "stalking", *FORCE],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    batches = [line for line in lines if line["event"] == "batch delivered"]
    assert len(batches) == 2 and all(b["send"] == 1 and b["batch"] == 1 for b in batches)
    assert {"time", "level", "event", "logger"} <= set(lines[0])
    assert [line for line in lines if line["event"] == "worker stopped"][0]["status"] == "done"
    assert "@" not in done.stderr and "Jan" not in done.stderr
