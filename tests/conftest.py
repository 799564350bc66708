"""Fixtures: a copy of the project per test; database tests run on SQLite and on PostgreSQL.

PostgreSQL defaults to postgresql+psycopg://postgres@127.0.0.1:5432/test; set
MAILER_TEST_POSTGRES_URL to another URL, or to the empty string to skip PostgreSQL. When no
server answers there, the PostgreSQL tests are skipped with that reason.
"""

from __future__ import annotations

import mailbox
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, make_url
from sqlmodel import Session

from mailer.cli.main import main
from mailer.config import Settings, load_settings
from mailer.db import engine_for, get_engine, session_scope
from mailer.transport.transports import MemoryTransport
from tests.smtp_server import SMTPTestServer

POSTGRES_URL = os.environ.get(
    "MAILER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_skip_reason() -> str:
    """Why the PostgreSQL half of the database tests cannot run here, or "" when it can."""
    if not POSTGRES_URL:
        return "MAILER_TEST_POSTGRES_URL is empty: PostgreSQL tests skipped"
    url = make_url(POSTGRES_URL)
    host, port = url.host or "127.0.0.1", url.port or 5432
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        return (f"no PostgreSQL server answers at {host}:{port} ({exc.strerror or exc}); start one, "
                "or set MAILER_TEST_POSTGRES_URL to another URL (empty: skip these tests)")
    return ""


POSTGRES_SKIP = _postgres_skip_reason()
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(bool(POSTGRES_SKIP), reason=POSTGRES_SKIP)),
]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/mailer.db"
        yield url
        engine_for(url).dispose()
        return
    schema = f"mailer_test_{uuid.uuid4().hex[:12]}"
    admin = engine_for(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    yield url
    engine_for(url).dispose()
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(root=tmp_path, database_url=database_url, secret_key="test-secret-key-0123456789",
                    public_base_url="http://testserver")


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    """Settings for tests that need no database."""
    return Settings(root=tmp_path, secret_key="test-secret-key-0123456789", public_base_url="http://testserver")


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return get_engine(settings)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


@pytest.fixture
def write_csv(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a CSV file from lines of text and return its path."""

    def write(text: str, name: str = "list.csv") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def add_subscriber(session: Session, email: str, region: str = "limburg",
                   audience: str = "netwerk", topics: tuple[str, ...] = ("updates",),
                   name: str = "Test Persoon") -> int:
    """An active subscriber, made through the real sign-up and confirmation."""
    from mailer.subscribers.subscriptions import Profile, confirm, request_subscription

    profile = Profile(name, "Veilig Thuis", region, audience, topics)
    sign_up = request_subscription(session, email, profile, "test")
    assert sign_up is not None and sign_up.subscriber.id is not None
    confirm(session, sign_up.subscriber.id, sign_up.nonce)
    return sign_up.subscriber.id


def bulk_subscribers(settings: Settings, count: int, topic: str = "verdiepingen",
                     segments: Sequence[tuple[str, str]] = (("limburg", "netwerk"),),
                     prefix: str = "r", chunk: int = 5000) -> None:
    """`count` active subscribers of `topic`, spread over `segments`, inserted in bulk: the
    sign-up path costs milliseconds per person, far too slow for thousands."""
    from sqlalchemy import insert

    from mailer.models import Subscriber, Subscription, utcnow
    from mailer.subscribers.subscriptions import hash_address

    now = utcnow()
    with session_scope(settings, write=True) as session:
        for start in range(0, count, chunk):
            numbers = range(start, min(start + chunk, count))
            people = []
            for n in numbers:
                region, audience = segments[n % len(segments)]
                email = f"{prefix}{n}@example.org"
                people.append({"email": email, "address_hash": hash_address(email),
                               "name": f"Ontvanger {n}", "organisation": "", "region": region,
                               "audience": audience, "status": "active", "created_at": now,
                               "updated_at": now, "source": "bulk"})
            ids = session.execute(insert(Subscriber).returning(Subscriber.id), people).scalars()
            session.execute(insert(Subscription), [
                {"subscriber_id": sid, "topic": topic, "status": "active", "consent_at": now,
                 "consent_source": "bulk", "updated_at": now} for sid in ids])


REPO = Path(__file__).resolve().parents[1]
LISTS_DIR = REPO / "lists"


def dead_worker() -> str:
    """The name a worker on this machine would have had, whose process has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:gone"


@pytest.fixture
def send_settings(settings: Settings) -> Settings:
    """`settings` with the real content in its root (templates come from the package), https
    links (as a message needs) and quick retries and back-offs."""
    shutil.copytree(REPO / "content", settings.root / "content")
    return replace(settings, public_base_url="https://testserver", send_retry_seconds=0.01,
                   send_connection_retry_seconds=0.01, send_batch=5)


@pytest.fixture
def invoke(send_settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run `mailer` commands through click on `send_settings`; keyword arguments set
    MAILER_<NAME> first (they stay set for the rest of the test)."""
    for key, value in {"MAILER_ROOT": str(send_settings.root),
                       "MAILER_DATABASE_URL": send_settings.database_url,
                       "MAILER_SECRET_KEY": send_settings.secret_key,
                       "MAILER_PUBLIC_BASE_URL": send_settings.public_base_url}.items():
        monkeypatch.setenv(key, value)

    def run(*args: str, **env: str) -> Result:
        for key, value in env.items():
            monkeypatch.setenv(f"MAILER_{key.upper()}", value)
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project folder with the real content; commands run inside it."""
    shutil.copytree(REPO / "content", tmp_path / "content")
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MAILER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MAILER_DATABASE_URL", f"sqlite:///{tmp_path / 'mailer.db'}")
    return load_settings(tmp_path)


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SMTPTestServer]:
    """A started test SMTP server; faults via indirect parametrisation with SMTPTestServer's
    keyword arguments, e.g. `@pytest.mark.parametrize("smtp_server", [{"drop": 0.5}],
    indirect=True)`."""
    with SMTPTestServer(**getattr(request, "param", {})) as server:
        yield server


@pytest.fixture
def run(invoke, send_settings: Settings):  # type: ignore[no-untyped-def]
    """`mailer …` through click in `send_settings`' project (see `invoke`), with two
    subscribers of verdiepingen in Limburg."""
    with session_scope(send_settings, write=True) as session:
        add_subscriber(session, "jan@example.org", "limburg", "netwerk", ("verdiepingen",), "Jan")
        add_subscriber(session, "els@example.org", "limburg", "beleidsmakers", ("verdiepingen",))
    return invoke


def outbox(settings: Settings) -> list[mailbox.MaildirMessage]:
    return list(mailbox.Maildir(settings.root / "out" / "outbox").values())


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Debian's chromium under playwright, one per test module (tests.browser says more)."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("browser test needs /usr/bin/chromium (Debian package 'chromium')")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
